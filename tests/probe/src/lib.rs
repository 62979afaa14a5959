//! Test fixture for the runner's black-box tests (`tests/probe/spin.toml`). Each path
//! exercises one capability exactly as a real component would use it through Spin.

// `#[http_component]` generates the component's export glue, which needs `unsafe`.
#![allow(unsafe_code)]

use futures::SinkExt;
use spin_sdk::http::{
    Fields, IncomingRequest, OutgoingResponse, Request, Response, ResponseOutparam,
};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let path_q = req.path_with_query().unwrap_or_default();
    let (path, query) = path_q.split_once('?').unwrap_or((&path_q, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.replace("%3A", ":").replace("%2F", "/"))
    };
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned().into()))
        .collect();
    let reply = |status: u16, body: serde_json::Value| (status, body.to_string());
    let (status, body) = match path {
        p if p.starts_with("/probe/headers") => reply(200, headers.into()),
        "/probe/var" => match spin_sdk::variables::get(&param("name").unwrap_or_default()) {
            Ok(v) => reply(200, serde_json::json!({ "value": v })),
            Err(e) => reply(404, serde_json::json!({ "error": e.to_string() })),
        },
        "/probe/outbound" => {
            let url = param("url").unwrap_or_default();
            let result: Result<Response, _> = spin_sdk::http::send(Request::get(url)).await;
            match result {
                Ok(resp) => reply(
                    200,
                    serde_json::json!({ "status": *resp.status(), "body": String::from_utf8_lossy(resp.body()) }),
                ),
                Err(e) => reply(502, serde_json::json!({ "error": e.to_string() })),
            }
        }
        "/probe/sql" => {
            let db = param("db").unwrap_or_else(|| "default".into());
            match spin_sdk::sqlite::Connection::open(&db) {
                Err(e) => reply(500, serde_json::json!({ "open_error": format!("{e:?}") })),
                Ok(conn) => {
                    let run = || -> Result<i64, spin_sdk::sqlite::Error> {
                        conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)", &[])?;
                        conn.execute("INSERT INTO probe VALUES (1)", &[])?;
                        let r = conn.execute("SELECT count(*) FROM probe", &[])?;
                        Ok(r.rows()
                            .next()
                            .and_then(|row| row.get::<i64>("count(*)"))
                            .unwrap_or(-1))
                    };
                    match run() {
                        Ok(n) => reply(200, serde_json::json!({ "count": n })),
                        Err(e) => reply(500, serde_json::json!({ "error": format!("{e:?}") })),
                    }
                }
            }
        }
        "/probe/abandon-tx" => {
            // Opens a transaction and traps: the runner must roll it back.
            let conn = spin_sdk::sqlite::Connection::open_default().expect("open");
            conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)", &[])
                .expect("create");
            conn.execute("BEGIN", &[]).expect("begin");
            conn.execute("INSERT INTO probe VALUES (99)", &[])
                .expect("insert");
            panic!("trapping inside a transaction");
        }
        "/probe/embed" => {
            // `{"model": ..., "texts": [...]}`, embedded in one call (Spin pads a batch
            // to its longest text).
            let body: serde_json::Value =
                serde_json::from_slice(&req.into_body().await.unwrap_or_default())
                    .unwrap_or_default();
            let model = body["model"]
                .as_str()
                .unwrap_or("all-minilm-l6-v2")
                .to_string();
            let texts: Vec<String> = body["texts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            match spin_sdk::llm::generate_embeddings(
                spin_sdk::llm::EmbeddingModel::Other(&model),
                &texts,
            ) {
                Ok(r) => reply(
                    200,
                    serde_json::json!({
                        "embeddings": r.embeddings,
                        "prompt_token_count": r.usage.prompt_token_count,
                    }),
                ),
                Err(e) => {
                    let (kind, message) = match e {
                        spin_sdk::llm::Error::ModelNotSupported => {
                            ("model-not-supported", String::new())
                        }
                        spin_sdk::llm::Error::RuntimeError(m) => ("runtime-error", m),
                        spin_sdk::llm::Error::InvalidInput(m) => ("invalid-input", m),
                    };
                    reply(
                        400,
                        serde_json::json!({ "error": kind, "message": message }),
                    )
                }
            }
        }
        "/probe/trap" => panic!("probe asked to trap"),
        "/probe/spin" => {
            // Burns CPU forever; only the runner's deadline stops it.
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "/probe/alloc" => {
            let mib: usize = param("mib").and_then(|v| v.parse().ok()).unwrap_or(1);
            let v = vec![1u8; mib << 20];
            reply(
                200,
                serde_json::json!({ "allocated": std::hint::black_box(v).len() }),
            )
        }
        "/probe/stream" => {
            let n: usize = param("chunks").and_then(|v| v.parse().ok()).unwrap_or(3);
            let delay: u64 = param("delay_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(200);
            let resp = OutgoingResponse::new(
                Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap(),
            );
            let mut body = resp.take_body();
            out.set(resp);
            for i in 0..n {
                let _ = body.send(format!("chunk {i}\n").into_bytes()).await;
                std::thread::sleep(std::time::Duration::from_millis(delay));
            }
            return;
        }
        _ => reply(404, serde_json::json!({ "error": "no such probe" })),
    };
    let resp = OutgoingResponse::new(
        Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())]).unwrap(),
    );
    let _ = resp.set_status_code(status);
    let mut sink = resp.take_body();
    out.set(resp);
    let _ = sink.send(body.into_bytes()).await;
}
