//! Login throttling per account name. After [`FREE_FAILURES`] failed attempts within
//! [`WINDOW_SECS`], the name is locked for a delay that doubles with each further
//! failure (capped at [`MAX_LOCK_SECS`]). The same applies to names that do not
//! exist, so the answer never reveals which accounts are real. While locked, even
//! the right password is refused with 429 and `Retry-After`.

use time::{Duration, OffsetDateTime};

use crate::db::{Db, DbError};
use crate::error::ApiError;
use crate::time::{format, parse};

/// Failures allowed before locking starts.
pub const FREE_FAILURES: i64 = 5;
/// Failures older than this are forgotten.
pub const WINDOW_SECS: i64 = 15 * 60;
/// First lock duration; doubles per further failure.
pub const BASE_LOCK_SECS: i64 = 30;
/// Longest lock.
pub const MAX_LOCK_SECS: i64 = 15 * 60;

/// 429 with `Retry-After` when `name` is locked at `now`.
pub fn check(db: &dyn Db, name: &str, now: OffsetDateTime) -> Result<(), ApiError> {
    let rows = db.query(
        "SELECT locked_until FROM login_throttle WHERE username_norm = ?1",
        &[name.into()],
    )?;
    let locked_until = match rows.first() {
        Some(row) => row.opt_text(0)?.as_deref().and_then(parse),
        None => None,
    };
    if let Some(until) = locked_until.filter(|u| *u > now) {
        let secs = (until - now).whole_seconds().max(1);
        return Err(ApiError::new(
            429,
            "too_many_attempts",
            "Too many failed logins for this account; try again later.",
        )
        .with_header("retry-after", secs.to_string()));
    }
    Ok(())
}

/// Records a failed attempt and, past the free ones, sets the lock.
pub fn record_failure(db: &dyn Db, name: &str, now: OffsetDateTime) -> Result<(), DbError> {
    let rows = db.query(
        "SELECT failures, window_start FROM login_throttle WHERE username_norm = ?1",
        &[name.into()],
    )?;
    let (mut failures, window_start) = match rows.first() {
        Some(row) => {
            let start = parse(&row.text(1)?).unwrap_or(now);
            if now - start > Duration::seconds(WINDOW_SECS) {
                (0, now)
            } else {
                (row.int(0)?, start)
            }
        }
        None => (0, now),
    };
    failures += 1;
    let locked_until = lock_duration(failures).map(|d| format(now + d));
    db.execute(
        "INSERT INTO login_throttle (username_norm, failures, window_start, locked_until)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (username_norm) DO UPDATE SET
             failures = excluded.failures,
             window_start = excluded.window_start,
             locked_until = excluded.locked_until",
        &[
            name.into(),
            failures.into(),
            format(window_start).into(),
            locked_until.into(),
        ],
    )
}

/// Forgets failures after a successful login.
pub fn record_success(db: &dyn Db, name: &str) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM login_throttle WHERE username_norm = ?1",
        &[name.into()],
    )
}

/// How long to lock after `failures` failures in the window.
pub fn lock_duration(failures: i64) -> Option<Duration> {
    if failures < FREE_FAILURES {
        return None;
    }
    let doublings = (failures - FREE_FAILURES).min(20) as u32;
    let secs = BASE_LOCK_SECS
        .saturating_mul(1i64 << doublings)
        .min(MAX_LOCK_SECS);
    Some(Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDb;

    #[test]
    fn lock_grows_and_is_capped() {
        assert_eq!(lock_duration(4), None);
        assert_eq!(lock_duration(5), Some(Duration::seconds(30)));
        assert_eq!(lock_duration(6), Some(Duration::seconds(60)));
        assert_eq!(lock_duration(50), Some(Duration::seconds(MAX_LOCK_SECS)));
    }

    #[test]
    fn locks_after_free_failures_and_unlocks_after_delay() {
        let db = TestDb::new();
        let t0 = crate::time::now();
        for _ in 0..FREE_FAILURES - 1 {
            record_failure(&db, "bob", t0).unwrap();
            check(&db, "bob", t0).unwrap();
        }
        record_failure(&db, "bob", t0).unwrap();
        let err = check(&db, "bob", t0).unwrap_err();
        assert_eq!(err.status, 429);
        let retry: i64 = err
            .headers
            .iter()
            .find(|h| h.0 == "retry-after")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert!((1..=BASE_LOCK_SECS).contains(&retry));
        check(&db, "bob", t0 + Duration::seconds(BASE_LOCK_SECS + 1)).unwrap();
        check(&db, "alice", t0).unwrap();
        record_success(&db, "bob").unwrap();
        check(&db, "bob", t0).unwrap();
    }
}
