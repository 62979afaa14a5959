//! The aggregates against the rows they count, through the real migrations and triggers.

use super::*;
use crate::auth::permissions::Role;
use crate::chat::{self, NewMessage, Sender};
use crate::db::testing::TestDb;
use crate::memory::{self, MemoryInput};
use crate::users::{self, NewUser};

fn user(db: &TestDb, name: &str) -> String {
    let new = NewUser {
        username: name,
        email: None,
        password_hash: "x",
        role: Role::User,
        permissions: &[],
        disabled: false,
    };
    users::insert(db, &new, &crate::time::now_string())
        .unwrap()
        .id
}

fn message(db: &TestDb, user_id: &str, conversation: &str, at: &str) {
    chat::append(
        db,
        user_id,
        conversation,
        Sender::User,
        "hello",
        &NewMessage::default(),
        at,
    )
    .unwrap();
}

fn count(db: &TestDb, sql: &str, user_id: &str) -> i64 {
    db.query(sql, &[user_id.into()])
        .unwrap()
        .first()
        .unwrap()
        .int(0)
        .unwrap()
}

fn usage(db: &TestDb, user_id: &str, model: &str, latency_ms: f64, outcome: &str, at: &str) {
    db.execute(
        "INSERT INTO llm_usage (id, user_id, provider_id, model_name, prompt_tokens, completion_tokens,
                                cost, latency_ms, outcome, created_at)
         VALUES (?1, ?2, 'p1', ?3, 10, 5, 0.25, ?4, ?5, ?6)",
        &[
            uuid::Uuid::new_v4().to_string().into(),
            user_id.into(),
            model.into(),
            latency_ms.into(),
            outcome.into(),
            at.into(),
        ],
    )
    .unwrap();
}

#[test]
fn totals_follow_inserts_upserts_and_deletes() {
    let db = TestDb::new();
    db.execute("PRAGMA foreign_keys = ON", &[]).unwrap();
    let now = crate::time::now();
    let recent = crate::time::format(now);
    let old = crate::time::format(now - Duration::days(3));
    let (a, b) = (user(&db, "alice"), user(&db, "bob"));

    let c1 = chat::create(&db, &a, "one", &old).unwrap().id;
    let c2 = chat::create(&db, &a, "two", &recent).unwrap().id;
    for _ in 0..3 {
        message(&db, &a, &c1, &old);
    }
    for _ in 0..4 {
        message(&db, &a, &c2, &recent);
    }
    let cb = chat::create(&db, &b, "bob's", &recent).unwrap().id;
    message(&db, &b, &cb, &recent);
    let memo = |key: &str, v: i64| MemoryInput {
        key: key.into(),
        value: serde_json::json!(v),
        pinned: None,
    };
    memory::upsert(&db, &a, &memo("k1", 1), &recent).unwrap();
    memory::upsert(&db, &a, &memo("k1", 2), &recent).unwrap(); // an update, not a new one
    memory::upsert(&db, &a, &memo("k2", 3), &recent).unwrap();
    memory::delete(&db, &a, "k2").unwrap();
    chat::delete(&db, &c1).unwrap();

    let windows = Windows::at(now);
    let fa = figures(&db, Scope::User(&a), &windows).unwrap();
    let truth = |sql: &str| count(&db, sql, &a);
    assert_eq!(
        fa.chat.conversations.total,
        truth("SELECT count(*) FROM conversations WHERE user_id = ?1")
    );
    assert_eq!(
        fa.chat.messages.total,
        truth("SELECT count(*) FROM chat_messages WHERE user_id = ?1")
    );
    assert_eq!(
        fa.chat.memories.total,
        truth("SELECT count(*) FROM context_memory WHERE user_id = ?1")
    );
    assert_eq!(
        fa.chat.conversations,
        Count {
            total: 1,
            last_24h: 1
        }
    );
    assert_eq!(
        fa.chat.messages,
        Count {
            total: 4,
            last_24h: 4
        }
    );
    // k2 was created in the window and deleted: created-in-window keeps it.
    assert_eq!(
        fa.chat.memories,
        Count {
            total: 1,
            last_24h: 2
        }
    );

    let fb = figures(&db, Scope::User(&b), &windows).unwrap();
    assert_eq!(
        fb.chat.messages,
        Count {
            total: 1,
            last_24h: 1
        }
    );
    assert_eq!(fb.chat.memories.total, 0);

    let all = figures(&db, Scope::All, &windows).unwrap();
    assert_eq!(all.chat.messages.total, 5);
    assert_eq!(all.chat.conversations.total, 2);

    // Deleting a user takes their stored counts away.
    users::delete(&db, &b).unwrap();
    let all = figures(&db, Scope::All, &windows).unwrap();
    assert_eq!(all.chat.messages.total, 4);
    let lines = per_user(&db, &windows).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].username, "alice");
    assert_eq!((lines[0].messages, lines[0].memories), (4, 1));
}

#[test]
fn terminal_sessions_and_commands_are_counted_per_owner() {
    let db = TestDb::new();
    let (a, b) = (user(&db, "alice"), user(&db, "bob"));
    let now = crate::time::now_string();
    for (id, owner, status) in [
        ("s1", &a, "active"),
        ("s2", &a, "closed"),
        ("s3", &b, "active"),
    ] {
        db.execute(
            "INSERT INTO terminal_sessions (id, user_id, status, started_at, shell, cols, rows)
             VALUES (?1, ?2, ?3, ?4, 'bash', 80, 24)",
            &[id.into(), owner.into(), status.into(), now.clone().into()],
        )
        .unwrap();
    }
    for seq in 0..3 {
        db.execute(
            "INSERT INTO terminal_command_history (id, session_id, seq, command, timestamp)
             VALUES (?1, 's2', ?2, 'ls', ?3)",
            &[format!("h{seq}").into(), seq.into(), now.clone().into()],
        )
        .unwrap();
    }
    let windows = Windows::at(crate::time::now());
    let t = figures(&db, Scope::User(&a), &windows).unwrap().terminal;
    assert_eq!(
        (t.sessions_active, t.sessions_total, t.sessions_last_24h),
        (1, 2, 2)
    );
    assert_eq!((t.commands_total, t.commands_last_24h), (3, 3));
    let t = figures(&db, Scope::User(&b), &windows).unwrap().terminal;
    assert_eq!(
        (t.sessions_active, t.sessions_total, t.commands_total),
        (1, 1, 0)
    );
}

#[test]
fn llm_windows_errors_and_latency() {
    let db = TestDb::new();
    let (a, b) = (user(&db, "alice"), user(&db, "bob"));
    let now = crate::time::now();
    let at = |ago: Duration| crate::time::format(now - ago);
    for _ in 0..9 {
        usage(&db, &a, "m1", 3.0, "ok", &at(Duration::minutes(1)));
    }
    usage(
        &db,
        &a,
        "m1",
        4000.0,
        "rate_limited",
        &at(Duration::minutes(2)),
    );
    usage(&db, &a, "m2", 200.0, "ok", &at(Duration::hours(3))); // in the day only
    usage(&db, &a, "m2", 200.0, "ok", &at(Duration::days(2))); // in neither
    usage(
        &db,
        &b,
        "m1",
        3.0,
        "provider_error",
        &at(Duration::minutes(1)),
    );

    let windows = Windows::at(now);
    let f = figures(&db, Scope::User(&a), &windows).unwrap().llm;
    assert_eq!(f.last_hour.total.calls, 10);
    assert_eq!(f.last_hour.total.errors, 1);
    assert_eq!(
        f.last_hour.total.errors_by_code,
        BTreeMap::from([("rate_limited".to_string(), 1)])
    );
    assert_eq!(f.last_hour.total.prompt_tokens, 100);
    assert!((f.last_hour.total.cost_usd - 2.5).abs() < 1e-9);
    let p50 = f.last_hour.total.latency.p50_ms.unwrap();
    assert!(p50 <= 5.0, "{p50}");
    let p95 = f.last_hour.total.latency.p95_ms.unwrap();
    assert!((2500.0..=5000.0).contains(&p95), "{p95}");
    assert_eq!(f.last_hour.by_model.len(), 1);
    assert_eq!(f.last_24h.total.calls, 11);
    assert_eq!(f.last_24h.by_model.len(), 2);
    assert_eq!(f.last_24h.by_model[1].model, "m2");
    assert_eq!(f.last_24h.by_model[1].figures.calls, 1);

    let all = figures(&db, Scope::All, &windows).unwrap().llm;
    assert_eq!(all.last_hour.total.calls, 11);
    assert_eq!(all.last_hour.total.errors_by_code.len(), 2);
    let lines = per_user(&db, &windows).unwrap();
    let alice = lines.iter().find(|l| l.user_id == a).unwrap();
    assert_eq!(
        (alice.llm_calls_last_24h, alice.llm_errors_last_24h),
        (11, 1)
    );
}

#[test]
fn prometheus_families_carry_lifetime_totals() {
    let db = TestDb::new();
    let a = user(&db, "alice");
    let now = crate::time::now();
    usage(&db, &a, "m1", 3.0, "ok", &crate::time::format(now));
    usage(
        &db,
        &a,
        "m1",
        30.0,
        "timeout",
        &crate::time::format(now - Duration::days(30)),
    );
    let c = chat::create(&db, &a, "t", &crate::time::format(now))
        .unwrap()
        .id;
    message(&db, &a, &c, &crate::time::format(now));
    let mut out = exposition::Exposition::default();
    prometheus::write_figures(&db, &mut out).unwrap();
    let text = out.finish();
    let labels = "provider_id=\"p1\",provider=\"\",model=\"m1\"";
    for line in [
        "arcana_users{role=\"user\",state=\"enabled\"} 1".to_string(),
        "arcana_messages 1".into(),
        "arcana_messages_created_total 1".into(),
        format!("arcana_llm_calls_total{{{labels}}} 2"),
        format!("arcana_llm_errors_total{{{labels},code=\"timeout\"}} 1"),
        format!("arcana_llm_tokens_total{{{labels},kind=\"prompt\"}} 20"),
        format!("arcana_llm_call_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1"),
        format!("arcana_llm_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
        format!("arcana_llm_call_duration_seconds_count{{{labels}}} 2"),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[test]
fn the_migration_counts_rows_that_existed_before_it_once() {
    let (before, stats) = crate::migrations::ALL.split_at(4);
    assert_eq!(stats[0].file_name, "0005_stats.sql");
    let db = TestDb::with_migrations(before);
    let a = user(&db, "alice");
    let now = crate::time::now();
    let c = chat::create(&db, &a, "old", &crate::time::format(now))
        .unwrap()
        .id;
    for _ in 0..5 {
        message(&db, &a, &c, &crate::time::format(now));
    }
    usage(&db, &a, "m1", 40.0, "ok", &crate::time::format(now));
    usage(&db, &a, "m1", 40.0, "timeout", &crate::time::format(now));
    // `spin up --sqlite @file` runs the file at every start: twice must count once.
    db.apply(&stats[0]);
    db.apply(&stats[0]);
    message(&db, &a, &c, &crate::time::format(now)); // and the triggers take over
    let f = figures(&db, Scope::User(&a), &Windows::at(now)).unwrap();
    assert_eq!(
        f.chat.messages,
        Count {
            total: 6,
            last_24h: 6
        }
    );
    assert_eq!(f.chat.conversations.total, 1);
    assert_eq!(f.llm.last_hour.total.calls, 2);
    assert_eq!(f.llm.last_24h.total.errors_by_code["timeout"], 1);
    let p50 = f.llm.last_hour.total.latency.p50_ms.unwrap();
    assert!((25.0..=50.0).contains(&p50), "{p50}");
}
