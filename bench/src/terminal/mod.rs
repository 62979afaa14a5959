//! terminal-host against ttyd 1.7.7 (from `../shared/tools`, when installed) and a bare
//! PTY, with the same client method and the same commands, interleaved over rounds in
//! one run: output throughput, echo of one key, a burst of 8 keys, Enter to the next
//! prompt, connect to first output byte, server CPU per keystroke and per MB, server
//! memory per idle session, and memory kept after bulk sessions ended. With
//! `--proxy true` the runner's own terminal-host is measured directly and through the
//! runner's one-origin proxy (the API port), interleaved in the same rounds.

pub mod clients;

use std::time::{Duration, Instant};

use arcana_tests::{Runner, RunnerOptions, TerminalHost};
use serde_json::{Value, json};

use clients::{Source, Term};

/// The names of the targets measured on the runner's own terminal-host (`--proxy`).
const RUNNER_TARGETS: &str = "runner's terminal-host";

/// Options of the terminal benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Bytes of input to `base64` for the throughput test.
    #[arg(long, default_value_t = 50_000_000)]
    bytes: u64,
    /// Keystrokes for the echo test, per round.
    #[arg(long, default_value_t = 200)]
    keystrokes: usize,
    /// Bursts and Enters per round.
    #[arg(long, default_value_t = 50)]
    bursts: usize,
    /// Rounds; the targets alternate within each.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Idle sessions for the memory test.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Also measure terminal-host through the runner's one-origin proxy.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    proxy: bool,
    /// The terminal-host build to measure (`cargo build --release -p terminal-host`).
    #[arg(long, default_value = "target/release/terminal-host")]
    binary: std::path::PathBuf,
    /// Measure only these targets (comma-separated: terminal-host, ttyd, bare-pty).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/terminal.json")]
    out: String,
}

/// Everything measured for one target, over all rounds.
#[derive(Default)]
struct Figures {
    mb_per_s: Vec<f64>,
    echo: Vec<Duration>,
    burst: Vec<Duration>,
    enter: Vec<Duration>,
    first_byte: Vec<Duration>,
    cpu_per_key_us: Vec<f64>,
    cpu_per_mb_ms: Vec<f64>,
}

fn percentile(v: &[Duration], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx].as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// CPU time of a process, in seconds: the scheduler's nanosecond run time summed over
/// its threads (`/proc/PID/task/*/schedstat`), far finer than utime/stime ticks.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1e9
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `RssAnon`).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// A shell ready for a measurement: prompt set to a marker, output drained.
async fn ready(source: &Source, session: u64) -> anyhow::Result<Term> {
    let mut t = source.open(session).await?;
    t.send(b"PS1='P''R> '; stty -ixon\r").await?;
    t.until(b"PR> ").await?;
    t.drain(Duration::from_millis(100)).await;
    Ok(t)
}

/// One round of every measurement on one target.
async fn round(
    source: &Source,
    server: Option<u32>,
    args: &Args,
    f: &mut Figures,
    session: &mut u64,
    close: &dyn Fn(u64) -> futures::future::BoxFuture<'static, ()>,
) -> anyhow::Result<()> {
    let stage = |s: &str| {
        if std::env::var_os("ARCANA_BENCH_TRACE").is_some() {
            eprintln!("{}: {s}", source.name());
        }
    };
    stage("first byte");
    // Connect to first output byte: a new shell each time.
    for _ in 0..5 {
        *session += 1;
        let started = Instant::now();
        let mut t = source.open(*session).await?;
        t.recv().await?;
        f.first_byte.push(started.elapsed());
        t.close().await;
        close(*session).await;
    }

    *session += 1;
    let id = *session;
    stage("ready");
    let mut t = ready(source, id).await?;
    stage("throughput");
    // Throughput; `$((6*7))` so that the marker is not the echo of the command.
    let cmd = format!(
        "head -c {} /dev/zero | base64; echo __DONE$((6*7))\r",
        args.bytes
    );
    let cpu = cpu_secs(server);
    let started = Instant::now();
    t.send(cmd.as_bytes()).await?;
    let bytes = t.until(b"__DONE42").await?;
    let elapsed = started.elapsed();
    f.mb_per_s.push(bytes as f64 / elapsed.as_secs_f64() / 1e6);
    f.cpu_per_mb_ms
        .push((cpu_secs(server) - cpu) * 1000.0 / (bytes as f64 / 1e6));
    t.until(b"PR> ").await?;

    stage("enter");
    // Enter to the next prompt.
    for _ in 0..args.bursts {
        let started = Instant::now();
        t.send(b"\r").await?;
        t.until(b"PR> ").await?;
        f.enter.push(started.elapsed());
    }

    stage("echo");
    // Keystrokes into `cat` (the terminal echoes each key).
    t.send(b"cat\r").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.drain(Duration::from_millis(100)).await;
    let cpu = cpu_secs(server);
    for i in 0..args.keystrokes {
        let c = b'a' + (i % 26) as u8;
        let started = Instant::now();
        t.send(&[c]).await?;
        t.until(&[c]).await?;
        f.echo.push(started.elapsed());
    }
    f.cpu_per_key_us
        .push((cpu_secs(server) - cpu) * 1e6 / args.keystrokes as f64);
    stage("burst");
    // A burst: 8 keys as 8 messages at once, until the last is echoed.
    for _ in 0..args.bursts {
        let started = Instant::now();
        for c in b"12345678" {
            t.send(&[*c]).await?;
        }
        t.until(b"8").await?;
        f.burst.push(started.elapsed());
        t.drain(Duration::from_millis(2)).await;
    }
    t.send(b"\x03").await?;
    t.close().await;
    close(id).await;
    Ok(())
}

/// Memory per idle session, and what a server keeps after bulk sessions ended.
async fn memory(
    source: &Source,
    pid: u32,
    args: &Args,
    session: &mut u64,
    close: &dyn Fn(u64) -> futures::future::BoxFuture<'static, ()>,
) -> anyhow::Result<Value> {
    // One session first, so that what every server sets up once (database connections,
    // worker threads) is not counted per session.
    *session += 1;
    ready(source, *session).await?.close().await;
    close(*session).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = rss_kib(pid);
    let mut open = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..args.sessions {
        *session += 1;
        ids.push(*session);
        open.push(ready(source, *session).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_idle = rss_kib(pid);
    let threads_with_idle = status_kib(pid, "Threads");
    for t in open {
        t.close().await;
    }
    for id in ids {
        close(id).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_closed = rss_kib(pid);
    // Bulk sessions, one after the other, each closed: twice five, so that what the
    // first five leave behind (caches, allocator) and any growth after it both show.
    let mut after_bulk = Vec::new();
    for _ in 0..2 {
        for _ in 0..5 {
            *session += 1;
            let mut t = ready(source, *session).await?;
            let cmd = format!(
                "head -c {} /dev/zero | base64; echo __DONE$((6*7))\r",
                args.bytes
            );
            t.send(cmd.as_bytes()).await?;
            t.until(b"__DONE42").await?;
            t.close().await;
            close(*session).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        after_bulk.push(rss_kib(pid));
    }
    Ok(json!({
        "rss_start_kib": start,
        "rss_with_idle_kib": with_idle,
        "per_idle_session_kib": (with_idle.saturating_sub(start)) as f64 / args.sessions as f64,
        "rss_idle_closed_kib": idle_closed,
        "threads_with_idle": threads_with_idle,
        "rss_after_bulk_kib": after_bulk[0],
        "rss_after_second_bulk_kib": after_bulk[1],
        "kept_after_bulk_kib": after_bulk[0] as i64 - idle_closed as i64,
        "growth_second_bulk_kib": after_bulk[1] as i64 - after_bulk[0] as i64,
    }))
}

/// ttyd from `target/tools` (installed from `../shared/tools`), when it is there.
fn start_ttyd(home: &std::path::Path) -> Option<(tokio::process::Child, String)> {
    let ttyd = arcana_tests::target_dir().join("tools").join("ttyd");
    if !ttyd.exists() {
        println!("SKIPPED: ttyd (run ../shared/tools/install.sh target/tools to compare with it)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut child = tokio::process::Command::new(ttyd)
        .args(["-p", &port.to_string(), "-i", "127.0.0.1", "-W"])
        .args(["bash", "--norc", "--noprofile"])
        .env("HOME", home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            println!(
                "SKIPPED: ttyd did not start (it loads libwebsockets' libuv plugin: \
                 apt-get install libwebsockets-evlib-uv)"
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((child, format!("http://127.0.0.1:{port}")))
}

/// The servers measured, started fresh for each phase.
struct Servers {
    th: TerminalHost,
    ttyd: Option<(tokio::process::Child, String)>,
    _home: tempfile::TempDir,
}

impl Servers {
    fn start(runner: &Runner, args: &Args) -> anyhow::Result<Self> {
        let max = (args.sessions + 20).to_string();
        let th = TerminalHost::try_start_binary(
            runner,
            &args.binary,
            &["--max-sessions-per-user", &max],
        )
        .map_err(|log| anyhow::anyhow!("terminal-host did not start:\n{log}"))?;
        let home = tempfile::tempdir()?;
        let ttyd = if args.wants("ttyd") {
            start_ttyd(home.path())
        } else {
            None
        };
        Ok(Self {
            th,
            ttyd,
            _home: home,
        })
    }

    /// What to measure, with display names and the server process to watch.
    fn targets(
        &self,
        args: &Args,
        runner: &Runner,
        token: &str,
    ) -> Vec<(String, Source, Option<u32>)> {
        let mut targets = Vec::new();
        if args.wants("terminal-host") {
            let source = Source::TerminalHost {
                base: self.th.url.clone(),
                token: token.to_string(),
            };
            targets.push(("terminal-host".to_string(), source, Some(self.th.pid())));
        }
        if let Some((child, url)) = &self.ttyd {
            targets.push((
                "ttyd".to_string(),
                Source::Ttyd { base: url.clone() },
                child.id(),
            ));
        }
        if args.wants("bare-pty") {
            targets.push(("bare PTY".to_string(), Source::BarePty, None));
        }
        if let (true, Some(direct)) = (args.proxy, &runner.terminal_url) {
            // The runner's own terminal-host, directly and through the API port: the
            // same process both ways, so the difference is the one-origin proxy.
            let direct = Source::TerminalHost {
                base: direct.clone(),
                token: token.to_string(),
            };
            let th_pid = arcana_tests::children_named(runner.pid(), "terminal-host")
                .first()
                .copied();
            targets.push((format!("{RUNNER_TARGETS}, direct"), direct, th_pid));
            let proxied = Source::TerminalHost {
                base: runner.url.clone(),
                token: token.to_string(),
            };
            // CPU figures here are the runner's: what the proxy costs.
            targets.push((
                format!("{RUNNER_TARGETS} via API port (CPU: runner)"),
                proxied,
                Some(runner.pid()),
            ));
        }
        targets
    }

    /// Stops both; terminal-host with SIGTERM and a wait, so that a profiler wrapped
    /// around it (`--binary`) writes its data.
    fn stop(self) {
        drop(self.ttyd);
        self.th.terminate();
    }
}

impl Args {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

/// Runs the measurements and prints the table.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let runner = Runner::start_with(RunnerOptions {
        with_terminal_host: args.proxy,
        ..Default::default()
    });
    let token = arcana_tests::register_admin(&runner, "bench", "bench password").await;
    anyhow::ensure!(
        args.binary.exists(),
        "{} is missing: run `cargo build --release -p terminal-host` (or pass --binary)",
        args.binary.display()
    );
    println!("terminal-host: {}", args.binary.display());
    let http = arcana_tests::client();
    let close_for =
        |source: &Source| -> Option<Box<dyn Fn(u64) -> futures::future::BoxFuture<'static, ()>>> {
            let Source::TerminalHost { base, token } = source else {
                return None;
            };
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            Some(Box::new(
                move |id: u64| -> futures::future::BoxFuture<'static, ()> {
                    let request = http
                .post(format!(
                    "{base}/api/arcana/terminal/sessions/00000000-0000-4000-8000-{id:012x}/close"
                ))
                .bearer_auth(&token);
                    Box::pin(async move {
                        let _ = request.send().await;
                    })
                },
            ))
        };
    let no_close = |_: u64| -> futures::future::BoxFuture<'static, ()> { Box::pin(async {}) };

    let mut session = 0u64;
    // Memory first, on servers that have not served anything yet; then fresh servers
    // for the rounds (ttyd 1.7.7 was seen routing a new session's input to another
    // shell after the memory phase's hundred sessions).
    let mut memory_figures = serde_json::Map::new();
    let servers = Servers::start(&runner, &args)?;
    for (name, source, pid) in servers.targets(&args, &runner, &token) {
        // The runner's terminal-host keeps its default session limit: no memory phase.
        let Some(pid) = pid.filter(|_| !name.starts_with(RUNNER_TARGETS)) else {
            continue;
        };
        let closer = close_for(&source);
        let close: &dyn Fn(u64) -> futures::future::BoxFuture<'static, ()> = match &closer {
            Some(c) => c,
            None => &no_close,
        };
        memory_figures.insert(
            name,
            memory(&source, pid, &args, &mut session, close).await?,
        );
    }
    servers.stop();

    let servers = Servers::start(&runner, &args)?;
    let targets = servers.targets(&args, &runner, &token);
    let names: Vec<String> = targets.iter().map(|(n, _, _)| n.clone()).collect();
    let mut figures: Vec<Figures> = targets.iter().map(|_| Figures::default()).collect();
    let mut failed_rounds = vec![0u32; targets.len()];
    for r in 0..args.rounds {
        for (i, (name, source, pid)) in targets.iter().enumerate() {
            let closer = close_for(source);
            let close: &dyn Fn(u64) -> futures::future::BoxFuture<'static, ()> = match &closer {
                Some(c) => c,
                None => &no_close,
            };
            // A stalled round is reported and skipped, not fatal to the whole run.
            if let Err(e) = round(source, *pid, &args, &mut figures[i], &mut session, close).await {
                println!("round {} on {name} failed: {e:#}", r + 1);
                failed_rounds[i] += 1;
            }
        }
        println!("round {} of {} done", r + 1, args.rounds);
    }
    let mut rows = serde_json::Map::new();
    for (i, f) in figures.iter().enumerate() {
        rows.insert(
            names[i].clone(),
            json!({
                "throughput_mb_s": median(&f.mb_per_s),
                "echo_p50_ms": percentile(&f.echo, 50.0),
                "echo_p99_ms": percentile(&f.echo, 99.0),
                "burst8_p90_ms": percentile(&f.burst, 90.0),
                "enter_to_prompt_p50_ms": percentile(&f.enter, 50.0),
                "connect_to_first_byte_p50_ms": percentile(&f.first_byte, 50.0),
                "cpu_per_keystroke_us": median(&f.cpu_per_key_us),
                "cpu_per_mb_ms": median(&f.cpu_per_mb_ms),
                "memory": memory_figures.get(&names[i]).cloned().unwrap_or(Value::Null),
                "failed_rounds": failed_rounds[i],
            }),
        );
    }
    print_table(&rows, &names);
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = json!({"rounds": args.rounds, "bytes": args.bytes, "targets": rows});
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    println!("results written to {}", args.out);
    servers.stop();
    Ok(())
}

fn print_table(rows: &serde_json::Map<String, Value>, names: &[String]) {
    let metrics = [
        ("throughput_mb_s", "throughput, MB/s", false),
        ("echo_p50_ms", "echo of one key p50, ms", true),
        ("echo_p99_ms", "echo of one key p99, ms", true),
        ("burst8_p90_ms", "burst of 8 keys p90, ms", true),
        ("enter_to_prompt_p50_ms", "Enter -> prompt p50, ms", true),
        (
            "connect_to_first_byte_p50_ms",
            "connect -> first byte p50, ms",
            true,
        ),
        ("cpu_per_keystroke_us", "server CPU per keystroke, us", true),
        ("cpu_per_mb_ms", "server CPU per MB, ms", true),
    ];
    let mut header = format!("{:<32}", "figure");
    for n in names {
        header.push_str(&format!(" | {n:>26}"));
    }
    header.push_str(" | terminal-host / ttyd");
    println!("{header}");
    for (key, label, _) in metrics {
        let mut line = format!("{label:<32}");
        for n in names {
            line.push_str(&format!(
                " | {:>26.3}",
                rows[n][key].as_f64().unwrap_or(f64::NAN)
            ));
        }
        if let (Some(a), Some(b)) = (
            rows.get("terminal-host").and_then(|r| r[key].as_f64()),
            rows.get("ttyd").and_then(|r| r[key].as_f64()),
        ) {
            line.push_str(&format!(" | {:.2}", a / b));
        }
        println!("{line}");
    }
    for n in names {
        if let Some(m) = rows[n]["memory"].as_object() {
            println!(
                "memory {n}: {:.1} KiB per idle session; RSS {} KiB at start, {} KiB with the idle sessions closed, \
                 {} KiB after 5 bulk sessions closed (kept {} KiB), {} KiB after 5 more (growth {} KiB)",
                m["per_idle_session_kib"].as_f64().unwrap_or(0.0),
                m["rss_start_kib"],
                m["rss_idle_closed_kib"],
                m["rss_after_bulk_kib"],
                m["kept_after_bulk_kib"],
                m["rss_after_second_bulk_kib"],
                m["growth_second_bulk_kib"],
            );
        }
    }
}
