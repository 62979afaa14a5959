//! Long-lived libSQL connections, handed out per statement or per open transaction.
//!
//! Opening a connection per request was measured 20x slower than reusing one, but a
//! single shared connection would let two requests' transactions interleave. So the pool
//! keeps up to `max` connections open for the life of the process and lends one out at a
//! time; the borrower returns it when dropped. A connection returned in the middle of a
//! transaction (a guest that trapped before `COMMIT`) is rolled back before reuse.
//!
//! Each embedded connection also keeps its prepared statements, as Spin's own SQLite
//! host does: compiling a statement (with every trigger it fires) once per connection
//! instead of once per execution. The write statements that fire the statistics triggers
//! of migration 0005 were several times slower to compile than to run.

use std::collections::HashMap;
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

/// Most statements one connection keeps prepared; past it the cache starts over (the
/// application's statements are a fixed set, so this only bounds unusual workloads).
const MAX_CACHED_STATEMENTS: usize = 512;

/// A connection and its prepared statements.
struct Cached {
    conn: libsql::Connection,
    statements: Mutex<HashMap<String, libsql::Statement>>,
}

/// Every row of a statement, collected.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<libsql::Value>>,
}

struct Inner {
    db: libsql::Database,
    local: bool,
    idle: Mutex<Vec<Cached>>,
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
                Cached {
                    conn,
                    statements: Mutex::default(),
                }
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

    fn put_back(&self, conn: Cached) {
        self.0.idle.lock().expect("pool lock").push(conn);
    }
}

/// A connection on loan from a [`Pool`]; it goes back when dropped.
pub struct PooledConnection {
    conn: Option<Cached>,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledConnection {
    type Target = libsql::Connection;
    fn deref(&self) -> &libsql::Connection {
        &self.cached().conn
    }
}

impl PooledConnection {
    fn cached(&self) -> &Cached {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// Runs one statement and collects every row, reusing the statement prepared by an
    /// earlier call with the same SQL on this connection (embedded databases; a remote
    /// server gets the SQL text each time).
    pub async fn query_all(
        &self,
        sql: &str,
        params: Vec<libsql::Value>,
    ) -> Result<Table, libsql::Error> {
        if !self.pool.0.local {
            let rows = self.query(sql, libsql::params_from_iter(params)).await?;
            return collect(rows).await;
        }
        let cache = &self.cached().statements;
        let cached = cache.lock().expect("statement cache").remove(sql);
        let statement = match cached {
            Some(s) => s,
            None => self.prepare(sql).await?,
        };
        statement.reset();
        let result = match statement.query(libsql::params_from_iter(params)).await {
            Ok(rows) => collect(rows).await,
            Err(e) => Err(e),
        };
        // Leaves no read transaction open, whether or not every row was read.
        statement.reset();
        let mut cache = cache.lock().expect("statement cache");
        if cache.len() >= MAX_CACHED_STATEMENTS {
            cache.clear();
        }
        cache.insert(sql.to_string(), statement);
        result
    }
}

async fn collect(mut rows: libsql::Rows) -> Result<Table, libsql::Error> {
    let n = rows.column_count();
    let columns = (0..n)
        .map(|i| rows.column_name(i).unwrap_or_default().to_string())
        .collect();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        let mut values = Vec::with_capacity(n as usize);
        for i in 0..n {
            values.push(row.get_value(i)?);
        }
        out.push(values);
    }
    Ok(Table { columns, rows: out })
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.conn.is_autocommit() {
            self.pool.put_back(conn);
            return;
        }
        // An abandoned transaction: roll it back before anyone else sees this connection.
        // Without a runtime (process exit) the connection is simply closed.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            handle.spawn(async move {
                match conn.conn.execute("ROLLBACK", ()).await {
                    Ok(_) if conn.conn.is_autocommit() => pool.put_back(conn),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "rollback of abandoned transaction failed")
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libsql::Value;

    async fn pool(max: usize) -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig::Local {
            path: dir.path().join("pool.db"),
        };
        (dir, Pool::open(&config, max).await.unwrap())
    }

    fn ints(t: &Table) -> Vec<i64> {
        t.rows
            .iter()
            .map(|r| match r[0] {
                Value::Integer(i) => i,
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn cached_statements_see_new_rows_new_params_and_schema_changes() {
        let (_dir, pool) = pool(2).await;
        let conn = pool.get().await.unwrap();
        conn.execute_batch(
            "CREATE TABLE t (n INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);",
        )
        .await
        .unwrap();
        let select = "SELECT * FROM t WHERE n >= ?1 ORDER BY n";
        assert_eq!(
            ints(
                &conn
                    .query_all(select, vec![Value::Integer(2)])
                    .await
                    .unwrap()
            ),
            [2, 3]
        );
        conn.query_all("INSERT INTO t VALUES (?1)", vec![Value::Integer(4)])
            .await
            .unwrap();
        assert_eq!(
            ints(
                &conn
                    .query_all(select, vec![Value::Integer(3)])
                    .await
                    .unwrap()
            ),
            [3, 4]
        );
        // A failing execution (duplicate key) does not poison the cached statement.
        assert!(
            conn.query_all("INSERT INTO t VALUES (?1)", vec![Value::Integer(4)])
                .await
                .is_err()
        );
        conn.query_all("INSERT INTO t VALUES (?1)", vec![Value::Integer(5)])
            .await
            .unwrap();
        // Another connection changes the schema: the cached statement is recompiled.
        let other = pool.get().await.unwrap();
        other
            .execute("ALTER TABLE t ADD COLUMN label TEXT", ())
            .await
            .unwrap();
        drop(other);
        let table = conn
            .query_all(select, vec![Value::Integer(5)])
            .await
            .unwrap();
        assert_eq!(table.columns, ["n", "label"]);
        assert_eq!(ints(&table), [5]);
        // A cached read leaves no transaction open: a writer elsewhere is not blocked.
        assert!(conn.is_autocommit());
    }
}
