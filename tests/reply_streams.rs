//! Resumable reply streams and stop: a reply streamed by `POST /api/chat` is followed
//! from any request through the database (`GET /api/chat/messages/{id}/stream` with
//! `Last-Event-ID`), on both hosts; `POST .../cancel` stops it.

use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::both_hosts;
use arcana_tests::client;
use arcana_tests::sse::{Event, SseReader};
use serde_json::{Value, json};

type Env = Backend;

/// A backend whose default model streams one word every 100 ms.
async fn setup() -> Env {
    let env = Backend::start().await;
    let provider = env.openai_provider().await;
    env.model(&provider, "drip", true).await;
    env
}

/// A message whose echo takes `words` deltas (plus `echo: `).
fn message(words: usize) -> String {
    (1..=words)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn start_chat(env: &Env, token: &str, text: &str) -> SseReader {
    let resp = client()
        .post(env.runner.at("/api/chat"))
        .bearer_auth(token)
        .json(&json!({"message": text, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    SseReader::new(resp)
}

async fn follow(env: &Env, token: &str, reply: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .get(env.runner.at(&format!("/api/chat/messages/{reply}/stream")))
        .bearer_auth(token);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

fn text_of(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect()
}

fn ids_increase(events: &[Event]) {
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids {ids:?}");
}

/// The stored reply, once it is no longer streaming.
async fn stored_reply(env: &Env, conv: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = env
            .call("GET", &format!("/api/chat/history/{conv}"), None)
            .await;
        assert_eq!(status, 200);
        let reply = page["items"][1].clone();
        if reply["status"] != "streaming" || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_hosts! {
    async fn a_cut_stream_resumes_with_nothing_lost_or_repeated() {
        let env = setup().await;
        let mut live = start_chat(&env, &env.admin, &message(30)).await;
        let start = live.next().await.unwrap();
        assert_eq!((start.event.as_str(), start.id.as_deref()), ("start", Some("0")));
        assert!(live.retry_ms.is_some(), "a retry hint comes first");
        let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
        let conv = start.data["conversation_id"].as_str().unwrap().to_string();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(live.next().await.unwrap());
        }
        drop(live); // the tab reloads
        let last = seen.last().unwrap().id.clone().unwrap();

        // Mid-way: the header form.
        let resp = follow(&env, &env.admin, &reply, Some(&last)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut resumed = SseReader::new(resp);
        let mut more = Vec::new();
        for _ in 0..3 {
            more.push(resumed.next().await.unwrap());
        }
        drop(resumed);
        // Again from there, by query parameter (EventSource reconnects by hand).
        let again = more.last().unwrap().id.clone().unwrap();
        let resp = client()
            .get(env.runner.at(&format!(
                "/api/chat/messages/{reply}/stream?last_event_id={again}"
            )))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        let rest = SseReader::new(resp).all().await;
        assert!(rest.iter().all(|e| e.event != "start"), "no start event on resume");
        let done = rest.last().unwrap();
        assert_eq!(done.event, "done");

        let mut all = seen.clone();
        all.extend(more);
        all.extend(rest.clone());
        ids_increase(&all);
        let stored = stored_reply(&env, &conv).await;
        assert_eq!(stored["status"], "complete");
        let content = stored["message_content"].as_str().unwrap();
        assert_eq!(content, format!("echo: {}", message(30)));
        assert_eq!(text_of(&all), content, "no duplicate, no gap");
        assert_eq!(done.data["reply_message_id"], reply.as_str());
        assert_eq!(done.id.as_deref(), Some((content.len() + 1).to_string().as_str()));
    }
}

both_hosts! {
    async fn followers_see_the_same_events_and_a_finished_reply_replays() {
        let env = setup().await;
        let mut live = start_chat(&env, &env.admin, &message(20)).await;
        let start = live.next().await.unwrap();
        let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
        let (a, b) = tokio::join!(
            async { SseReader::new(follow(&env, &env.admin, &reply, None).await).all().await },
            async { SseReader::new(follow(&env, &env.admin, &reply, None).await).all().await },
        );
        let own = live.all().await;
        assert_eq!(a, b, "two followers see identical events");
        assert_eq!(a.first().unwrap().event, "start");
        assert_eq!(a.last().unwrap().event, "done");
        assert_eq!(text_of(&a), text_of(&own));
        ids_increase(&a);

        // Finished: a replay from the start, the same events again, and the end.
        let replay = SseReader::new(follow(&env, &env.admin, &reply, None).await).all().await;
        assert_eq!(replay, a);
        // After the last delta: only the closing event; after it: nothing.
        let len = text_of(&a).len();
        let tail = SseReader::new(follow(&env, &env.admin, &reply, Some(&len.to_string())).await)
            .all()
            .await;
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].event, "done");
        let after = SseReader::new(
            follow(&env, &env.admin, &reply, Some(&(len + 1).to_string())).await,
        )
        .all()
        .await;
        assert!(after.is_empty(), "{after:?}");
    }
}

both_hosts! {
    async fn foreign_unknown_and_malformed_follows_are_refused() {
        let env = setup().await;
        let mut live = start_chat(&env, &env.admin, &message(3)).await;
        let start = live.next().await.unwrap();
        let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
        let user_message = start.data["user_message_id"].as_str().unwrap().to_string();
        live.all().await;
        let bob = env.user("bob", &[]).await;
        for (token, id, last, want) in [
            (bob.as_str(), reply.as_str(), None, 404),
            (env.admin.as_str(), user_message.as_str(), None, 404),
            (env.admin.as_str(), "00000000-0000-4000-8000-000000000000", None, 404),
            (env.admin.as_str(), reply.as_str(), Some("minus-one"), 400),
            (env.admin.as_str(), reply.as_str(), Some("999999"), 400),
        ] {
            let resp = follow(&env, token, id, last).await;
            assert_eq!(resp.status().as_u16(), want, "{id} {last:?}");
            let body: Value = resp.json().await.unwrap();
            assert!(body["code"].is_string(), "{body}");
        }
        let resp = client()
            .get(env.runner.at(&format!("/api/chat/messages/{reply}/stream")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let resp = client()
            .post(env.runner.at(&format!("/api/chat/messages/{reply}/cancel")))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
}

both_hosts! {
    async fn stop_keeps_the_partial_reply_and_ends_every_stream() {
        let env = setup().await;
        let full = format!("echo: {}", message(80));
        let mut live = start_chat(&env, &env.admin, &message(80)).await;
        let start = live.next().await.unwrap();
        let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
        let conv = start.data["conversation_id"].as_str().unwrap().to_string();
        let mut follower = SseReader::new(follow(&env, &env.admin, &reply, None).await);
        for _ in 0..3 {
            live.next().await.unwrap();
        }
        let resp = client()
            .post(env.runner.at(&format!("/api/chat/messages/{reply}/cancel")))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let own = live.all().await;
        let seen = follower.all().await;
        assert_eq!(own.last().unwrap().event, "cancelled");
        assert_eq!(seen.last().unwrap().event, "cancelled");
        let stored = stored_reply(&env, &conv).await;
        assert_eq!(stored["status"], "cancelled");
        let partial = stored["message_content"].as_str().unwrap();
        assert!(
            !partial.is_empty() && partial.len() < full.len() && full.starts_with(partial),
            "a strict prefix of the answer: {partial:?}"
        );
        assert_eq!(text_of(&seen), partial);
        assert!(stored["completion_tokens"].as_i64().unwrap() > 0, "{stored}");
        // The usage consumed is in the ledger: two calls (the stopped one counted).
        let (_, usage) = env.call("GET", "/api/arcana/llm/usage", None).await;
        let row = usage["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model_name"] == "drip")
            .cloned()
            .unwrap_or_else(|| panic!("no ledger row: {usage}"));
        assert!(row["completion_tokens"].as_i64().unwrap() > 0, "{row}");
        // Stopping twice is a conflict, not a new stop.
        let resp = client()
            .post(env.runner.at(&format!("/api/chat/messages/{reply}/cancel")))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409);
        // The conversation goes on; the stopped reply is part of it as it was shown.
        let (status, _) = env
            .call("POST", "/api/chat", Some(json!({"conversation_id": conv, "message": "next"})))
            .await;
        assert_eq!(status, 200);
    }
}

both_hosts! {
    async fn a_quiet_stream_gets_heartbeats() {
        let env = Backend::start_with(
            arcana_tests::RunnerOptions::default().env("SPIN_VARIABLE_STREAM_HEARTBEAT_SECS", "1"),
        )
        .await;
        let provider = env.openai_provider().await;
        // `slow` answers after 3 s of silence.
        env.model(&provider, "slow", true).await;
        let mut live = start_chat(&env, &env.admin, "take your time").await;
        let start = live.next().await.unwrap();
        let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
        let mut follower = SseReader::new(follow(&env, &env.admin, &reply, None).await);
        let events = follower.all().await;
        assert_eq!(events.last().unwrap().event, "done");
        assert!(follower.comments >= 1, "no keep-alive during 3 s of silence");
        live.all().await;
    }
}
