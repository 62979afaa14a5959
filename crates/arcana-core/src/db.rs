//! The database as the domain sees it: one synchronous `query` call taking SQL and
//! positional parameters, which is exactly the shape of Spin's SQLite interface.
//! Components implement [`Db`] over `spin_sdk::sqlite`; native tests implement it
//! over libSQL. Handlers never know which.

use crate::error::ApiError;

/// A SQL value (parameter or column).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Integer(b as i64)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Real(f)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map(Into::into).unwrap_or(Value::Null)
    }
}

/// The rows a statement returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Iterates rows with typed accessors.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row { values })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

/// One row; columns are addressed by position, in the order of the SELECT list.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    values: &'a [Value],
}

impl Row<'_> {
    /// Text column (NULL and numbers are errors).
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        match self.values.get(i) {
            Some(Value::Text(s)) => Ok(s.clone()),
            other => Err(DbError::Decode(format!(
                "column {i}: expected text, got {other:?}"
            ))),
        }
    }

    /// Nullable text column.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.values.get(i) {
            Some(Value::Null) => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// Integer column.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.values.get(i) {
            Some(Value::Integer(n)) => Ok(*n),
            other => Err(DbError::Decode(format!(
                "column {i}: expected integer, got {other:?}"
            ))),
        }
    }

    /// Nullable integer column.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.values.get(i) {
            Some(Value::Null) => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// Real column (integers are widened).
    pub fn real(&self, i: usize) -> Result<f64, DbError> {
        match self.values.get(i) {
            Some(Value::Real(f)) => Ok(*f),
            Some(Value::Integer(n)) => Ok(*n as f64),
            other => Err(DbError::Decode(format!(
                "column {i}: expected real, got {other:?}"
            ))),
        }
    }

    /// Blob column.
    pub fn blob(&self, i: usize) -> Result<&[u8], DbError> {
        match self.values.get(i) {
            Some(Value::Blob(b)) => Ok(b),
            other => Err(DbError::Decode(format!(
                "column {i}: expected blob, got {other:?}"
            ))),
        }
    }

    /// Nullable blob column.
    pub fn opt_blob(&self, i: usize) -> Result<Option<&[u8]>, DbError> {
        match self.values.get(i) {
            Some(Value::Null) => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }

    /// Boolean stored as 0/1.
    pub fn bool(&self, i: usize) -> Result<bool, DbError> {
        self.int(i).map(|n| n != 0)
    }
}

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DbError {
    /// A UNIQUE or PRIMARY KEY constraint failed; carries the constraint text.
    #[error("unique constraint failed: {0}")]
    Unique(String),
    /// Another constraint (CHECK, FOREIGN KEY, NOT NULL) failed.
    #[error("constraint failed: {0}")]
    Constraint(String),
    /// The database is locked or unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A column had an unexpected type.
    #[error("cannot decode row: {0}")]
    Decode(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

/// Words in a driver's message that mean "not reachable now, retry later": a lock held
/// too long, the runner's pool, and the libSQL client inside real Spin (its Hrana
/// transport errors) when a remote server is down or a stream expired.
const UNAVAILABLE_MARKERS: &[&str] = &[
    "database is locked",
    // sqld ends a transaction that held its write lock too long.
    "Transaction timed out",
    "busy",
    "database unavailable",
    "error trying to connect",
    "Connection refused",
    "Hrana: `http error",
    "STREAM_EXPIRED",
];

impl DbError {
    /// Classifies a driver error message (Spin's SQLite interface reports text only).
    pub fn from_message(message: impl Into<String>) -> DbError {
        let message = message.into();
        if message.contains("UNIQUE constraint failed")
            || message.contains("PRIMARY KEY constraint failed")
        {
            DbError::Unique(message)
        } else if message.contains("constraint failed") {
            DbError::Constraint(message)
        } else if UNAVAILABLE_MARKERS.iter().any(|m| message.contains(m)) {
            DbError::Unavailable(message)
        } else {
            DbError::Other(message)
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::Unavailable(_) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(
                    503,
                    "database_unavailable",
                    "The database is busy or unreachable; retry shortly.",
                )
                .with_header("retry-after", "1")
            }
            other => ApiError::internal(other),
        }
    }
}

/// Waits before the retries of a statement the database refused as busy: about 1.3 s
/// in all, longer than a writer holds the lock, shorter than a client's patience.
pub const BUSY_RETRY_DELAYS_MS: [u64; 8] = [5, 10, 20, 40, 80, 160, 320, 640];

/// Whether an error says the database was busy (`SQLITE_BUSY`, a lock held by another
/// writer): the statement did not run, so running it again is safe outside a
/// transaction (and for the `BEGIN` that opens one).
pub fn is_busy(e: &DbError) -> bool {
    matches!(e, DbError::Unavailable(m) if m.contains("database is locked") || m.contains("SQLITE_BUSY"))
}

/// Runs `run` again after each of [`BUSY_RETRY_DELAYS_MS`] while it fails as busy.
/// Callers use it only for statements outside a transaction.
pub fn retry_busy<T>(
    mut run: impl FnMut() -> Result<T, DbError>,
    sleep: impl Fn(std::time::Duration),
) -> Result<T, DbError> {
    let mut delays = BUSY_RETRY_DELAYS_MS.iter();
    loop {
        match run() {
            Err(e) if is_busy(&e) => match delays.next() {
                Some(ms) => sleep(std::time::Duration::from_millis(*ms)),
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// How a statement changes the transaction state of its connection, by its first word:
/// `Some(true)` opens one, `Some(false)` ends it.
pub fn transaction_effect(sql: &str) -> Option<bool> {
    let mut words = sql.split_whitespace();
    let first = words.next().unwrap_or("").trim_end_matches(';');
    if first.eq_ignore_ascii_case("BEGIN") || first.eq_ignore_ascii_case("SAVEPOINT") {
        Some(true)
    } else if first.eq_ignore_ascii_case("COMMIT") || first.eq_ignore_ascii_case("END") {
        Some(false)
    } else if first.eq_ignore_ascii_case("ROLLBACK") {
        match words.next() {
            Some(w) if w.eq_ignore_ascii_case("TO") => None,
            _ => Some(false),
        }
    } else {
        None
    }
}

/// A database connection as seen by handlers.
pub trait Db {
    /// Runs one statement with positional parameters (`?1`, `?2`, ...).
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

    /// Runs one statement, discarding rows.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.query(sql, params).map(|_| ())
    }
}

/// Runs `f` inside a write transaction: committed when it returns `Ok`, rolled back
/// otherwise, so a failed request never leaves half its writes behind.
pub fn transaction<T, E: From<DbError>>(
    db: &dyn Db,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    db.execute("BEGIN IMMEDIATE", &[])?;
    match f() {
        Ok(value) => {
            db.execute("COMMIT", &[])?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = db.execute("ROLLBACK", &[]) {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! A [`Db`] over an embedded libSQL file, for native unit tests of handlers.

    use super::*;

    /// An embedded database with every migration applied.
    pub struct TestDb {
        _dir: tempfile::TempDir,
        conn: libsql::Connection,
        rt: tokio::runtime::Runtime,
    }

    impl TestDb {
        /// With every migration applied.
        pub fn new() -> TestDb {
            TestDb::with_migrations(crate::migrations::ALL)
        }

        /// With only `migrations` applied (to test a later one against existing data).
        pub fn with_migrations(migrations: &[crate::migrations::EmbeddedMigration]) -> TestDb {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("test.db");
            let conn = rt.block_on(async {
                let db = libsql::Builder::new_local(path).build().await.unwrap();
                let conn = db.connect().unwrap();
                for m in migrations {
                    conn.execute_batch(m.sql).await.unwrap();
                }
                conn
            });
            TestDb {
                _dir: dir,
                conn,
                rt,
            }
        }
    }

    impl TestDb {
        /// Runs a migration file as the runner would.
        pub fn apply(&self, migration: &crate::migrations::EmbeddedMigration) {
            self.rt
                .block_on(self.conn.execute_batch(migration.sql))
                .unwrap();
        }
    }

    impl Default for TestDb {
        fn default() -> TestDb {
            TestDb::new()
        }
    }

    impl Db for TestDb {
        fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            let params: Vec<libsql::Value> = params
                .iter()
                .map(|v| match v.clone() {
                    Value::Integer(i) => libsql::Value::Integer(i),
                    Value::Real(f) => libsql::Value::Real(f),
                    Value::Text(s) => libsql::Value::Text(s),
                    Value::Blob(b) => libsql::Value::Blob(b),
                    Value::Null => libsql::Value::Null,
                })
                .collect();
            self.rt.block_on(async {
                let err = |e: libsql::Error| DbError::from_message(e.to_string());
                let mut rows = self
                    .conn
                    .query(sql, libsql::params_from_iter(params))
                    .await
                    .map_err(err)?;
                let n = rows.column_count();
                let columns = (0..n)
                    .map(|i| rows.column_name(i).unwrap_or("").to_string())
                    .collect();
                let mut out = Vec::new();
                while let Some(row) = rows.next().await.map_err(err)? {
                    let mut values = Vec::new();
                    for i in 0..n {
                        values.push(match row.get_value(i).map_err(err)? {
                            libsql::Value::Integer(i) => Value::Integer(i),
                            libsql::Value::Real(f) => Value::Real(f),
                            libsql::Value::Text(s) => Value::Text(s),
                            libsql::Value::Blob(b) => Value::Blob(b),
                            libsql::Value::Null => Value::Null,
                        });
                    }
                    out.push(values);
                }
                Ok(Rows { columns, rows: out })
            })
        }
    }
}
