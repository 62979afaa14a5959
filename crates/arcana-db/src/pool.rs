//! Long-lived libSQL connections, handed out per statement or per open transaction.
//!
//! Opening a connection per request was measured 20x slower than reusing one, but a
//! single shared connection would let two requests' transactions interleave. So the pool
//! keeps up to `max` connections open for the life of the process and lends one out at a
//! time; the borrower returns it when dropped. A connection returned in the middle of a
//! transaction (a guest that trapped before `COMMIT`) is rolled back before reuse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{DatabaseConfig, prepare_connection};

/// Why a connection could not be lent.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection stayed busy for longer than the wait limit.
    #[error("all {0} database connections are busy")]
    Exhausted(usize),
    /// Opening or preparing a connection failed.
    #[error("database error: {0}")]
    Database(#[from] libsql::Error),
}

struct Inner {
    db: libsql::Database,
    local: bool,
    idle: Mutex<Vec<libsql::Connection>>,
    permits: Arc<Semaphore>,
    max: usize,
    wait: Duration,
    description: String,
}

/// A bounded set of open connections to one database. Cheap to clone.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

impl Pool {
    /// Opens the database and one connection to check that it answers.
    pub async fn open(config: &DatabaseConfig, max: usize) -> Result<Pool, PoolError> {
        let db = config.open().await?;
        let pool = Pool(Arc::new(Inner {
            db,
            local: config.is_local(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
            wait: Duration::from_secs(10),
            description: config.describe(),
        }));
        // Fail at start-up, not on the first request, when the database is unreachable.
        let conn = pool.get().await?;
        conn.query("SELECT 1", ()).await?.next().await?;
        Ok(pool)
    }

    /// Lends a connection, waiting while all are in use.
    pub async fn get(&self) -> Result<PooledConnection, PoolError> {
        let permit = tokio::time::timeout(self.0.wait, self.0.permits.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::Exhausted(self.0.max))?
            .expect("pool semaphore is never closed");
        // The std mutex is held only to pop or push, never across an await.
        let idle = self.0.idle.lock().expect("pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = self.0.db.connect()?;
                prepare_connection(&conn, self.0.local).await?;
                conn
            }
        };
        Ok(PooledConnection {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// Human-readable location of the database (never includes a token).
    pub fn describe(&self) -> &str {
        &self.0.description
    }

    fn put_back(&self, conn: libsql::Connection) {
        self.0.idle.lock().expect("pool lock").push(conn);
    }
}

/// A connection on loan from a [`Pool`]; it goes back when dropped.
pub struct PooledConnection {
    conn: Option<libsql::Connection>,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledConnection {
    type Target = libsql::Connection;
    fn deref(&self) -> &libsql::Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.is_autocommit() {
            self.pool.put_back(conn);
            return;
        }
        // An abandoned transaction: roll it back before anyone else sees this connection.
        // Without a runtime (process exit) the connection is simply closed.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            handle.spawn(async move {
                match conn.execute("ROLLBACK", ()).await {
                    Ok(_) if conn.is_autocommit() => pool.put_back(conn),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "rollback of abandoned transaction failed")
                    }
                }
            });
        }
    }
}
