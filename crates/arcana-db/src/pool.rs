//! Long-lived connections, handed out per statement or per open transaction.
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
//!
//! Remote connections ([`crate::remote`]) keep no server state between statements, so
//! an idle pool never goes stale however long the server is left alone or restarted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Error;
use crate::config::{DatabaseConfig, Opened, prepare_connection};
use crate::remote::{RemoteConn, RemoteDb};

/// Most statements one connection keeps prepared; past it the cache starts over (the
/// application's statements are a fixed set, so this only bounds unusual workloads).
const MAX_CACHED_STATEMENTS: usize = 512;

/// How long a borrower waits for a free connection before giving up with `Unavailable`.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(10);

/// An embedded connection and its prepared statements.
struct Embedded {
    conn: libsql::Connection,
    statements: Mutex<HashMap<String, libsql::Statement>>,
}

enum Conn {
    Embedded(Embedded),
    Remote(RemoteConn),
}

/// Every row of a statement, collected.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<libsql::Value>>,
}

enum Source {
    Embedded(libsql::Database),
    Remote(Arc<RemoteDb>),
}

struct Inner {
    source: Source,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    max: usize,
    description: String,
}

/// A bounded set of open connections to one database. Cheap to clone.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

impl Pool {
    /// Opens the database and one connection to check that it answers.
    pub async fn open(config: &DatabaseConfig, max: usize) -> Result<Pool, Error> {
        let source = match config.open().await? {
            Opened::Embedded(db) => Source::Embedded(db),
            Opened::Remote(db) => Source::Remote(db),
        };
        let max = config.max_connections(max);
        let pool = Pool(Arc::new(Inner {
            source,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max)),
            max,
            description: config.describe(),
        }));
        // Fail at start-up, not on the first request, when the database is unreachable.
        pool.get().await?.query_all("SELECT 1", Vec::new()).await?;
        Ok(pool)
    }

    /// Lends a connection, waiting while all are in use.
    pub async fn get(&self) -> Result<PooledConnection, Error> {
        let permit =
            tokio::time::timeout(WAIT_FOR_CONNECTION, self.0.permits.clone().acquire_owned())
                .await
                .map_err(|_| {
                    Error::Unavailable(format!("all {} database connections are busy", self.0.max))
                })?
                .expect("pool semaphore is never closed");
        // The std mutex is held only to pop or push, never across an await.
        let idle = self.0.idle.lock().expect("pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => match &self.0.source {
                Source::Embedded(db) => {
                    let conn = db.connect()?;
                    prepare_connection(&conn).await?;
                    Conn::Embedded(Embedded {
                        conn,
                        statements: Mutex::default(),
                    })
                }
                Source::Remote(db) => Conn::Remote(RemoteConn::new(db.clone())),
            },
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

    fn put_back(&self, conn: Conn) {
        self.0.idle.lock().expect("pool lock").push(conn);
    }
}

/// A connection on loan from a [`Pool`]; it goes back when dropped.
pub struct PooledConnection {
    conn: Option<Conn>,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl PooledConnection {
    fn conn(&self) -> &Conn {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// Whether no transaction is open on this connection.
    pub fn is_autocommit(&self) -> bool {
        match self.conn() {
            Conn::Embedded(e) => e.conn.is_autocommit(),
            Conn::Remote(r) => r.is_autocommit(),
        }
    }

    /// Runs one statement and collects every row. An embedded connection reuses the
    /// statement prepared by an earlier call with the same SQL; a remote one sends it.
    pub async fn query_all(&self, sql: &str, params: Vec<libsql::Value>) -> Result<Table, Error> {
        match self.conn() {
            Conn::Embedded(e) => e.query_all(sql, params).await,
            Conn::Remote(r) => r.query(sql, params).await,
        }
    }

    /// Runs a script of several statements (a migration file).
    pub async fn execute_script(&self, sql: &str) -> Result<(), Error> {
        match self.conn() {
            Conn::Embedded(e) => {
                e.conn.execute_batch(sql).await?;
                Ok(())
            }
            Conn::Remote(r) => r.execute_script(sql).await,
        }
    }
}

impl Embedded {
    async fn query_all(&self, sql: &str, params: Vec<libsql::Value>) -> Result<Table, Error> {
        let cached = self.statements.lock().expect("statement cache").remove(sql);
        let statement = match cached {
            Some(s) => s,
            None => self.conn.prepare(sql).await?,
        };
        statement.reset();
        let result = match statement.query(libsql::params_from_iter(params)).await {
            Ok(rows) => collect(rows).await,
            Err(e) => Err(e.into()),
        };
        // Leaves no read transaction open, whether or not every row was read.
        statement.reset();
        let mut cache = self.statements.lock().expect("statement cache");
        if cache.len() >= MAX_CACHED_STATEMENTS {
            cache.clear();
        }
        cache.insert(sql.to_string(), statement);
        result
    }
}

async fn collect(mut rows: libsql::Rows) -> Result<Table, Error> {
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
        let open_tx = match &conn {
            Conn::Embedded(e) => !e.conn.is_autocommit(),
            Conn::Remote(r) => !r.is_autocommit(),
        };
        if !open_tx {
            self.pool.put_back(conn);
            return;
        }
        // An abandoned transaction: roll it back before anyone else sees this connection.
        // Without a runtime (process exit) the connection is simply closed.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            handle.spawn(async move {
                let result = match &conn {
                    Conn::Embedded(e) => e
                        .conn
                        .execute("ROLLBACK", ())
                        .await
                        .map(|_| ())
                        .map_err(Error::from),
                    Conn::Remote(r) => r.query("ROLLBACK", Vec::new()).await.map(|_| ()),
                };
                match result {
                    Ok(()) => pool.put_back(conn),
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
        conn.execute_script(
            "CREATE TABLE t (n INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);",
        )
        .await
        .unwrap();
        let select = "SELECT * FROM t WHERE n >= ?1 ORDER BY n";
        let q = |n: i64| conn.query_all(select, vec![Value::Integer(n)]);
        assert_eq!(ints(&q(2).await.unwrap()), [2, 3]);
        conn.query_all("INSERT INTO t VALUES (?1)", vec![Value::Integer(4)])
            .await
            .unwrap();
        assert_eq!(ints(&q(3).await.unwrap()), [3, 4]);
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
            .query_all("ALTER TABLE t ADD COLUMN label TEXT", Vec::new())
            .await
            .unwrap();
        drop(other);
        let table = q(5).await.unwrap();
        assert_eq!(table.columns, ["n", "label"]);
        assert_eq!(ints(&table), [5]);
        // A cached read leaves no transaction open: a writer elsewhere is not blocked.
        assert!(conn.is_autocommit());
    }

    #[tokio::test]
    async fn an_in_memory_database_is_one_shared_connection() {
        let pool = Pool::open(&DatabaseConfig::Memory, 8).await.unwrap();
        pool.get()
            .await
            .unwrap()
            .execute_script("CREATE TABLE m (x); INSERT INTO m VALUES (7);")
            .await
            .unwrap();
        let t = pool
            .get()
            .await
            .unwrap()
            .query_all("SELECT x FROM m", Vec::new())
            .await
            .unwrap();
        assert_eq!(ints(&t), [7]);
    }
}
