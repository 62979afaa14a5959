//! Shells without the service's privileges, with real shells on real PTYs: the
//! configured user, the service's files out of reach, resource limits as flagged, a
//! fork bomb contained and its session still closable, root shells only when asked
//! for, the optional bubblewrap sandbox; and TCP_NODELAY on every accepted socket.
//!
//! Switching users needs root: where the tests do not run as root the ones that need
//! it print SKIPPED. The sandbox test needs `bwrap` (Debian's bubblewrap): without it
//! it prints SKIPPED, unless `ARCANA_REQUIRE_BWRAP=1` (CI), where that is a failure.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use arcana_tests::shell::{self, read_until, send};
use arcana_tests::{Runner, RunnerOptions, TerminalHost, client, register_admin};
use serde_json::Value;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED: {test} needs root (shells switch to another user)");
    }
    !is_root()
}

/// A backend whose database lives in a folder other users may enter, beside an `.env`
/// as `arcana up` writes it: what shells must not read is reachable by path.
struct Exposed {
    runner: Runner,
    admin: String,
    dir: tempfile::TempDir,
}

impl Exposed {
    async fn start() -> Exposed {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "SPIN_VARIABLE_JWT_SECRET=not-for-shells\n").unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
        let runner = Runner::start_with(RunnerOptions {
            runtime_config: Some(format!(
                "[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
                dir.path().join("arcana.db").display()
            )),
            ..Default::default()
        });
        let admin = register_admin(&runner, "root", "root password").await;
        Exposed { runner, admin, dir }
    }

    /// terminal-host on the same database (its runtime config written for it).
    fn terminal(&self, args: &[&str]) -> Result<TerminalHost, String> {
        std::fs::write(
            self.runner.dir.path().join("runtime-config.toml"),
            format!(
                "[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
                self.dir.path().join("arcana.db").display()
            ),
        )
        .unwrap();
        TerminalHost::try_start(&self.runner, args)
    }
}

/// Opens a shell, runs `command`, and returns what it printed up to `marker`.
async fn run(th: &TerminalHost, token: &str, command: &str, marker: &str) -> String {
    let (mut ws, _) = shell::open(&th.ws_url(&shell::new_session_id(), ""), token).await;
    send(&mut ws, &format!("{command}; echo {marker}-$((1+1))\r")).await;
    read_until(&mut ws, &format!("{marker}-2")).await
}

#[tokio::test]
async fn shells_run_as_the_shell_user_and_cannot_read_the_services_files() {
    if skip_unless_root("shells_run_as_the_shell_user") {
        return;
    }
    let env = Exposed::start().await;
    let th = env.terminal(&[]).unwrap();
    let d = env.dir.path().display();
    let out = run(
        &th,
        &env.admin,
        &format!(
            "id -u; cat {d}/arcana.db >/dev/null; echo db=$?; cat {d}/.env; echo env=$?; stat -c 'home=%U %a' ~"
        ),
        "done",
    )
    .await;
    assert!(
        out.contains("\n65534\r") || out.contains("65534\r\n"),
        "{out:?}"
    );
    assert!(out.contains("db=1"), "the database was readable: {out:?}");
    assert!(out.contains("env=1"), ".env was readable: {out:?}");
    assert!(out.contains("Permission denied"), "{out:?}");
    assert!(!out.contains("not-for-shells"), "{out:?}");
    assert!(out.contains("home=nobody 700"), "{out:?}");
}

#[tokio::test]
async fn resource_limits_match_the_flags() {
    let env = Exposed::start().await;
    let th = env
        .terminal(&[
            "--shell-max-processes",
            "300",
            "--shell-cpu-secs",
            "120",
            "--shell-max-file-bytes",
            "1048576",
            "--shell-max-memory-bytes",
            "2147483648",
        ])
        .unwrap();
    let out = run(
        &th,
        &env.admin,
        "echo \"u=$(ulimit -u) t=$(ulimit -t) f=$(ulimit -f) v=$(ulimit -v)\"",
        "limits",
    )
    .await;
    // bash reports file size in 1024-byte blocks and address space in KiB.
    assert!(out.contains("u=300 t=120 f=1024 v=2097152"), "{out:?}");
}

/// Processes whose environment names `session_id` (root may read any environment).
fn processes_of(session_id: &str) -> Vec<u32> {
    let needle = format!("ARCANA_SESSION_ID={session_id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_its_session_still_closes() {
    if skip_unless_root("a_fork_bomb_is_contained") {
        return;
    }
    let env = Exposed::start().await;
    let th = env.terminal(&["--shell-max-processes", "40"]).unwrap();
    let id = shell::new_session_id();
    let (mut ws, _) = shell::open(&th.ws_url(&id, ""), &env.admin).await;
    send(&mut ws, "bomb() { bomb | bomb & }; bomb\r").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = processes_of(&id).len();
    assert!(running <= 45, "{running} processes: the limit did not hold");
    // terminal-host itself is unharmed and the session closes.
    let health = client()
        .get(th.at("/api/arcana/terminal/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let started = Instant::now();
    let resp = client()
        .post(th.at(&format!("/api/arcana/terminal/sessions/{id}/close")))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let closed: Value = resp.json().await.unwrap();
    assert_eq!(closed["status"], "closed", "{closed}");
    while !processes_of(&id).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} processes of the bomb outlived their session",
            processes_of(&id).len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn root_shells_need_to_be_asked_for() {
    if skip_unless_root("root_shells_need_to_be_asked_for") {
        return;
    }
    let env = Exposed::start().await;
    let refused = env
        .terminal(&["--shell-user", "root"])
        .err()
        .expect("must refuse");
    assert!(
        refused.contains("refusing to start shells as root"),
        "{refused}"
    );
    let th = env
        .terminal(&["--shell-user", "root", "--allow-root-shells"])
        .unwrap();
    assert!(th.log().contains("SHELLS RUN AS ROOT"), "{}", th.log());
    let out = run(&th, &env.admin, "id -u", "uid").await;
    assert!(
        out.contains("\r0\r\n") || out.contains("\n0\r\n"),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_sandbox_confines_a_shell_to_its_home() {
    let bwrap = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("bwrap").is_file()))
        .unwrap_or(false);
    if !bwrap {
        if std::env::var("ARCANA_REQUIRE_BWRAP").as_deref() == Ok("1") {
            panic!(
                "bwrap is not installed but ARCANA_REQUIRE_BWRAP=1 (apt-get install bubblewrap)"
            );
        }
        eprintln!("SKIPPED: the_sandbox_confines_a_shell_to_its_home (no bwrap)");
        return;
    }
    let env = Exposed::start().await;
    let th = env.terminal(&["--shell-sandbox", "bwrap"]).unwrap();
    let d = env.dir.path().display();
    let out = run(
        &th,
        &env.admin,
        &format!("ls {d} 2>&1 | head -1; echo made > ~/mine && cat ~/mine; ls / | tr '\\n' ' '"),
        "sandbox",
    )
    .await;
    assert!(
        out.contains("No such file or directory"),
        "the host was visible: {out:?}"
    );
    assert!(
        out.contains("made\r\n"),
        "the home was not writable: {out:?}"
    );
    assert!(
        !out.contains(" work ") && !out.contains(" root "),
        "{out:?}"
    );
}

/// Whether the server side of the TCP connection whose local end is `local_port` has
/// TCP_NODELAY: its socket is found in `pid`'s descriptors by inode and duplicated here.
fn server_has_nodelay(pid: u32, server_port: u16, local_port: u16) -> bool {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    // The server's socket: local address :server_port, remote :local_port.
    let inode = tcp
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            (port(f[1]) == Some(server_port) && port(f[2]) == Some(local_port))
                .then(|| f[9].to_string())
        })
        .expect("the server side of the connection");
    let target = format!("socket:[{inode}]");
    let fd = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .expect("the socket among the server's descriptors");
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    let socket =
        rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
            .unwrap();
    rustix::net::sockopt::tcp_nodelay(&socket).unwrap()
}

#[tokio::test]
async fn accepted_sockets_have_tcp_nodelay() {
    let env = Exposed::start().await;
    let th = env.terminal(&[]).unwrap();
    for (name, url, pid) in [
        ("runner", env.runner.url.clone(), env.runner.pid()),
        ("terminal-host", th.url.clone(), th.pid()),
    ] {
        let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Let the server accept it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let local = stream.local_addr().unwrap().port();
        assert!(
            server_has_nodelay(pid, addr.port(), local),
            "{name}: no TCP_NODELAY"
        );
    }
    // And on a live shell's WebSocket.
    let id = shell::new_session_id();
    let (ws, _) = shell::open(&th.ws_url(&id, ""), &env.admin).await;
    let local = match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().unwrap().port(),
        _ => unreachable!("plain ws"),
    };
    let port: u16 = th.url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        server_has_nodelay(th.pid(), port, local),
        "shell socket: no TCP_NODELAY"
    );
}
