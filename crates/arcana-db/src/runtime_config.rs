//! Spin's `runtime-config.toml`, the part that maps database labels to storage, read
//! with Spin's own rules so that one file configures both Spin and the runner.
//!
//! ```toml
//! [sqlite_database.default]
//! type = "libsql"          # a libSQL server (sqld, Turso), over HTTP(S)
//! url = "https://my-db.example.turso.io"
//! token = "..."
//!
//! [sqlite_database.archive]
//! type = "spin"            # an embedded file; without `path`, an in-memory database
//! path = "data/archive.db" # relative to the current directory, as in Spin
//! ```
//!
//! As in Spin: a top-level key nobody reads is an error, each database table refuses
//! unknown fields, a libSQL `url` must be `http://` or `https://` (Turso's `libsql://`
//! URLs are written `https://`), and a `token` is required (empty for an open server).
//! Without a file, `default` is the embedded file `.spin/sqlite_db.db` next to
//! `spin.toml`, where Spin keeps it too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::DatabaseConfig;
use anyhow::{Context, bail};
use serde::Deserialize;

/// Top-level keys Spin reads from a runtime config (others are refused). The runner
/// uses `sqlite_database`; the rest are accepted so one file serves both hosts.
const KNOWN_KEYS: &[&str] = &[
    "state_dir",
    "log_dir",
    "max_instance_memory",
    "key_value_store",
    "sqlite_database",
    "llm_compute",
    "variables_provider",
    "config_provider",
    "outbound_networking",
    "outbound_http",
    "outbound_redis",
    "outbound_pg",
    "outbound_mysql",
    "outbound_mqtt",
    "client_tls",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinDatabase {
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    #[allow(dead_code)]
    allow_attach_file: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LibsqlDatabase {
    url: String,
    token: String,
}

/// Database label → where it lives.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Spin's state folder (`state_dir`, else `.spin` next to the manifest): where the
    /// local LLM engine finds `ai-models/`.
    pub state_dir: PathBuf,
}

impl RuntimeConfig {
    /// Reads `file` if given; `app_dir` is where the default database lives.
    pub fn load(file: Option<&Path>, app_dir: &Path) -> anyhow::Result<RuntimeConfig> {
        let table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("failed to read runtime config file '{}'", path.display())
                })?;
                text.parse::<toml::Table>().with_context(|| {
                    format!(
                        "failed to parse runtime config file '{}' as toml",
                        path.display()
                    )
                })?
            }
            None => toml::Table::new(),
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::from_table(table, &cwd, app_dir)
    }

    fn from_table(table: toml::Table, cwd: &Path, app_dir: &Path) -> anyhow::Result<RuntimeConfig> {
        let unused: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN_KEYS.contains(k))
            .collect();
        if !unused.is_empty() {
            bail!("unused runtime config key(s): {}", unused.join(", "));
        }
        let mut databases = BTreeMap::new();
        if let Some(entries) = table.get("sqlite_database") {
            let entries: BTreeMap<String, toml::Table> = entries.clone().try_into()?;
            for (label, mut entry) in entries {
                let kind = match entry.remove("type") {
                    Some(toml::Value::String(kind)) => kind,
                    Some(other) => bail!("invalid type: {other}, expected a string"),
                    None => bail!("missing field `type`"),
                };
                let config = database(&kind, entry, cwd)?;
                databases.insert(label, config);
            }
        }
        databases
            .entry("default".to_string())
            .or_insert_with(|| DatabaseConfig::Local {
                path: app_dir.join(".spin").join("sqlite_db.db"),
            });
        // As Spin: an empty `state_dir` means unset.
        let state_dir = match table.get("state_dir") {
            Some(toml::Value::String(dir)) if !dir.is_empty() => cwd.join(dir),
            Some(toml::Value::String(_)) | None => app_dir.join(".spin"),
            Some(other) => bail!("invalid state_dir: {other}, expected a string"),
        };
        Ok(RuntimeConfig {
            databases,
            state_dir,
        })
    }
}

/// One `[sqlite_database.<label>]` table, its `type` already taken out.
fn database(kind: &str, entry: toml::Table, cwd: &Path) -> anyhow::Result<DatabaseConfig> {
    match kind {
        "spin" => {
            let db: SpinDatabase = toml::Value::Table(entry).try_into()?;
            Ok(match db.path {
                Some(p) => DatabaseConfig::Local { path: cwd.join(p) },
                None => DatabaseConfig::Memory,
            })
        }
        "libsql" => {
            let db: LibsqlDatabase = toml::Value::Table(entry).try_into()?;
            if !(db.url.starts_with("https://") || db.url.starts_with("http://")) {
                return Err(anyhow::anyhow!(
                    "URL does not start with 'https://' or 'http://'. Spin currently only supports talking to libSQL databases over HTTP(S)"
                ))
                .with_context(|| {
                    format!("unexpected libSQL URL '{}' in runtime config file ", db.url)
                });
            }
            Ok(DatabaseConfig::Remote {
                url: db.url,
                token: db.token,
            })
        }
        other => bail!("Unknown database kind: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<RuntimeConfig> {
        RuntimeConfig::from_table(text.parse().unwrap(), Path::new("/cwd"), Path::new("/app"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn default_database_is_spins_file() {
        let rc = parse("").unwrap();
        assert_eq!(
            rc.databases["default"],
            DatabaseConfig::Local {
                path: "/app/.spin/sqlite_db.db".into()
            }
        );
    }

    #[test]
    fn libsql_spin_and_memory_types() {
        let rc = parse(
            r#"
[sqlite_database.default]
type = "libsql"
url = "https://db.example.io"
token = "t"
[sqlite_database.other]
type = "spin"
path = "x/other.db"
[sqlite_database.scratch]
type = "spin"
"#,
        )
        .unwrap();
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
                path: "/cwd/x/other.db".into()
            }
        );
        assert_eq!(rc.databases["scratch"], DatabaseConfig::Memory);
    }

    #[test]
    fn what_spin_refuses_is_refused() {
        assert!(
            error("[sqlite_databse.default]\ntype = \"spin\"")
                .contains("unused runtime config key(s): sqlite_databse")
        );
        assert!(error("[sqlite_database.default]\ntype = \"libsql\"\nurl = \"libsql://db.turso.io\"\ntoken = \"t\"")
            .contains("unexpected libSQL URL 'libsql://db.turso.io' in runtime config file"));
        assert!(
            error("[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://x\"")
                .contains("missing field `token`")
        );
        assert!(
            error("[sqlite_database.default]\ntype = \"spin\"\npaht = \"x\"")
                .contains("unknown field `paht`")
        );
        assert!(
            error("[sqlite_database.default]\ntype = \"postgres\"")
                .contains("Unknown database kind: postgres")
        );
        assert!(error("[sqlite_database.default]\npath = \"x\"").contains("missing field `type`"));
    }
}
