//! Numbered plain-SQL migrations, applied once each and tracked in a table.
//!
//! Files are named `NNNN_description.sql`. Each is applied inside one transaction
//! together with its row in `_arcana_migrations`, so a failing file leaves the database
//! exactly as it was. The SHA-256 of every applied file is recorded: editing a file that
//! was already applied is refused, because the databases it already ran on would silently
//! differ from new ones.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::pool::PooledConnection;

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number at the start of the file name; applied in ascending order.
    pub version: i64,
    /// The file name without the `.sql` suffix.
    pub name: String,
    /// The SQL text.
    pub sql: String,
}

impl Migration {
    /// Builds a migration from a file name such as `0001_users.sql` and its text.
    pub fn from_file_name(file_name: &str, sql: impl Into<String>) -> Result<Self, MigrationError> {
        let stem = file_name
            .strip_suffix(".sql")
            .ok_or_else(|| MigrationError::BadName(file_name.to_string()))?;
        let digits: String = stem.chars().take_while(char::is_ascii_digit).collect();
        let version = digits
            .parse::<i64>()
            .map_err(|_| MigrationError::BadName(file_name.to_string()))?;
        Ok(Migration {
            version,
            name: stem.to_string(),
            sql: sql.into(),
        })
    }

    /// Hex SHA-256 of the SQL text, recorded when applied.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A file in the migrations folder is not named `NNNN_name.sql`.
    #[error("migration file {0:?} must be named NNNN_description.sql")]
    BadName(String),
    /// Two files share a number.
    #[error("two migrations have version {0}")]
    DuplicateVersion(i64),
    /// An applied migration's file changed afterwards.
    #[error("migration {0} was edited after it was applied; add a new migration instead")]
    Edited(String),
    /// The folder could not be read.
    #[error("cannot read migrations from {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A statement failed; the migration was rolled back.
    #[error("migration {name} failed and was rolled back: {source}")]
    Failed { name: String, source: crate::Error },
    /// The tracking table could not be read or written.
    #[error("database error: {0}")]
    Database(#[from] crate::Error),
}

/// Reads every `*.sql` file in `dir`, sorted by version.
pub fn load_migrations_dir(dir: &Path) -> Result<Vec<Migration>, MigrationError> {
    let io = |source| MigrationError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") {
            continue;
        }
        let sql = std::fs::read_to_string(entry.path()).map_err(io)?;
        migrations.push(Migration::from_file_name(&name, sql)?);
    }
    sort_and_check(migrations)
}

/// Sorts by version and refuses duplicates.
pub fn sort_and_check(mut migrations: Vec<Migration>) -> Result<Vec<Migration>, MigrationError> {
    migrations.sort_by_key(|m| m.version);
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrationError::DuplicateVersion(pair[0].version));
        }
    }
    Ok(migrations)
}

const TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS _arcana_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)";

/// Applies every migration not yet recorded; returns the names applied now.
/// Re-running is a no-op. Safe against a second process migrating at the same time:
/// each migration re-checks the tracking table inside its own write transaction.
pub async fn apply_migrations(
    conn: &PooledConnection,
    migrations: &[Migration],
) -> Result<Vec<String>, MigrationError> {
    conn.query_all(TRACKING_TABLE, Vec::new()).await?;
    let mut applied_now = Vec::new();
    for migration in migrations {
        // BEGIN IMMEDIATE takes the write lock first, so two processes cannot both apply.
        conn.query_all("BEGIN IMMEDIATE", Vec::new()).await?;
        match apply_one(conn, migration).await {
            Ok(true) => {
                conn.query_all("COMMIT", Vec::new()).await?;
                tracing::info!(migration = %migration.name, "applied migration");
                applied_now.push(migration.name.clone());
            }
            Ok(false) => {
                conn.query_all("COMMIT", Vec::new()).await?;
            }
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.query_all("ROLLBACK", Vec::new()).await;
                }
                return Err(e);
            }
        }
    }
    Ok(applied_now)
}

/// Applies one migration inside the caller's transaction; `false` when already applied.
async fn apply_one(conn: &PooledConnection, migration: &Migration) -> Result<bool, MigrationError> {
    let rows = conn
        .query_all(
            "SELECT checksum FROM _arcana_migrations WHERE version = ?1",
            vec![migration.version.into()],
        )
        .await?;
    if let Some(row) = rows.rows.first() {
        if row.first() != Some(&libsql::Value::Text(migration.checksum())) {
            return Err(MigrationError::Edited(migration.name.clone()));
        }
        return Ok(false);
    }
    conn.execute_script(&migration.sql)
        .await
        .map_err(|source| MigrationError::Failed {
            name: migration.name.clone(),
            source,
        })?;
    conn.query_all(
        "INSERT INTO _arcana_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
        vec![
            migration.version.into(),
            migration.name.clone().into(),
            migration.checksum().into(),
        ],
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatabaseConfig;

    async fn temp_db() -> (tempfile::TempDir, PooledConnection) {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig::Local {
            path: dir.path().join("t.db"),
        };
        let pool = crate::Pool::open(&config, 1).await.unwrap();
        let conn = pool.get().await.unwrap();
        (dir, conn)
    }

    fn m(name: &str, sql: &str) -> Migration {
        Migration::from_file_name(name, sql).unwrap()
    }

    async fn count(conn: &PooledConnection, sql: &str) -> i64 {
        match conn.query_all(sql, Vec::new()).await.unwrap().rows[0][0] {
            libsql::Value::Integer(n) => n,
            ref other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn rerunning_applies_nothing() {
        let (_d, conn) = temp_db().await;
        let all = vec![m("0001_a.sql", "CREATE TABLE a (x INTEGER);")];
        assert_eq!(apply_migrations(&conn, &all).await.unwrap(), vec!["0001_a"]);
        assert!(apply_migrations(&conn, &all).await.unwrap().is_empty());
        assert_eq!(
            count(&conn, "SELECT count(*) FROM _arcana_migrations").await,
            1
        );
    }

    #[tokio::test]
    async fn failed_migration_leaves_database_unchanged() {
        let (_d, conn) = temp_db().await;
        let all = vec![
            m("0001_a.sql", "CREATE TABLE a (x INTEGER);"),
            m(
                "0002_b.sql",
                "CREATE TABLE b (x INTEGER); INSERT INTO a VALUES (1); SELECT * FROM nope;",
            ),
        ];
        let err = apply_migrations(&conn, &all).await.unwrap_err();
        assert!(matches!(err, MigrationError::Failed { .. }), "{err}");
        assert_eq!(count(&conn, "SELECT count(*) FROM a").await, 0);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 'b'").await,
            0
        );
        assert_eq!(
            count(&conn, "SELECT max(version) FROM _arcana_migrations").await,
            1
        );
    }

    #[tokio::test]
    async fn edited_migration_is_refused() {
        let (_d, conn) = temp_db().await;
        apply_migrations(&conn, &[m("0001_a.sql", "CREATE TABLE a (x INTEGER);")])
            .await
            .unwrap();
        let err = apply_migrations(&conn, &[m("0001_a.sql", "CREATE TABLE a (y TEXT);")])
            .await
            .unwrap_err();
        assert!(matches!(err, MigrationError::Edited(_)), "{err}");
    }

    /// Real Spin's `--sqlite @file` runs a file at every start, so each file in the
    /// repository must succeed when run twice outside the tracking table.
    #[tokio::test]
    async fn repository_migrations_are_idempotent() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let all = load_migrations_dir(&dir).unwrap();
        assert!(!all.is_empty());
        let (_d, conn) = temp_db().await;
        for round in 0..2 {
            for m in &all {
                conn.execute_script(&m.sql)
                    .await
                    .unwrap_or_else(|e| panic!("{} failed on run {}: {e}", m.name, round + 1));
            }
        }
    }

    /// Conversations from before trees (0008) become one path each, ending at their
    /// newest message; running the file again changes nothing.
    #[tokio::test]
    async fn linear_histories_become_one_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let all = load_migrations_dir(&dir).unwrap();
        let (before, tree): (Vec<_>, Vec<_>) = all.into_iter().partition(|m| m.version < 8);
        let (_d, conn) = temp_db().await;
        for m in &before {
            conn.execute_script(&m.sql).await.unwrap();
        }
        conn.execute_script(
            "INSERT INTO users (id, username, username_norm, password_hash, role, created_at, updated_at)
                 VALUES ('u', 'u', 'u', 'x', 'user', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO conversations (id, user_id, title, created_at, updated_at)
                 VALUES ('c', 'u', 't', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO chat_messages (id, user_id, conversation_id, seq, sender, message_content, timestamp)
                 VALUES ('m1', 'u', 'c', 1, 'user', 'a', '2026-01-01T00:00:01Z'),
                        ('m2', 'u', 'c', 2, 'llm', 'b', '2026-01-01T00:00:02Z'),
                        ('m3', 'u', 'c', 3, 'user', 'c', '2026-01-01T00:00:03Z');",
        )
        .await
        .unwrap();
        for _ in 0..2 {
            for m in &tree {
                conn.execute_script(&m.sql).await.unwrap();
            }
        }
        let parents = "SELECT count(*) FROM chat_message_parents WHERE
             (message_id = 'm1' AND parent_id IS NULL) OR (message_id = 'm2' AND parent_id = 'm1')
             OR (message_id = 'm3' AND parent_id = 'm2')";
        assert_eq!(count(&conn, parents).await, 3);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM chat_active_leaf WHERE conversation_id = 'c' AND message_id = 'm3'").await,
            1
        );
    }

    #[test]
    fn names_and_duplicates_are_checked() {
        assert!(Migration::from_file_name("users.sql", "").is_err());
        assert!(Migration::from_file_name("0001_users.txt", "").is_err());
        let dup = sort_and_check(vec![m("0002_a.sql", ""), m("0002_b.sql", "")]);
        assert!(matches!(dup, Err(MigrationError::DuplicateVersion(2))));
    }
}
