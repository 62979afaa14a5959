//! Slow and abusive clients against the front door of the runner and of terminal-host:
//! hundreds of connections that send half a request head, or a head and a trickle of
//! body, must not starve a normal client, and must be closed within the configured
//! timeouts; past the per-address cap a connection is refused at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arcana_tests::{Runner, RunnerOptions, TerminalHost, client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Half a request head, or a whole head announcing 1000 body bytes and 12 of them.
async fn slow_connection(addr: SocketAddr, i: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let text = if i.is_multiple_of(2) {
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: appl".to_string()
    } else {
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"username\":".to_string()
    };
    s.write_all(text.as_bytes()).await.unwrap();
    s
}

/// Whether the server closed the connection (EOF or reset) within `limit`; an answer
/// such as 408 may come first.
async fn closed_within(mut s: TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Holds 500 slow connections to `addr` while `probe` keeps asking `health`; every probe
/// is answered and every slow connection is closed by the server.
async fn slow_clients_starve_nobody(addr: SocketAddr, health: String) {
    let http = client();
    // The normal client is there before the attack (and reconnects as it likes).
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    let mut slow = Vec::new();
    for i in 0..500 {
        slow.push(slow_connection(addr, i).await);
    }
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let resp = tokio::time::timeout(Duration::from_secs(10), http.get(&health).send())
            .await
            .expect("health must answer during the attack")
            .unwrap();
        assert_eq!(resp.status(), 200);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered >= 10, "{answered} probes");
    // Timeouts are 2 s (head) and 2 s idle / 4 s total (body): all closed well within 15 s.
    let results = futures::future::join_all(
        slow.into_iter()
            .map(|s| closed_within(s, Duration::from_secs(15))),
    )
    .await;
    let open = results.iter().filter(|closed| !**closed).count();
    assert_eq!(open, 0, "{open} slow connections were still open");
}

const TIMEOUTS: &[&str] = &[
    "--header-read-timeout-secs",
    "2",
    "--body-idle-timeout-secs",
    "2",
    "--body-timeout-secs",
    "4",
    "--max-connections-per-ip",
    "1000",
];

#[tokio::test]
async fn slow_heads_and_bodies_starve_nobody_on_the_runner() {
    let r = Runner::start_with(RunnerOptions::default().args(TIMEOUTS));
    let addr: SocketAddr = r.url.trim_start_matches("http://").parse().unwrap();
    slow_clients_starve_nobody(addr, r.at("/api/health")).await;
}

#[tokio::test]
async fn slow_heads_and_bodies_starve_nobody_on_terminal_host() {
    let r = Runner::start();
    let th = TerminalHost::start(&r, TIMEOUTS);
    let addr: SocketAddr = th.url.trim_start_matches("http://").parse().unwrap();
    slow_clients_starve_nobody(addr, th.at("/api/arcana/terminal/health")).await;
}

#[tokio::test]
async fn a_slow_body_gets_408_and_a_huge_one_413() {
    let r = Runner::start_with(RunnerOptions::default().args(&[
        "--body-idle-timeout-secs",
        "1",
        "--max-request-body-bytes",
        "4096",
    ]));
    let addr: SocketAddr = r.url.trim_start_matches("http://").parse().unwrap();
    let mut s = slow_connection(addr, 1).await;
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    let resp = client()
        .post(r.at("/api/auth/login"))
        .header("content-type", "application/json")
        .body(vec![b' '; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_refused_at_once() {
    let r = Runner::start_with(RunnerOptions::default().args(&["--max-connections-per-ip", "5"]));
    let addr: SocketAddr = r.url.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Give the server a moment to count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    extra
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .expect("refused at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client()
            .get(r.at("/api/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

arcana_tests::both_hosts! {
    async fn a_request_without_host_is_refused_and_one_with_it_served() {
        // HTTP/1.0 allows leaving Host out (old clients, some health checkers); there is
        // then no URL to give a component: Spin drops the connection, the runner answers
        // 400. Neither serves it nor fails with a 500. With Host, HTTP/1.0 is served.
        let runner = Runner::start_with(RunnerOptions::default());
        let addr: SocketAddr = runner.url.trim_start_matches("http://").parse().unwrap();
        for (head, served) in [
            ("GET /api/health HTTP/1.0\r\nHost: arcana\r\n\r\n", true),
            ("GET /api/health HTTP/1.0\r\n\r\n", false),
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
            let text = String::from_utf8_lossy(&answer);
            let status_line = text.lines().next().unwrap_or("");
            if served {
                assert!(status_line.contains(" 200 ") && text.contains("\"status\""), "{head:?}: {text}");
            } else {
                assert!(!status_line.contains(" 200 ") && !status_line.contains(" 500 "), "{head:?}: {text}");
                if runner.host == arcana_tests::Host::Runner {
                    assert!(status_line.contains(" 400 "), "{text}");
                }
            }
        }
    }
}
