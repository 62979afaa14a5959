//! terminal-host's tables (`terminal_sessions`, `terminal_command_history`,
//! `terminal_recordings`; hosts and tickets in [`crate::hosts`]) in the shared libSQL database, and the bridge that lets
//! `arcana_core`'s synchronous auth code read the users table.

use arcana_core::db::{BUSY_RETRY_DELAYS_MS, Db, DbError, Rows, Value};
use arcana_core::pagination::{Cursor, Page, PageRequest};
pub use arcana_core::terminal::{TerminalCommand, TerminalSession};
use arcana_db::Pool;

/// Database access for terminal-host. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

type Result<T> = std::result::Result<T, DbError>;

fn err(e: impl std::fmt::Display) -> DbError {
    DbError::from_message(e.to_string())
}

const SESSION_COLUMNS: &str = "id, user_id, status, started_at, ended_at, end_reason, exit_code, last_command, shell, cols, rows, commands_run, recording_bytes";

impl Store {
    /// Wraps a pool.
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    /// Runs a statement and collects its rows.
    /// Outside a transaction a statement refused as busy (another writer on the same
    /// server) did not run: it is run again after [`BUSY_RETRY_DELAYS_MS`].
    pub(crate) async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Rows> {
        let mut delays = BUSY_RETRY_DELAYS_MS.iter();
        loop {
            let conn = self.pool.get().await.map_err(err)?;
            match run(&conn, sql, params.clone()).await {
                Err(e) if arcana_core::db::is_busy(&e) => match delays.next() {
                    Some(ms) => {
                        drop(conn);
                        tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// Records a new live session owned by `host_id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_session(
        &self,
        id: &str,
        user_id: &str,
        host_id: &str,
        shell: &str,
        cols: u16,
        rows: u16,
        now: &str,
    ) -> Result<()> {
        self.query(
            "INSERT INTO terminal_sessions (id, user_id, status, started_at, shell, cols, rows)
             VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6)",
            vec![
                id.into(),
                user_id.into(),
                now.into(),
                shell.into(),
                (cols as i64).into(),
                (rows as i64).into(),
            ],
        )
        .await?;
        self.set_owner(id, host_id).await
    }

    /// A session by id.
    pub async fn get_session(&self, id: &str) -> Result<Option<TerminalSession>> {
        let rows = self
            .query(
                &format!("SELECT {SESSION_COLUMNS} FROM terminal_sessions WHERE id = ?1"),
                vec![id.into()],
            )
            .await?;
        rows.first().map(session_from_row).transpose()
    }

    /// Marks a session closed.
    pub async fn close_session(
        &self,
        id: &str,
        now: &str,
        reason: &str,
        exit_code: Option<i64>,
    ) -> Result<()> {
        self.query(
            "UPDATE terminal_sessions SET status = 'closed', ended_at = ?2, end_reason = ?3, exit_code = ?4
             WHERE id = ?1 AND status = 'active'",
            vec![id.into(), now.into(), reason.into(), exit_code.into()],
        )
        .await
        .map(|_| ())
    }

    /// Updates the terminal size shown in listings and recordings.
    pub async fn set_size(&self, id: &str, cols: u16, rows: u16) -> Result<()> {
        self.query(
            "UPDATE terminal_sessions SET cols = ?2, rows = ?3 WHERE id = ?1",
            vec![id.into(), (cols as i64).into(), (rows as i64).into()],
        )
        .await
        .map(|_| ())
    }

    /// Stores one executed command and updates the session's `last_command`, atomically.
    pub async fn insert_history(&self, row: &TerminalCommand) -> Result<()> {
        let mut delays = BUSY_RETRY_DELAYS_MS.iter();
        let conn = loop {
            let conn = self.pool.get().await.map_err(err)?;
            match conn
                .query_all("BEGIN IMMEDIATE", Vec::new())
                .await
                .map_err(err)
            {
                Ok(_) => break conn,
                Err(e) if arcana_core::db::is_busy(&e) => match delays.next() {
                    Some(ms) => {
                        drop(conn);
                        tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        };
        let result = async {
            run(
                &conn,
                "INSERT INTO terminal_command_history
                   (id, session_id, seq, command, exit_code, output, output_truncated, timestamp, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                vec![
                    row.id.clone().into(),
                    row.session_id.clone().into(),
                    row.seq.into(),
                    row.command.clone().into(),
                    row.exit_code.into(),
                    row.output.clone().into(),
                    row.output_truncated.into(),
                    row.timestamp.clone().into(),
                    row.finished_at.clone().into(),
                ],
            )
            .await?;
            run(
                &conn,
                "UPDATE terminal_sessions SET last_command = ?2, commands_run = commands_run + 1 WHERE id = ?1",
                vec![row.session_id.clone().into(), row.command.clone().into()],
            )
            .await
        }
        .await;
        match result {
            Ok(_) => conn
                .query_all("COMMIT", Vec::new())
                .await
                .map(|_| ())
                .map_err(err),
            Err(e) => {
                let _ = conn.query_all("ROLLBACK", Vec::new()).await;
                Err(e)
            }
        }
    }

    /// Sessions newest first; `user_id = None` lists everyone's (admins).
    pub async fn list_sessions(
        &self,
        user_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<TerminalSession>> {
        let (key, id) = cursor_parts(page);
        let rows = self
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM terminal_sessions
                     WHERE (?1 IS NULL OR user_id = ?1)
                       AND (?2 = '' OR (started_at, id) < (?2, ?3))
                     ORDER BY started_at DESC, id DESC LIMIT ?4"
                ),
                vec![
                    user_id.into(),
                    key.into(),
                    id.into(),
                    (page.limit + 1).into(),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.limit, |s| Cursor {
            key: s.started_at.clone(),
            id: s.id.clone(),
        }))
    }

    /// A session's commands in the order they ran.
    pub async fn list_history(
        &self,
        session_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TerminalCommand>> {
        let after: i64 = page
            .after
            .as_ref()
            .and_then(|c| c.key.parse().ok())
            .unwrap_or(-1);
        let rows = self
            .query(
                "SELECT id, session_id, seq, command, exit_code, output, output_truncated, timestamp, finished_at
                 FROM terminal_command_history WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                vec![session_id.into(), after.into(), (page.limit + 1).into()],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(TerminalCommand {
                    id: r.text(0)?,
                    session_id: r.text(1)?,
                    seq: r.int(2)?,
                    command: r.text(3)?,
                    exit_code: r.opt_int(4)?,
                    output: r.text(5)?,
                    output_truncated: r.bool(6)?,
                    timestamp: r.text(7)?,
                    finished_at: r.opt_text(8)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.limit, |h| Cursor {
            key: h.seq.to_string(),
            id: h.id.clone(),
        }))
    }

    /// Appends a chunk of asciicast lines.
    pub async fn append_recording(&self, session_id: &str, seq: i64, data: &str) -> Result<()> {
        let conn = self.pool.get().await.map_err(err)?;
        run(
            &conn,
            "INSERT INTO terminal_recordings (session_id, seq, data) VALUES (?1, ?2, ?3)",
            vec![session_id.into(), seq.into(), data.into()],
        )
        .await?;
        run(
            &conn,
            "UPDATE terminal_sessions SET recording_bytes = recording_bytes + ?2 WHERE id = ?1",
            vec![session_id.into(), (data.len() as i64).into()],
        )
        .await
        .map(|_| ())
    }

    /// The whole recording, in order.
    pub async fn read_recording(&self, session_id: &str) -> Result<String> {
        let rows = self
            .query(
                "SELECT data FROM terminal_recordings WHERE session_id = ?1 ORDER BY seq",
                vec![session_id.into()],
            )
            .await?;
        let mut out = String::new();
        for r in rows.iter() {
            out.push_str(&r.text(0)?);
        }
        Ok(out)
    }

    /// A synchronous [`Db`] view for `arcana_core`'s auth, usable from async handlers
    /// on the multi-threaded runtime (it parks the worker with `block_in_place`).
    pub async fn blocking_db(&self) -> Result<BlockingDb> {
        Ok(BlockingDb {
            conn: self.pool.get().await.map_err(err)?,
            handle: tokio::runtime::Handle::current(),
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.query("SELECT 1", Vec::new()).await.is_ok()
    }
}

fn cursor_parts(page: &PageRequest) -> (String, String) {
    page.after
        .as_ref()
        .map(|c| (c.key.clone(), c.id.clone()))
        .unwrap_or_default()
}

fn session_from_row(r: arcana_core::db::Row<'_>) -> Result<TerminalSession> {
    Ok(TerminalSession {
        id: r.text(0)?,
        user_id: r.text(1)?,
        status: r.text(2)?,
        started_at: r.text(3)?,
        ended_at: r.opt_text(4)?,
        end_reason: r.opt_text(5)?,
        exit_code: r.opt_int(6)?,
        last_command: r.opt_text(7)?,
        shell: r.text(8)?,
        cols: r.int(9)?,
        rows: r.int(10)?,
        commands_run: r.int(11)?,
        recording_bytes: r.int(12)?,
    })
}

async fn run(conn: &arcana_db::PooledConnection, sql: &str, params: Vec<Value>) -> Result<Rows> {
    let params: Vec<libsql::Value> = params.into_iter().map(to_libsql).collect();
    let table = conn.query_all(sql, params).await.map_err(err)?;
    Ok(Rows {
        columns: table.columns,
        rows: table
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(from_libsql).collect())
            .collect(),
    })
}

fn to_libsql(v: Value) -> libsql::Value {
    match v {
        Value::Integer(i) => libsql::Value::Integer(i),
        Value::Real(f) => libsql::Value::Real(f),
        Value::Text(s) => libsql::Value::Text(s),
        Value::Blob(b) => libsql::Value::Blob(b),
        Value::Null => libsql::Value::Null,
    }
}

fn from_libsql(v: libsql::Value) -> Value {
    match v {
        libsql::Value::Integer(i) => Value::Integer(i),
        libsql::Value::Real(f) => Value::Real(f),
        libsql::Value::Text(s) => Value::Text(s),
        libsql::Value::Blob(b) => Value::Blob(b),
        libsql::Value::Null => Value::Null,
    }
}

/// See [`Store::blocking_db`].
pub struct BlockingDb {
    conn: arcana_db::PooledConnection,
    handle: tokio::runtime::Handle,
}

impl Db for BlockingDb {
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        let params = params.to_vec();
        tokio::task::block_in_place(|| self.handle.block_on(run(&self.conn, sql, params)))
    }
}
