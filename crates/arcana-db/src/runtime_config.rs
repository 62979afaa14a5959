//! Spin's `runtime-config.toml`, the part that maps database labels to storage.
//!
//! ```toml
//! [sqlite_database.default]
//! type = "libsql"          # a libSQL server (sqld, Turso)
//! url = "https://my-db.example.turso.io"
//! token = "..."
//!
//! [sqlite_database.archive]
//! type = "spin"            # an embedded file
//! path = "data/archive.db" # relative to this file's folder
//! ```
//!
//! The same file is accepted by `spin up --runtime-config-file`, so one file
//! configures both Spin and this runner. Without a file, `default` is the embedded
//! file `.spin/sqlite_db.db` next to `spin.toml`, where Spin keeps it too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::DatabaseConfig;
use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawDatabase>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawDatabase {
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    Libsql {
        url: String,
        #[serde(default)]
        token: String,
    },
}

/// Database label → where it lives.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub databases: BTreeMap<String, DatabaseConfig>,
}

impl RuntimeConfig {
    /// Reads `file` if given; `app_dir` is where the default database lives.
    pub fn load(file: Option<&Path>, app_dir: &Path) -> anyhow::Result<RuntimeConfig> {
        let (raw, base) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read runtime config {}", path.display()))?;
                let raw: RawRuntimeConfig = toml::from_str(&text)
                    .with_context(|| format!("invalid runtime config {}", path.display()))?;
                let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                (raw, base)
            }
            None => (RawRuntimeConfig::default(), app_dir.to_path_buf()),
        };
        Self::from_raw(raw, &base, app_dir)
    }

    fn from_raw(
        raw: RawRuntimeConfig,
        base: &Path,
        app_dir: &Path,
    ) -> anyhow::Result<RuntimeConfig> {
        let mut databases = BTreeMap::new();
        for (label, db) in raw.sqlite_database {
            let config = match db {
                RawDatabase::Spin { path: Some(p) } => DatabaseConfig::Local { path: base.join(p) },
                RawDatabase::Spin { path: None } => DatabaseConfig::Local {
                    path: app_dir.join(".spin").join(format!("{label}.db")),
                },
                RawDatabase::Libsql { url, token } => {
                    if !(url.starts_with("http://")
                        || url.starts_with("https://")
                        || url.starts_with("libsql://"))
                    {
                        bail!(
                            "sqlite_database.{label}: url {url:?} must start with http://, https:// or libsql://"
                        );
                    }
                    // libSQL's client speaks Hrana over HTTP; Turso hands out libsql:// URLs for it.
                    let url = match url.strip_prefix("libsql://") {
                        Some(rest) => format!("https://{rest}"),
                        None => url,
                    };
                    DatabaseConfig::Remote { url, token }
                }
            };
            databases.insert(label, config);
        }
        databases
            .entry("default".to_string())
            .or_insert_with(|| DatabaseConfig::Local {
                path: app_dir.join(".spin").join("sqlite_db.db"),
            });
        Ok(RuntimeConfig { databases })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RuntimeConfig {
        let raw: RawRuntimeConfig = toml::from_str(text).unwrap();
        RuntimeConfig::from_raw(raw, Path::new("/cfg"), Path::new("/app")).unwrap()
    }

    #[test]
    fn default_database_is_spins_file() {
        let rc = parse("");
        assert_eq!(
            rc.databases["default"],
            DatabaseConfig::Local {
                path: "/app/.spin/sqlite_db.db".into()
            }
        );
    }

    #[test]
    fn libsql_and_spin_types() {
        let rc = parse(
            r#"
[sqlite_database.default]
type = "libsql"
url = "libsql://db.example.io"
token = "t"
[sqlite_database.other]
type = "spin"
path = "x/other.db"
"#,
        );
        assert_eq!(
            rc.databases["default"],
            DatabaseConfig::Remote {
                url: "https://db.example.io".into(),
                token: "t".into()
            }
        );
        assert_eq!(
            rc.databases["other"],
            DatabaseConfig::Local {
                path: "/cfg/x/other.db".into()
            }
        );
    }
}
