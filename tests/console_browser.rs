//! The web console in real Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `console/node_modules`; no browser is downloaded), on both hosts through one
//! origin: the runner's own address, and nginx in front of real `spin up` and
//! terminal-host. `tests/browser/console.mjs` signs in, adds a model as the admin,
//! watches a reply stream, reloads mid-stream and sees it continue, stops one, edits
//! memory, runs `echo` in the terminal, opens the API reference, and fails on any
//! console error or Content-Security-Policy violation. Screenshots of a failing step go
//! to `target/browser-artifacts/<host>/`.
//!
//! Needs node, chromium and `npm --prefix console ci`; without them the tests say
//! SKIPPED, unless `ARCANA_REQUIRE_BROWSER=1` (CI) makes that a failure.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use arcana_tests::backend::Backend;
use arcana_tests::origin::Origin;
use arcana_tests::{Host, RunnerOptions, both_hosts, repo_root, target_dir};

/// Chromium's path (`CHROMIUM` overrides).
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether the browser test can run here; says why not.
fn browser_available() -> bool {
    let missing = if !chromium().exists() {
        Some("chromium is not installed (apt-get install chromium)")
    } else if !repo_root()
        .join("console/node_modules/playwright-core")
        .exists()
    {
        Some("console/node_modules is missing (npm --prefix console ci)")
    } else if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        Some("node is not installed")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("ARCANA_REQUIRE_BROWSER").is_some() => {
            panic!("ARCANA_REQUIRE_BROWSER is set but {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

both_hosts! {
    async fn the_console_works_end_to_end_in_chromium() {
        if !browser_available() {
            return;
        }
        let env = Backend::start_with(RunnerOptions {
            with_terminal_host: Host::current() == Host::Runner,
            ..Default::default()
        })
        .await;
        let Some(origin) = Origin::start(&env.runner) else { return };
        // The admin adds the model through the console; the provider exists already.
        let base = format!("{}/v1", env.stand_in.url());
        env.provider("stand-in", "openai", &base, 10, 0).await;

        let artifacts = target_dir().join("browser-artifacts").join(Host::current().name());
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).unwrap();
        let mut child = tokio::process::Command::new("node")
            .arg(repo_root().join("tests/browser/console.mjs"))
            .env("ARCANA_URL", &origin.url)
            .env("ARCANA_USER", "root")
            .env("ARCANA_PASSWORD", "root password")
            .env("ARCANA_PROVIDER", "stand-in")
            .env("ARCANA_SCREENSHOTS", &artifacts)
            .env("CHROMIUM", chromium())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let read = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            tokio::spawn(async move {
                let mut s = String::new();
                let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s).await;
                s
            })
        };
        let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
        let status = tokio::time::timeout(Duration::from_secs(180), child.wait())
            .await
            .expect("the browser run ends within 180 s")
            .unwrap();
        let (out, err) = (out.await.unwrap(), err.await.unwrap());
        println!("{out}");
        assert!(
            status.success(),
            "the browser run failed ({status}); screenshots in {}\nstdout:\n{out}\nstderr:\n{err}\nbackend log:\n{}",
            artifacts.display(),
            env.runner.log()
        );
        assert!(out.contains("ok - "), "{out}");
    }
}
