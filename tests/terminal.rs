//! terminal-host over real WebSockets and real PTYs on 127.0.0.1: shells, resize,
//! history from shell integration, reattach, closing process trees, authentication,
//! Origin checks, crash recovery, flow control and resource leaks.

use std::time::{Duration, Instant};

use arcana_tests::both_hosts;
use arcana_tests::shell::{self, Ws, next_json, read_until, send};
use arcana_tests::{Runner, RunnerOptions, TerminalHost, children_of, client, login};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Env {
    runner: Runner,
    th: TerminalHost,
    admin: String,
}

async fn setup(args: &[&str]) -> Env {
    let runner = Runner::start_with(RunnerOptions::default());
    let admin = arcana_tests::register_admin(&runner, "root", "root password").await;
    let th = TerminalHost::start(&runner, args);
    Env { runner, th, admin }
}

impl Env {
    /// Creates a user with permissions and returns their token.
    async fn user(&self, name: &str, permissions: Value) -> String {
        let resp = client()
            .post(self.runner.at("/api/admin/users"))
            .bearer_auth(&self.admin)
            .json(
                &json!({"username": name, "password": "user password", "permissions": permissions}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        login(&self.runner, name, "user password").await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = client()
            .get(self.th.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = client()
            .post(self.th.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn new_id() -> String {
    shell::new_session_id()
}

/// Connects with a bearer token (and optionally an Origin); the HTTP status on refusal.
async fn try_connect(
    th: &TerminalHost,
    id: &str,
    token: Option<&str>,
    origin: Option<&str>,
    query: &str,
) -> Result<Ws, u16> {
    shell::try_open(&th.ws_url(id, query), token, origin).await
}

async fn connect(th: &TerminalHost, id: &str, token: &str) -> (Ws, Value) {
    shell::open(&th.ws_url(id, ""), token).await
}

async fn history(env: &Env, id: &str, token: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = env
            .get(
                &format!("/api/arcana/terminal/sessions/{id}/history"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= want || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_hosts! {
    async fn echo_round_trip_and_a_clean_environment() {
        let env = setup(&[]).await;
        let id = new_id();
        let (mut ws, hello) = connect(&env.th, &id, &env.admin).await;
        assert_eq!(hello["reattached"], false);
        send(&mut ws, "echo hello-$((6*7))\r").await;
        read_until(&mut ws, "hello-42").await;
        send(
            &mut ws,
            "echo secret=[${SPIN_VARIABLE_JWT_SECRET}] term=$TERM\r",
        )
        .await;
        read_until(&mut ws, "secret=[] term=xterm-256color").await;
    }
}

#[tokio::test]
async fn resize_reaches_the_pty() {
    let env = setup(&[]).await;
    let id = new_id();
    let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 123, "rows": 45})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    send(&mut ws, "stty size\r").await;
    read_until(&mut ws, "45 123").await;
}

both_hosts! {
    async fn history_records_commands_as_the_shell_ran_them() {
        let env = setup(&[]).await;
        let id = new_id();
        let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
        send(&mut ws, "echo abX\x7fc\r").await; // backspace edits the line
        read_until(&mut ws, "abc").await;
        send(&mut ws, "\x1b[A\r").await; // arrow-up recalls it
        send(&mut ws, "echo done1\r").await;
        read_until(&mut ws, "done1").await;
        send(&mut ws, "fals\t\r").await; // tab completes `false`
        send(&mut ws, "echo done2\r").await;
        read_until(&mut ws, "done2").await;

        let items = history(&env, &id, &env.admin, 5).await;
        let commands: Vec<&str> = items
            .iter()
            .map(|i| i["command"].as_str().unwrap())
            .collect();
        assert_eq!(
            commands,
            vec!["echo abc", "echo abc", "echo done1", "false", "echo done2"]
        );
        assert_eq!(items[0]["exit_code"], 0);
        assert_eq!(items[3]["exit_code"], 1);
        assert!(items[0]["output"].as_str().unwrap().contains("abc"));
        // The integration sequences never reach the user.
        send(&mut ws, "echo visible\r").await;
        let out = read_until(&mut ws, "visible\r\n").await;
        assert!(!out.contains("6973"), "{out:?}");

        let (_, sessions) = env.get("/api/arcana/terminal/sessions", &env.admin).await;
        assert_eq!(sessions["items"][0]["id"], id);
        assert!(sessions["items"][0]["commands_run"].as_i64().unwrap() >= 5);
    }
}

fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim().chars().next()
}

#[tokio::test]
async fn close_kills_the_whole_process_tree() {
    let env = setup(&[]).await;
    let id = new_id();
    let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
    // `$((6*7))` makes the awaited text differ from the echo of what was typed.
    send(&mut ws, "sleep 1000 & echo BG=$! SH=$$ END$((6*7))\r").await;
    let out = read_until(&mut ws, "END42").await;
    let grab = |key: &str| -> u32 {
        let start = out.rfind(key).unwrap() + key.len();
        out[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let (bg, sh) = (grab("BG="), grab("SH="));
    assert!(
        matches!(process_state(bg), Some(s) if s != 'Z'),
        "the background job runs"
    );

    let (status, row) = env
        .post(
            &format!("/api/arcana/terminal/sessions/{id}/close"),
            &env.admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(row["status"], "closed");
    assert_eq!(row["end_reason"], "closed_by_user");
    let exit = next_json(&mut ws).await;
    assert_eq!(exit["type"], "exit");

    for pid in [bg, sh] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(process_state(pid), Some(s) if s != 'Z') {
            assert!(
                Instant::now() < deadline,
                "process {pid} survived the close"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let zombies: Vec<u32> = children_of(env.th.pid())
        .into_iter()
        .filter(|p| process_state(*p) == Some('Z'))
        .collect();
    assert!(
        zombies.is_empty(),
        "terminal-host left zombies: {zombies:?}"
    );
}

both_hosts! {
    async fn reattach_replays_output_and_keeps_the_shell() {
        let env = setup(&[]).await;
        let id = new_id();
        let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
        send(&mut ws, "export KEEP=still-here; echo marker-one\r").await;
        read_until(&mut ws, "marker-one\r\n").await;
        drop(ws); // a page reload

        let (mut ws, hello) = connect(&env.th, &id, &env.admin).await;
        assert_eq!(hello["reattached"], true);
        let replay = read_until(&mut ws, "marker-one").await;
        assert!(replay.contains("echo marker-one"));
        send(&mut ws, "echo $KEEP\r").await;
        read_until(&mut ws, "still-here").await;
    }
}

both_hosts! {
    async fn refused_connections_start_no_shell() {
        let env = setup(&[]).await;
        let plain = env.user("plain", json!([])).await;
        let other = env.user("other", json!(["terminal"])).await;
        let id = new_id();
        let (_ws, _) = connect(&env.th, &id, &env.admin).await;

        assert_eq!(
            try_connect(&env.th, &new_id(), None, None, "").await.err(),
            Some(401)
        );
        assert_eq!(
            try_connect(&env.th, &new_id(), Some("forged.token.x"), None, "")
                .await
                .err(),
            Some(401)
        );
        assert_eq!(
            try_connect(&env.th, &new_id(), Some(&plain), None, "")
                .await
                .err(),
            Some(403)
        );
        assert_eq!(
            try_connect(&env.th, &id, Some(&other), None, "")
                .await
                .err(),
            Some(404)
        );
        assert_eq!(
            try_connect(
                &env.th,
                &new_id(),
                Some(&env.admin),
                Some("https://evil.example"),
                ""
            )
            .await
            .err(),
            Some(403)
        );
        assert_eq!(
            try_connect(&env.th, "not-a-uuid", Some(&env.admin), None, "")
                .await
                .err(),
            Some(404)
        );
        // An allowed browser origin with a single-use ticket works, once.
        let (status, t) = env.post("/api/arcana/terminal/tickets", &other).await;
        assert_eq!(status, 201);
        let ticket = t["ticket"].as_str().unwrap();
        let q = format!("?ticket={ticket}");
        let own = new_id();
        let mut ticketed = try_connect(&env.th, &own, None, Some("http://localhost:5173"), &q)
            .await
            .expect("a ticket opens a session");
        // `hello` is sent once the session's row is written.
        assert_eq!(next_json(&mut ticketed).await["type"], "hello");
        assert_eq!(
            try_connect(&env.th, &new_id(), None, None, &q).await.err(),
            Some(401)
        );

        // Only the admin's session and the ticket user's exist; the refused ones never started.
        let (_, all) = env
            .get("/api/arcana/terminal/sessions?all=true", &env.admin)
            .await;
        assert_eq!(all["items"].as_array().unwrap().len(), 2);
        let (status, _) = env
            .get(
                &format!("/api/arcana/terminal/sessions/{id}/history"),
                &other,
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = env
            .get("/api/arcana/terminal/sessions?all=true", &other)
            .await;
        assert_eq!(status, 403);
    }
}

#[tokio::test]
async fn sessions_left_active_by_a_crash_are_closed_on_restart() {
    // The same host id across the restart, as a fixed port gives by default
    // (`hostname:port`); the test's port is a new free one each start.
    let identity = ["--host-id", "restarting-host"];
    let env = setup(&identity).await;
    let id = new_id();
    {
        let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
        send(&mut ws, "echo up\r").await;
        read_until(&mut ws, "up").await;
    }
    let Env { runner, th, admin } = env;
    th.crash();
    let th = TerminalHost::start(&runner, &identity);
    let env = Env { runner, th, admin };
    let (_, page) = env.get("/api/arcana/terminal/sessions", &env.admin).await;
    let row = &page["items"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["status"], "closed");
    assert_eq!(row["end_reason"], "host_restart");
    assert_eq!(
        try_connect(&env.th, &id, Some(&env.admin), None, "")
            .await
            .err(),
        Some(409),
        "a closed session cannot be reopened"
    );
}

#[tokio::test]
async fn graceful_shutdown_closes_sessions() {
    let env = setup(&[]).await;
    let id = new_id();
    let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
    send(&mut ws, "echo alive\r").await;
    read_until(&mut ws, "alive").await;
    let Env { runner, th, admin } = env;
    assert!(th.terminate().success());
    let exit = next_json(&mut ws).await;
    assert_eq!(exit["reason"], "host_shutdown");
    let th = TerminalHost::start(&runner, &[]);
    let env = Env { runner, th, admin };
    let (_, page) = env.get("/api/arcana/terminal/sessions", &env.admin).await;
    assert_eq!(page["items"][0]["end_reason"], "host_shutdown");
}

both_hosts! {
    async fn recordings_are_asciicast_v2_for_the_owner_only() {
        let env = setup(&[]).await;
        let id = new_id();
        let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
        send(&mut ws, "echo recorded-☃\r").await;
        read_until(&mut ws, "recorded-☃\r\n").await;
        env.post(
            &format!("/api/arcana/terminal/sessions/{id}/close"),
            &env.admin,
        )
        .await;
        let resp = client()
            .get(
                env.th
                    .at(&format!("/api/arcana/terminal/sessions/{id}/recording")),
            )
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-asciicast");
        let text = resp.text().await.unwrap();
        let mut lines = text.lines();
        let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        let output: String = lines
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap().to_string())
            .collect();
        assert!(output.contains("recorded-☃"), "{output:?}");
        let other = env.user("viewer", json!(["terminal"])).await;
        let resp = client()
            .get(
                env.th
                    .at(&format!("/api/arcana/terminal/sessions/{id}/recording")),
            )
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_slow_client_gets_every_byte_without_unbounded_buffering() {
    let env = setup(&["--record", "false"]).await;
    let id = new_id();
    let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
    // 12 MB of output; the client does not read for 2 s.
    send(
        &mut ws,
        "head -c 9000000 /dev/zero | base64 -w 100; echo END-OF-$((6*7))\r",
    )
    .await;
    let before = rss_kib(env.th.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_kib(env.th.pid());
    assert!(
        during < before + 32 * 1024,
        "terminal-host buffered {} KiB",
        during - before
    );
    let mut a_lines = 0usize;
    let mut odd: Vec<String> = Vec::new();
    let mut carry = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "output did not finish");
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Binary(b) = msg else { continue };
        carry.push_str(&String::from_utf8_lossy(&b));
        let done = carry.contains("END-OF-42\r\n");
        let last_nl = carry.rfind('\n').map(|i| i + 1).unwrap_or(0);
        for l in carry[..last_nl].lines() {
            // The first line follows the shell's bracketed-paste switch and a '\r'.
            let l = l.rsplit('\r').next().unwrap_or(l);
            if l.trim_end().len() == 100 && l.starts_with("AAAA") {
                a_lines += 1;
            } else if odd.len() < 5 {
                odd.push(l.chars().take(200).collect());
            }
        }
        carry = carry[last_nl..].to_string();
        if done {
            break;
        }
    }
    // 9,000,000 zero bytes are 12,000,000 base64 characters: 120,000 full lines.
    assert_eq!(
        a_lines, 120_000,
        "output was lost or reordered; other lines: {odd:?}"
    );
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn hundreds_of_sessions_leave_no_processes_or_descriptors() {
    let env = setup(&["--max-sessions-per-user", "1000"]).await;
    // Warm up once, then measure.
    let warm = new_id();
    let (ws, _) = connect(&env.th, &warm, &env.admin).await;
    drop(ws);
    env.post(
        &format!("/api/arcana/terminal/sessions/{warm}/close"),
        &env.admin,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = env.th.pid();
    let fds_before = fd_count(pid);
    let mut ids = Vec::new();
    for _ in 0..150 {
        let id = new_id();
        let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
        ws.close(None).await.ok();
        ids.push(id);
    }
    for id in &ids {
        let (status, _) = env
            .post(
                &format!("/api/arcana/terminal/sessions/{id}/close"),
                &env.admin,
            )
            .await;
        assert_eq!(status, 200);
    }
    // Reattach churn on one session.
    let id = new_id();
    for _ in 0..100 {
        let (ws, _) = connect(&env.th, &id, &env.admin).await;
        drop(ws);
    }
    env.post(
        &format!("/api/arcana/terminal/sessions/{id}/close"),
        &env.admin,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let children = children_of(pid);
    assert!(children.is_empty(), "processes left behind: {children:?}");
    let fds_after = fd_count(pid);
    assert!(
        fds_after <= fds_before + 4,
        "descriptors grew from {fds_before} to {fds_after}"
    );
    let refused = client().get(env.th.at("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "metrics need the token or an admin");
    let metrics = client()
        .get(env.th.at("/metrics"))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("arcana_terminal_sessions_active 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn arcana_up_starts_terminal_host_beside_the_components() {
    let runner = Runner::start_with(RunnerOptions {
        with_terminal_host: true,
        ..Default::default()
    });
    let url = runner
        .terminal_url
        .clone()
        .expect("terminal-host url printed");
    let health: Value = client()
        .get(format!("{url}/api/arcana/terminal/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    // Killed without a chance to clean up (SIGKILL), the runner must not leave
    // terminal-host behind.
    let port = url.rsplit(':').next().unwrap().to_string();
    drop(runner);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok() {
        assert!(
            Instant::now() < deadline,
            "terminal-host outlived the runner"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_closed(env: &Env, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, page) = env.get("/api/arcana/terminal/sessions", &env.admin).await;
        if let Some(row) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            && row["status"] == "closed"
        {
            return row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "session {id} did not close: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn limits_close_idle_old_and_abandoned_sessions_and_cap_live_ones() {
    let env = setup(&[
        "--max-sessions-per-user",
        "2",
        "--idle-timeout-secs",
        "2",
        "--max-lifetime-secs",
        "4",
        "--detach-grace-secs",
        "1",
    ])
    .await;
    // An abandoned session closes after the detach grace.
    let abandoned = new_id();
    drop(connect(&env.th, &abandoned, &env.admin).await);
    assert_eq!(
        wait_closed(&env, &abandoned).await["end_reason"],
        "detached_timeout"
    );

    // A quiet session closes at the idle timeout; the socket hears why.
    let idle = new_id();
    let (mut ws, _) = connect(&env.th, &idle, &env.admin).await;
    let busy = new_id();
    let (mut busy_ws, _) = connect(&env.th, &busy, &env.admin).await;
    // Two live sessions: a third is refused.
    assert_eq!(
        try_connect(&env.th, &new_id(), Some(&env.admin), None, "")
            .await
            .err(),
        Some(429)
    );
    // Keep one session busy with output so only the lifetime limit can end it.
    send(&mut busy_ws, "while true; do echo tick; sleep 0.5; done\r").await;
    let exit = loop {
        let msg = next_json(&mut ws).await;
        if msg["type"] == "exit" {
            break msg;
        }
    };
    assert_eq!(exit["reason"], "idle_timeout");
    assert_eq!(wait_closed(&env, &busy).await["end_reason"], "lifetime");
}

#[tokio::test]
async fn oversized_messages_close_the_socket_not_the_server() {
    let env = setup(&["--max-message-bytes", "1024"]).await;
    let id = new_id();
    let (mut ws, _) = connect(&env.th, &id, &env.admin).await;
    let _ = ws.send(Message::Binary(vec![b'x'; 64 * 1024].into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(ended, "an oversized frame must end the connection");
    // The session survives and can be reattached.
    let (mut ws, hello) = connect(&env.th, &id, &env.admin).await;
    assert_eq!(hello["reattached"], true);
    send(&mut ws, "echo still-$((1+1))\r").await;
    read_until(&mut ws, "still-2").await;
}

/// `arcana up` supervises terminal-host: killed with SIGKILL, it is reaped and started
/// again on the same address, shells work again within seconds, and the status says so.
#[tokio::test]
async fn a_killed_terminal_host_is_restarted_and_reaped() {
    let runner = Runner::start_with(RunnerOptions {
        with_terminal_host: true,
        ..Default::default()
    });
    let admin = arcana_tests::register_admin(&runner, "root", "root password").await;
    let url = runner.terminal_url.clone().unwrap();
    let status = |token: String| {
        let at = runner.at("/api/arcana/status");
        async move {
            let v: Value = client()
                .get(at)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["terminal_host"].clone()
        }
    };
    assert_eq!(
        status(admin.clone()).await,
        json!({"up": true, "restarts": 0})
    );
    let old: Vec<u32> = children_of(runner.pid())
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "terminal-host")
        })
        .collect();
    assert_eq!(old.len(), 1, "one terminal-host under the runner");
    let _ = std::process::Command::new("kill")
        .args(["-9", &old[0].to_string()])
        .status();

    let ws = url.replacen("http://", "ws://", 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut socket = loop {
        let target = format!("{ws}/ws/shell/{}", new_id());
        match shell::try_open(&target, Some(&admin), None).await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(code) => panic!("no shell after the restart: {code}"),
        }
    };
    next_json(&mut socket).await;
    send(&mut socket, "echo back-$((40+2))\r").await;
    read_until(&mut socket, "back-42").await;
    assert_eq!(
        status(admin.clone()).await,
        json!({"up": true, "restarts": 1})
    );
    // The killed process was reaped: no zombie left under the runner.
    assert_eq!(
        process_state(old[0]),
        None,
        "the old terminal-host is a zombie"
    );
}
