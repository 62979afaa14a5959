//! terminal-host: PTY-backed shells over WebSocket for the Arcana dashboard.
//!
//! WebAssembly cannot run a PTY, so this native sidecar does, sharing the libSQL
//! database and the access tokens of the Spin components.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`access`]: request ids and the access log.
//! - [`store`]: its tables, and the users table through `arcana_core`.
//! - [`http`]: problem+json errors, authentication, the Origin allowlist.
//! - [`ws`]: the WebSocket endpoint and its protocol.
//! - [`rest`]: sessions, history, close, recordings, tickets.
//! - [`hosts`]: several terminal-hosts on one database: heartbeats, owners, tickets.
//! - [`session`]: the per-session actor (socket and PTY in one task, flow control,
//!   history, limits).
//! - [`shells`]: who shells run as, their homes, limits and sandbox.
//! - [`pty`]: the non-blocking PTY, spawning and stopping shells.
//! - [`launch`]: launcher mode, between fork and the shell's exec.
//! - [`shell_integration`]: bash hooks and the OSC parser behind command history.
//! - [`recording`]: asciicast v2.
//! - [`metrics`]: live counters.

pub mod access;
pub mod config;
pub mod hosts;
pub mod http;
pub mod launch;
pub mod metrics;
pub mod pty;
pub mod recording;
pub mod rest;
pub mod session;
pub mod session_writes;
pub mod shell_integration;
pub mod shells;
pub mod store;
pub mod ws;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arcana_core::settings::Settings;
use axum::Router;
use axum::routing::{get, post};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::session::{Registry, SessionEnv};
use crate::session_writes::SessionWrites;
use crate::shells::ShellPolicy;
use crate::store::Store;

/// Shared state of all handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub settings: Arc<Settings>,
    pub store: Store,
    pub registry: Arc<Registry>,
    /// This host among the terminal-hosts sharing the database.
    pub identity: Arc<hosts::Identity>,
    pub metrics: Arc<Metrics>,
    pub rc_file: Option<PathBuf>,
    pub policy: Arc<ShellPolicy>,
    pub writes: SessionWrites,
}

impl AppState {
    /// What session actors need.
    pub fn session_env(&self) -> SessionEnv {
        SessionEnv {
            config: self.config.clone(),
            identity: self.identity.clone(),
            store: self.store.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            rc_file: self.rc_file.clone(),
            policy: self.policy.clone(),
            writes: self.writes.clone(),
        }
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    let cors = cors_layer(&state.config.allowed_origins);
    use arcana_core::terminal as routes;
    Router::new()
        .route(routes::SHELL, get(ws::shell))
        .route(routes::SESSIONS, get(rest::list_sessions))
        .route(routes::HISTORY, get(rest::history))
        .route(routes::CLOSE, post(rest::close))
        .route(routes::RECORDING, get(rest::recording))
        .route(routes::TICKETS, post(rest::ticket))
        .route(routes::HEALTH, get(rest::health))
        .route("/metrics", get(rest::metrics))
        .route_layer(axum::middleware::from_fn(access::record_route))
        .layer(cors)
        .layer(axum::middleware::from_fn(access::log))
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            HeaderName::from_static("authorization"),
            HeaderName::from_static("content-type"),
        ])
}

/// Sets up logging.
pub fn init_logging(format: &str) {
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

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Opens the database, applies migrations, closes sessions a crash left active, and
/// serves until `shutdown`; then closes every session cleanly.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Files this process creates (the database above all) are its own alone, so that
    // shells, which run as another user, cannot read them.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let policy = ShellPolicy::from_config(&config)?;
    tracing::info!(
        user = %policy.user.name, uid = policy.user.uid,
        homes = ?policy.home_root, sandbox = policy.sandbox.is_some(),
        "shells run as {}", policy.user.name
    );
    if config.jwt_secret.len() < arcana_core::settings::MIN_SECRET_BYTES {
        anyhow::bail!(
            "the JWT secret must be at least {} bytes (SPIN_VARIABLE_JWT_SECRET)",
            arcana_core::settings::MIN_SECRET_BYTES
        );
    }
    let rc = arcana_db::RuntimeConfig::load(
        config.runtime_config_file.as_deref(),
        &std::path::absolute(&config.app_dir)?,
    )?;
    let db = &rc.databases["default"];
    let pool = arcana_db::Pool::open(db, 4)
        .await
        .with_context(|| format!("cannot open {}", db.describe()))?;
    let migrations = arcana_core::migrations::ALL
        .iter()
        .map(|m| arcana_db::Migration::from_file_name(m.file_name, m.sql))
        .collect::<Result<Vec<_>, _>>()?;
    arcana_db::apply_migrations(&pool.get().await?, &migrations).await?;
    let store = Store::new(pool);

    let rc_file = write_rc_file(&config)?;
    let mut settings = Settings::for_tests();
    settings.jwt_secret = config.jwt_secret.clone().into_bytes();
    settings.cors_origins = config.allowed_origins.clone();
    settings.metrics_token = config.metrics_token.clone().filter(|t| !t.is_empty());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let identity = hosts::Identity::new(
        config.host_id.as_deref(),
        config.advertise_url.as_deref(),
        addr,
    );
    let orphaned = store.register_host(&identity, config.heartbeat()).await?;
    if orphaned > 0 {
        tracing::warn!(
            count = orphaned,
            "marked sessions left active by a previous run (or a lost host) as closed"
        );
    }
    tokio::spawn(hosts::run_heartbeat(
        store.clone(),
        identity.clone(),
        config.heartbeat(),
    ));
    let state = AppState {
        config: Arc::new(config),
        settings: Arc::new(settings),
        writes: SessionWrites::start(store.clone()),
        store,
        registry: Arc::new(Registry::default()),
        identity: Arc::new(identity.clone()),
        metrics: Arc::new(Metrics::default()),
        rc_file: rc_file.clone(),
        policy: Arc::new(policy),
    };
    println!("Serving http://{addr}");
    tracing::info!(%addr, host_id = %identity.id, database = %db.describe(), "terminal-host listening");
    let registry = state.registry.clone();
    let parent = state.config.parent_pid;
    let front_door = state.config.front_door.clone();
    let router = app(state);
    // Slow headers and bodies, floods and TCP_NODELAY are the front door's (arcana_serve);
    // a WebSocket upgrade passes through it like any request.
    arcana_serve::serve(
        listener,
        front_door,
        move |req, _client| {
            let router = router.clone();
            async move {
                use tower::ServiceExt;
                match router.oneshot(req.map(axum::body::Body::new)).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            }
        },
        async move {
            tokio::select! {
                () = shutdown => {}
                () = parent_gone(parent) => tracing::warn!("the parent process is gone"),
            }
            tracing::info!("shutting down: closing every terminal session");
            registry.close_all("host_shutdown").await;
        },
    )
    .await?;
    if let Some(rc) = rc_file.as_ref().and_then(|p| p.parent()) {
        let _ = std::fs::remove_dir_all(rc);
    }
    Ok(())
}

/// Resolves when `parent` (if any) is no longer this process's parent: an orphaned
/// process is re-parented, so a changed parent id means the parent died.
async fn parent_gone(parent: Option<u32>) {
    let Some(parent) = parent else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        if nix::unistd::getppid().as_raw() as u32 != parent {
            return;
        }
    }
}

/// Writes the bash integration rc file into a private temporary folder.
fn write_rc_file(config: &Config) -> anyhow::Result<Option<PathBuf>> {
    let is_bash = config.shell.file_name().is_some_and(|n| n == "bash");
    if !is_bash {
        tracing::warn!(shell = %config.shell.display(), "not bash: command history will not be recorded");
        return Ok(None);
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("arcana-terminal-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bashrc");
    std::fs::write(&path, shell_integration::BASH_RC)?;
    // Shells run as another user: they must read it, and no one may change it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(Some(path))
}
