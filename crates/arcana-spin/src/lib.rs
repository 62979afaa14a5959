//! Glue between Spin's Rust SDK and `arcana-core`, so that each component's crate is
//! one line of routing. Only interfaces real Spin provides are used:
//! `fermyon:spin/sqlite@2.0.0`, `fermyon:spin/variables@2.0.0` and `wasi:http`.

pub mod embeddings;
mod outbound;

use std::cell::RefCell;

use arcana_core::api::{self, BodyWriter, HostIo, ResponseStreamer, Route};
use arcana_core::db::{Db, DbError, Rows, Value};
use arcana_core::error::ApiError;
use arcana_core::http::{ApiRequest, ApiResponse};
use arcana_core::settings::{Settings, Vars};
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};
use spin_sdk::sqlite;

/// The `default` database through Spin's SQLite interface, opened on first use.
#[derive(Default)]
pub struct SpinDb {
    conn: RefCell<Option<std::rc::Rc<sqlite::Connection>>>,
    /// Whether a transaction is open on the connection: a busy statement is retried
    /// only outside one.
    in_transaction: std::cell::Cell<bool>,
}

impl SpinDb {
    fn conn(&self) -> Result<std::rc::Rc<sqlite::Connection>, DbError> {
        if let Some(c) = self.conn.borrow().as_ref() {
            return Ok(c.clone());
        }
        let c = std::rc::Rc::new(
            sqlite::Connection::open_default()
                .map_err(|e| DbError::Unavailable(format!("cannot open database: {e}")))?,
        );
        *self.conn.borrow_mut() = Some(c.clone());
        Ok(c)
    }
}

impl Db for SpinDb {
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<sqlite::Value> = params.iter().map(to_spin).collect();
        let in_transaction = self.in_transaction.get();
        let run = || {
            let result = self.conn()?.execute(sql, &params).map_err(|e| match e {
                sqlite::Error::Io(msg) => DbError::from_message(msg),
                other => DbError::Unavailable(other.to_string()),
            });
            // A remote connection (Spin's libSQL client) may keep the state of a
            // statement refused as busy: the retry goes out on a new connection.
            if !in_transaction && result.as_ref().is_err_and(arcana_core::db::is_busy) {
                self.conn.borrow_mut().take();
            }
            result
        };
        // Another writer holding the lock (another instance on the same libSQL server)
        // makes a statement fail as busy without running: outside a transaction it is
        // run again shortly, so a moment of contention is not a 503.
        let effect = arcana_core::db::transaction_effect(sql);
        let result = if in_transaction {
            run()
        } else {
            arcana_core::db::retry_busy(run, std::thread::sleep)
        };
        // A failed COMMIT or ROLLBACK may or may not have ended the transaction; the
        // next statement then is not retried, which is the safe side.
        if let (Ok(_), Some(opens)) = (&result, effect) {
            self.in_transaction.set(opens);
        }
        let result = result?;
        Ok(Rows {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|r| r.values.into_iter().map(from_spin).collect())
                .collect(),
        })
    }
}

fn to_spin(v: &Value) -> sqlite::Value {
    match v {
        Value::Integer(i) => sqlite::Value::Integer(*i),
        Value::Real(f) => sqlite::Value::Real(*f),
        Value::Text(s) => sqlite::Value::Text(s.clone()),
        Value::Blob(b) => sqlite::Value::Blob(b.clone()),
        Value::Null => sqlite::Value::Null,
    }
}

fn from_spin(v: sqlite::Value) -> Value {
    match v {
        sqlite::Value::Integer(i) => Value::Integer(i),
        sqlite::Value::Real(f) => Value::Real(f),
        sqlite::Value::Text(s) => Value::Text(s),
        sqlite::Value::Blob(b) => Value::Blob(b),
        sqlite::Value::Null => Value::Null,
    }
}

/// Component variables through Spin's variables interface.
pub struct SpinVars;

impl Vars for SpinVars {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

pub use outbound::WasiTransport;

/// Serves one request with a component's route table: reads the body within the
/// configured limit (413 past it, without reading the rest), dispatches, writes the
/// answer (unless the handler streamed it itself).
pub async fn serve(routes: &[Route], req: IncomingRequest, out: ResponseOutparam) {
    init_logging();
    let vars = SpinVars;
    let streamer = SpinStreamer {
        out: RefCell::new(Some(out)),
    };
    let response = match Settings::load(&vars) {
        Err(e) => ApiResponse::problem(&e, None),
        Ok(settings) => match read_request(req, settings.max_body_bytes).await {
            Ok(api_req) => {
                let io = HostIo {
                    transport: Some(&WasiTransport),
                    streamer: Some(&streamer),
                    embedder: Some(&embeddings::SpinEmbedder),
                };
                api::serve_with_settings(routes, &SpinDb::default(), &settings, io, &api_req)
            }
            Err(e) => ApiResponse::problem(&e, None),
        },
    };
    let out = streamer.out.borrow_mut().take();
    if let Some(out) = out {
        write_response(response, out).await;
    }
}

/// Logs as JSON lines on stderr, which Spin keeps per component (and the runner passes
/// through): one `arcana::request` line per request, plus warnings and errors.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Streams a response straight to the client with blocking writes.
struct SpinStreamer {
    out: RefCell<Option<ResponseOutparam>>,
}

impl ResponseStreamer for SpinStreamer {
    fn start(
        &self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> Option<Box<dyn BodyWriter + '_>> {
        let out = self.out.borrow_mut().take()?;
        let headers: Vec<(String, Vec<u8>)> = headers
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        let response =
            OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
        let _ = response.set_status_code(status);
        let body = response.body().ok()?;
        out.set(response);
        let stream = body.write().ok()?;
        Some(Box::new(SpinBodyWriter {
            stream: Some(stream),
            body: Some(body),
        }))
    }
}

/// The body of a streamed response; finished when dropped.
struct SpinBodyWriter {
    stream: Option<wasi::io::streams::OutputStream>,
    body: Option<spin_sdk::http::OutgoingBody>,
}

impl BodyWriter for SpinBodyWriter {
    fn write(&mut self, bytes: &[u8]) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        for chunk in bytes.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                self.stream = None;
                return false;
            }
        }
        true
    }
}

impl Drop for SpinBodyWriter {
    fn drop(&mut self) {
        // The stream is a child of the body: drop it first, then finish the body.
        self.stream = None;
        if let Some(body) = self.body.take() {
            let _ = spin_sdk::http::OutgoingBody::finish(body, None);
        }
    }
}

/// Converts Spin's request, refusing bodies over `limit` bytes with 413.
pub async fn read_request(req: IncomingRequest, limit: usize) -> Result<ApiRequest, ApiError> {
    let method = match req.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(m) => m.to_ascii_uppercase(),
    };
    let target = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let too_large = || {
        ApiError::new(
            413,
            "body_too_large",
            format!("The request body is larger than {limit} bytes."),
        )
    };
    let declared = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("body_read_failed", format!("Cannot read the body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(ApiRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Writes a complete response.
pub async fn write_response(resp: ApiResponse, out: ResponseOutparam) {
    let mut headers: Vec<(String, Vec<u8>)> = resp
        .headers
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    headers.push((
        "content-length".into(),
        resp.body.len().to_string().into_bytes(),
    ));
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(resp.status).is_err() {
        tracing::error!(status = resp.status, "invalid status code");
    }
    let mut body = outgoing.take_body();
    out.set(outgoing);
    if !resp.body.is_empty()
        && let Err(e) = body.send(resp.body).await
    {
        tracing::warn!(error = ?e, "client went away while the response was written");
    }
}
