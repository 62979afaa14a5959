//! The deployment files in `deploy/` are checked with real tools: the Kubernetes
//! manifests with `kubernetes-validate --strict` (PyPI; the Kubernetes API's own schemas,
//! offline) and `deploy/kubernetes/check.py` (the SpinApp's fields, and that Secrets,
//! keys, variables and Services referred to exist), the HAProxy config with `haproxy -c`.
//! Without a tool its check prints SKIPPED, unless `ARCANA_REQUIRE_KUBE_VALIDATE=1` /
//! `ARCANA_REQUIRE_HAPROXY=1` (CI).

use std::process::Command;

use arcana_tests::repo_root;

fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn kube_validate_available() -> bool {
    let ok = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("python3")
            .args(["-c", "import yaml"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("ARCANA_REQUIRE_KUBE_VALIDATE").as_deref() != Ok("1"),
            "kubernetes-validate is not installed but ARCANA_REQUIRE_KUBE_VALIDATE=1 (pip install kubernetes-validate)"
        );
        eprintln!(
            "SKIPPED: kubernetes-validate is not installed; deploy/kubernetes was not validated"
        );
    }
    ok
}

#[test]
fn kubernetes_manifests_pass_the_api_schemas_and_refer_to_what_exists() {
    if !kube_validate_available() {
        return;
    }
    let dir = repo_root().join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let (ok, text) = output(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .args(&files),
    );
    assert!(ok, "{text}");
    // Every document but the SpinApp (a custom resource) passed the API's schemas.
    let passed = text.matches(" passed for resource ").count();
    assert!(passed >= 7, "{text}");
    assert!(!text.contains("failed"), "{text}");
    let (ok, text) = output(Command::new("python3").arg(dir.join("check.py")));
    assert!(ok, "{text}");
    assert!(text.contains("0 problems"), "{text}");
}

#[test]
fn the_haproxy_config_is_valid() {
    if !arcana_tests::balancer::available("the_haproxy_config_is_valid") {
        return;
    }
    let (ok, text) = output(
        Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(repo_root().join("deploy/haproxy/haproxy.cfg"))
            .env("ARCANA_LB_BIND", "127.0.0.1:3000")
            .env("ARCANA_API_1", "127.0.0.1:3010")
            .env("ARCANA_API_2", "127.0.0.1:3011")
            .env("ARCANA_TERMINAL_1", "127.0.0.1:3020")
            .env("ARCANA_TERMINAL_2", "127.0.0.1:3021"),
    );
    assert!(ok && text.contains("Configuration file is valid"), "{text}");
}
