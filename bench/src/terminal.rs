//! terminal-host benchmarks, each against a bare PTY driven from this process in the
//! same run: output throughput, keystroke echo latency, and memory per idle session.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use arcana_tests::{Runner, TerminalHost};
use futures::{SinkExt, StreamExt};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Options of the terminal benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Bytes of input to `base64` for the throughput test.
    #[arg(long, default_value_t = 50_000_000)]
    bytes: u64,
    /// Keystrokes for the latency test.
    #[arg(long, default_value_t = 300)]
    keystrokes: usize,
    /// Idle sessions for the memory test.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/terminal.json")]
    out: String,
}

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

async fn connect(th: &TerminalHost, id: &str, token: &str) -> anyhow::Result<Ws> {
    let mut req = th.ws_url(id, "").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    // hello
    while let Some(msg) = ws.next().await {
        if let Message::Text(_) = msg? {
            break;
        }
    }
    Ok(ws)
}

/// Reads output until `needle` appears; returns bytes read.
async fn drain_until(ws: &mut Ws, needle: &[u8]) -> anyhow::Result<usize> {
    let mut total = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(120), ws.next()).await? {
            Some(Ok(Message::Binary(b))) => {
                total += b.len();
                tail.extend_from_slice(&b);
                if tail.windows(needle.len()).any(|w| w == needle) {
                    return Ok(total);
                }
                let keep = tail.len().saturating_sub(needle.len());
                tail.drain(..keep);
            }
            Some(Ok(_)) => {}
            other => anyhow::bail!("socket ended: {other:?}"),
        }
    }
}

fn bare_pty_throughput(bytes: u64) -> anyhow::Result<(Duration, usize)> {
    let pair = native_pty_system().openpty(PtySize {
        rows: 24,
        cols: 80,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut cmd = CommandBuilder::new("/bin/bash");
    cmd.args(["-c", &format!("head -c {bytes} /dev/zero | base64")]);
    let started = Instant::now();
    let mut child = pair.slave.spawn_command(cmd)?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader()?;
    let mut buf = vec![0u8; 16384];
    let mut total = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    child.wait()?;
    Ok((started.elapsed(), total))
}

fn bare_pty_latency(keystrokes: usize) -> anyhow::Result<Vec<Duration>> {
    let pair = native_pty_system().openpty(PtySize {
        rows: 24,
        cols: 80,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut child = pair.slave.spawn_command(CommandBuilder::new("cat"))?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader()?;
    let mut writer = pair.master.take_writer()?;
    std::thread::sleep(Duration::from_millis(200));
    let mut lat = Vec::new();
    let mut buf = [0u8; 64];
    for i in 0..keystrokes {
        let c = b'a' + (i % 26) as u8;
        let t = Instant::now();
        writer.write_all(&[c])?;
        loop {
            let n = reader.read(&mut buf)?;
            if buf[..n].contains(&c) {
                break;
            }
        }
        lat.push(t.elapsed());
    }
    child.kill()?;
    Ok(lat)
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx].as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs all three measurements and prints ratios.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let runner = Runner::start();
    let token = arcana_tests::register_admin(&runner, "bench", "bench password").await;
    let max = (args.sessions + 10).to_string();
    let th = TerminalHost::start(
        &runner,
        &["--max-sessions-per-user", &max, "--record", "false"],
    );

    // Throughput.
    let bytes = args.bytes;
    let (pty_time, pty_bytes) =
        tokio::task::spawn_blocking(move || bare_pty_throughput(bytes)).await??;
    let mut ws = connect(&th, &uuid(1), &token).await?;
    // `$((6*7))`: the awaited marker must differ from the echo of the typed command.
    let cmd = format!("head -c {bytes} /dev/zero | base64; echo __DONE$((6*7))\r");
    let started = Instant::now();
    ws.send(Message::Binary(cmd.into_bytes().into())).await?;
    let ws_bytes = drain_until(&mut ws, b"__DONE42\r\n").await?;
    let ws_time = started.elapsed();
    let pty_mbps = pty_bytes as f64 / pty_time.as_secs_f64() / 1e6;
    let ws_mbps = ws_bytes as f64 / ws_time.as_secs_f64() / 1e6;
    println!(
        "throughput: websocket {ws_mbps:.1} MB/s ({ws_bytes} B in {ws_time:.2?}) | bare PTY {pty_mbps:.1} MB/s | ratio {:.3}",
        ws_mbps / pty_mbps
    );

    // Keystroke echo latency (`cat` in canonical mode echoes each key).
    ws.send(Message::Binary(b"cat\r".to_vec().into())).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), ws.next()).await {}
    let mut ws_lat = Vec::new();
    for i in 0..args.keystrokes {
        let c = b'a' + (i % 26) as u8;
        let t = Instant::now();
        ws.send(Message::Binary(vec![c].into())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.contains(&c) => break,
                Some(Ok(_)) => {}
                other => anyhow::bail!("socket ended: {other:?}"),
            }
        }
        ws_lat.push(t.elapsed());
    }
    let n = args.keystrokes;
    let mut pty_lat = tokio::task::spawn_blocking(move || bare_pty_latency(n)).await??;
    let (ws_p50, ws_p99) = (percentile(&mut ws_lat, 50.0), percentile(&mut ws_lat, 99.0));
    let (pty_p50, pty_p99) = (
        percentile(&mut pty_lat, 50.0),
        percentile(&mut pty_lat, 99.0),
    );
    println!(
        "keystroke echo: websocket p50 {ws_p50:.3} ms p99 {ws_p99:.3} ms | bare PTY p50 {pty_p50:.3} ms p99 {pty_p99:.3} ms | p50 ratio {:.1}x",
        ws_p50 / pty_p50
    );
    drop(ws);

    // Memory per idle session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(th.pid());
    let mut sockets = Vec::new();
    for i in 0..args.sessions {
        let mut ws = connect(&th, &uuid(1000 + i as u64), &token).await?;
        ws.send(Message::Binary(b"echo ready\r".to_vec().into()))
            .await?;
        drain_until(&mut ws, b"ready\r\n").await?;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(th.pid());
    let per_session = (after.saturating_sub(before)) as f64 / args.sessions as f64;
    println!(
        "memory: terminal-host RSS {before} KiB -> {after} KiB with {} idle sessions = {per_session:.1} KiB per session (shell processes not included)",
        args.sessions
    );

    let results = json!({
        "throughput": {"websocket_mb_s": ws_mbps, "bare_pty_mb_s": pty_mbps, "ratio": ws_mbps / pty_mbps, "bytes": ws_bytes},
        "keystroke_ms": {"websocket_p50": ws_p50, "websocket_p99": ws_p99, "bare_pty_p50": pty_p50, "bare_pty_p99": pty_p99, "p50_ratio": ws_p50 / pty_p50},
        "memory": {"sessions": args.sessions, "rss_before_kib": before, "rss_after_kib": after, "per_session_kib": per_session},
    });
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
