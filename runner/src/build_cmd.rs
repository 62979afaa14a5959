//! `arcana build`: runs each component's `[component.<id>.build] command`, as `spin build`.

use std::process::Command;

use anyhow::{Context, bail};

use crate::manifest::Manifest;

/// Runs every build command in manifest order, stopping at the first failure.
pub fn build_all(manifest: &Manifest) -> anyhow::Result<()> {
    for (id, component) in &manifest.components {
        let Some(build) = &component.build else {
            tracing::info!(component = %id, "no build command; skipping");
            continue;
        };
        let workdir = match &build.workdir {
            Some(dir) => manifest.dir.join(dir),
            None => manifest.dir.clone(),
        };
        for line in build.command.lines() {
            eprintln!("Building component {id} with `{line}`");
            let status = Command::new("sh")
                .arg("-c")
                .arg(line)
                .current_dir(&workdir)
                .status()
                .with_context(|| format!("cannot run build command for {id}"))?;
            if !status.success() {
                bail!("build command for component {id:?} failed ({status}): {line}");
            }
        }
    }
    eprintln!("Finished building all components");
    Ok(())
}
