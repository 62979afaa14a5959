//! Where a database lives and how to open it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::remote::RemoteDb;

/// Location of one database.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseConfig {
    /// An embedded file, created on first use together with its parent folder.
    Local { path: PathBuf },
    /// An embedded database that lives only as long as the process (Spin's `type =
    /// "spin"` without a `path`). One connection, so every request sees the same data.
    Memory,
    /// A libSQL server spoken to over Hrana (HTTP). `token` may be empty for an open server.
    Remote { url: String, token: String },
}

/// How long a writer waits for the lock before `SQLITE_BUSY` is returned.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An opened database, ready to hand out connections.
pub enum Opened {
    Embedded(libsql::Database),
    Remote(Arc<RemoteDb>),
}

impl DatabaseConfig {
    /// Opens the database. Embedded files get WAL, `synchronous=NORMAL` and a busy
    /// timeout on every connection (see [`prepare_connection`]).
    pub async fn open(&self) -> Result<Opened, Error> {
        match self {
            DatabaseConfig::Local { path } => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Unavailable(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let db = libsql::Builder::new_local(path).build().await?;
                private(path);
                Ok(Opened::Embedded(db))
            }
            DatabaseConfig::Memory => Ok(Opened::Embedded(
                libsql::Builder::new_local(":memory:").build().await?,
            )),
            DatabaseConfig::Remote { url, token } => {
                Ok(Opened::Remote(Arc::new(RemoteDb::new(url, token)?)))
            }
        }
    }
}

/// Makes an embedded database's files readable by their owner only, whoever created
/// them (Spin creates its file world-readable): shells run as other users.
fn private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        if file.exists()
            && let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(path = %file.display(), error = %e, "cannot make the database private");
        }
    }
}

impl DatabaseConfig {
    /// At most this many connections make sense (an in-memory database has one).
    pub fn max_connections(&self, wanted: usize) -> usize {
        match self {
            DatabaseConfig::Memory => 1,
            _ => wanted.max(1),
        }
    }

    /// A short description for logs that never contains the token.
    pub fn describe(&self) -> String {
        match self {
            DatabaseConfig::Local { path } => format!("libsql file {}", path.display()),
            DatabaseConfig::Memory => "in-memory database".to_string(),
            DatabaseConfig::Remote { url, .. } => format!("libsql server {url}"),
        }
    }
}

/// Sets the per-connection pragmas for embedded databases. WAL lets readers run beside
/// one writer; `synchronous=NORMAL` is durable across application crashes in WAL mode
/// and avoids an fsync per commit; the busy timeout turns lock contention into waiting.
pub async fn prepare_connection(conn: &libsql::Connection) -> Result<(), Error> {
    // `journal_mode` returns a row, so it goes through `query`.
    let mut rows = conn.query("PRAGMA journal_mode=WAL", ()).await?;
    while rows.next().await?.is_some() {}
    conn.execute("PRAGMA synchronous=NORMAL", ()).await?;
    conn.execute("PRAGMA foreign_keys=ON", ()).await?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}
