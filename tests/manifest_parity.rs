//! The runner refuses what Spin refuses and accepts what Spin accepts. Every case in
//! `tests/manifests/` (a manifest, optionally with `<case>.runtime-config.toml`, and
//! its expected verdict in an `# expect:` line) is started with `arcana up` and, when
//! Spin is installed, with real `spin up`. Both must reach the expected verdict; for a
//! refusal, both must print the expected words, which are Spin's.

use std::path::{Path, PathBuf};

use arcana_tests::host::spin_binary;
use arcana_tests::{Host, Runner, RunnerOptions, repo_root};

/// One case of the corpus.
struct Case {
    name: String,
    manifest: PathBuf,
    runtime_config: Option<String>,
    /// `None`: must start. `Some(words)`: must refuse, saying `words`.
    refusal: Option<String>,
}

fn corpus() -> Vec<Case> {
    let dir = repo_root().join("tests/manifests");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && !p.to_string_lossy().ends_with(".runtime-config.toml")
        })
        .map(|manifest| {
            let text = std::fs::read_to_string(&manifest).unwrap();
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{} has no `# expect:` line", manifest.display()))
                .trim()
                .to_string();
            let refusal = match expect.as_str() {
                "ok" => None,
                other => Some(
                    other
                        .strip_prefix("error: ")
                        .unwrap_or_else(|| panic!("bad expect line {other:?}"))
                        .to_string(),
                ),
            };
            let stem = manifest.file_stem().unwrap().to_string_lossy().to_string();
            let rc_path = dir.join(format!("{stem}.runtime-config.toml"));
            Case {
                name: stem,
                runtime_config: std::fs::read_to_string(rc_path).ok(),
                manifest,
                refusal,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Starts `case` on `host`; `Err` with the reason when the verdict is not the expected one.
fn check(case: &Case, host: Host, scratch: &Path) -> Result<(), String> {
    let opts = RunnerOptions {
        manifest: case.manifest.clone(),
        runtime_config: case
            .runtime_config
            .as_ref()
            .map(|rc| rc.replace("{dir}", &scratch.display().to_string())),
        host,
        ..Default::default()
    }
    .env("SPIN_VARIABLE_SECRET_THING", "set");
    match (Runner::try_start(opts), &case.refusal) {
        (Ok(_), None) => Ok(()),
        (Ok(_), Some(words)) => Err(format!("started, but Spin refuses it ({words})")),
        (Err(log), None) => Err(format!("refused, but Spin accepts it:\n{log}")),
        (Err(log), Some(words)) if log.contains(words.as_str()) => Ok(()),
        (Err(log), Some(words)) => Err(format!("refused without saying {words:?}:\n{log}")),
    }
}

#[test]
fn every_case_gets_the_same_verdict_from_spin_and_the_runner() {
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus shrank to {}", cases.len());
    assert!(cases.iter().any(|c| c.refusal.is_none()));
    let mut hosts = vec![Host::Runner];
    if spin_binary().is_some() {
        hosts.push(Host::Spin);
    } else if std::env::var("ARCANA_REQUIRE_SPIN").as_deref() == Ok("1") {
        panic!("no Spin binary but ARCANA_REQUIRE_SPIN=1");
    } else {
        eprintln!("SKIPPED: the Spin half of the manifest parity corpus (no Spin binary)");
    }
    let jobs: Vec<(&Case, Host)> = cases
        .iter()
        .flat_map(|c| hosts.iter().map(move |h| (c, *h)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((case, host)) = jobs.get(i) else {
                        break;
                    };
                    let scratch = tempfile::tempdir().unwrap();
                    if let Err(why) = check(case, *host, scratch.path()) {
                        failures.lock().unwrap().push(format!(
                            "{} on {}: {why}",
                            case.name,
                            host.name()
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} verdicts differ:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
}
