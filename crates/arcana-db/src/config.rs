//! Where a database lives and how to open it.

use std::path::PathBuf;
use std::time::Duration;

/// Location of one database: an embedded libSQL file or a remote libSQL server (sqld/Turso).
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseConfig {
    /// An embedded file, created on first use together with its parent folder.
    Local { path: PathBuf },
    /// A libSQL server spoken to over Hrana (HTTP). `token` may be empty for an unauthenticated server.
    Remote { url: String, token: String },
}

/// How long a writer waits for the lock before `SQLITE_BUSY` is returned.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl DatabaseConfig {
    /// Opens the database. Local files get WAL, `synchronous=NORMAL` and a busy timeout on
    /// every connection (see [`prepare_connection`]).
    pub async fn open(&self) -> Result<libsql::Database, libsql::Error> {
        match self {
            DatabaseConfig::Local { path } => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        libsql::Error::ConnectionFailed(format!(
                            "cannot create {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                libsql::Builder::new_local(path).build().await
            }
            DatabaseConfig::Remote { url, token } => {
                libsql::Builder::new_remote(url.clone(), token.clone())
                    .build()
                    .await
            }
        }
    }

    /// Whether this is an embedded file (pragmas apply) rather than a server.
    pub fn is_local(&self) -> bool {
        matches!(self, DatabaseConfig::Local { .. })
    }

    /// A short description for logs that never contains the token.
    pub fn describe(&self) -> String {
        match self {
            DatabaseConfig::Local { path } => format!("libsql file {}", path.display()),
            DatabaseConfig::Remote { url, .. } => format!("libsql server {url}"),
        }
    }
}

/// Sets the per-connection pragmas for embedded files. WAL lets readers run beside one
/// writer; `synchronous=NORMAL` is durable across application crashes in WAL mode and
/// avoids an fsync per commit; the busy timeout turns lock contention into waiting.
pub async fn prepare_connection(
    conn: &libsql::Connection,
    local: bool,
) -> Result<(), libsql::Error> {
    if !local {
        return Ok(());
    }
    // `journal_mode` returns a row, so it goes through `query`.
    let mut rows = conn.query("PRAGMA journal_mode=WAL", ()).await?;
    while rows.next().await?.is_some() {}
    conn.execute("PRAGMA synchronous=NORMAL", ()).await?;
    conn.execute("PRAGMA foreign_keys=ON", ()).await?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}
