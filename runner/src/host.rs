//! Per-request store state and the Spin host interfaces (`fermyon:spin/sqlite@2.0.0`,
//! `fermyon:spin/variables@2.0.0`, `fermyon:spin/llm@2.0.0`) implemented for it.
//!
//! Errors go back to the guest as WIT values (`no-such-database`, `io(...)`), never as
//! traps: a trap is reserved for bugs in the guest.

use std::collections::BTreeMap;
use std::sync::Arc;

use arcana_db::{Pool, PooledConnection};
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::OutboundPolicy;

wasmtime::component::bindgen!({
    path: "wit",
    world: "runner-host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/sqlite.connection": SqliteConnection,
    },
});

use fermyon::spin::llm as wit_llm;
use fermyon::spin::sqlite as wit_sqlite;
use fermyon::spin::variables as wit_variables;

use crate::embeddings::{EmbeddingsError, LocalEmbeddings};

/// What one component may reach: its databases, variables and outbound hosts.
/// Built once at start-up and shared by every request to that component.
#[derive(Clone)]
pub struct ComponentCapabilities {
    pub id: String,
    /// Database label → pool, only for labels listed in the component's `sqlite_databases`.
    pub databases: BTreeMap<String, Pool>,
    pub variables: Arc<BTreeMap<String, String>>,
    pub outbound: Arc<OutboundPolicy>,
    /// The component's `ai_models`: the only models it may ask the LLM interface for.
    pub ai_models: Arc<std::collections::BTreeSet<String>>,
    /// The application's local LLM engine (shared by every component).
    pub llm: Arc<LocalEmbeddings>,
}

/// The `T` of each request's `Store<T>`.
pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: OutboundHooks,
    pub limits: StoreLimits,
    pub caps: ComponentCapabilities,
    /// SQL statements this request ran (for the access log: on a remote database each
    /// is a network round trip).
    pub statements: Arc<std::sync::atomic::AtomicU32>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl HostState {
    /// The memory limiter, installed with `Store::limiter`.
    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }
}

/// `wasi:http` hooks enforcing the component's `allowed_outbound_hosts`.
pub struct OutboundHooks {
    pub component: String,
    pub policy: Arc<OutboundPolicy>,
    /// The shared, pooled client allowed requests go out through.
    pub client: crate::outbound_client::OutboundClient,
}

impl wasmtime_wasi_http::WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        if !self.policy.allows_uri(request.uri()) {
            tracing::warn!(
                component = %self.component,
                uri = %redact_uri(request.uri()),
                unresolved = self.policy.unresolved().unwrap_or(""),
                "Outbound network destination not allowed: {}",
                redact_uri(request.uri())
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let _ = fut;
        let client = self.client.clone();
        Box::new(async move {
            let res = client.send(request, options).await?;
            // The pool drives the connection; there is no per-request I/O task.
            let io = async { Ok(()) };
            Ok((res, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// Scheme, host and port only: query strings can carry keys.
fn redact_uri(uri: &http::Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map(|a| a.as_str()).unwrap_or("?")
    )
}

/// A guest's open database. The pooled connection is borrowed only while a statement
/// runs or a transaction is open, so a long streaming request does not hold one.
pub struct SqliteConnection {
    pool: Pool,
    pinned: Option<PooledConnection>,
}

/// Marker for `add_to_linker`: the host traits are implemented on `HostState` itself.
pub struct SpinHost;

impl HasData for SpinHost {
    type Data<'a> = &'a mut HostState;
}

/// Adds the Spin interfaces to a linker.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    wit_sqlite::add_to_linker::<HostState, SpinHost>(linker, |s| s)?;
    wit_variables::add_to_linker::<HostState, SpinHost>(linker, |s| s)?;
    wit_llm::add_to_linker::<HostState, SpinHost>(linker, |s| s)?;
    Ok(())
}

impl HostState {
    /// Spin's answer to a model the component did not list in `ai_models`.
    fn model_refused(&self, model: &str) -> Option<wit_llm::Error> {
        (!self.caps.ai_models.contains(model)).then(|| {
            wit_llm::Error::InvalidInput(format!(
                "The component does not have access to use '{model}'. To give the component \
                 access, add '{model}' to the 'ai_models' key for the component in your \
                 spin.toml manifest"
            ))
        })
    }
}

impl wit_llm::Host for HostState {
    async fn infer(
        &mut self,
        model: String,
        _prompt: String,
        _params: Option<wit_llm::InferencingParams>,
    ) -> wasmtime::Result<Result<wit_llm::InferencingResult, wit_llm::Error>> {
        if let Some(refused) = self.model_refused(&model) {
            return Ok(Err(refused));
        }
        Ok(Err(wit_llm::Error::RuntimeError(
            "local inferencing models are not served by this runner; call a provider over HTTP"
                .into(),
        )))
    }

    async fn generate_embeddings(
        &mut self,
        model: String,
        text: Vec<String>,
    ) -> wasmtime::Result<Result<wit_llm::EmbeddingsResult, wit_llm::Error>> {
        if let Some(refused) = self.model_refused(&model) {
            return Ok(Err(refused));
        }
        Ok(match self.caps.llm.generate(&model, text).await {
            Ok(e) => Ok(wit_llm::EmbeddingsResult {
                embeddings: e.vectors,
                usage: wit_llm::EmbeddingsUsage {
                    prompt_token_count: e.prompt_tokens,
                },
            }),
            Err(EmbeddingsError::ModelNotSupported) => Err(wit_llm::Error::ModelNotSupported),
            Err(EmbeddingsError::InvalidInput(m)) => Err(wit_llm::Error::InvalidInput(m)),
            Err(EmbeddingsError::Runtime(m)) => {
                tracing::warn!(component = %self.caps.id, error = %m, "embeddings failed");
                Err(wit_llm::Error::RuntimeError(m))
            }
        })
    }
}

impl wit_sqlite::Host for HostState {}

impl wit_sqlite::HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, wit_sqlite::Error>> {
        // As Spin: a label the component did not list is denied, configured or not.
        let Some(pool) = self.caps.databases.get(&database) else {
            return Ok(Err(wit_sqlite::Error::AccessDenied));
        };
        let conn = SqliteConnection {
            pool: pool.clone(),
            pinned: None,
        };
        Ok(Ok(self.table.push(conn)?))
    }

    async fn execute(
        &mut self,
        this: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<wit_sqlite::Value>,
    ) -> wasmtime::Result<Result<wit_sqlite::QueryResult, wit_sqlite::Error>> {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = self.table.get_mut(&this)?;
        let borrowed = match conn.pinned.take() {
            Some(c) => c,
            None => match conn.pool.get().await {
                Ok(c) => c,
                Err(e) => return Ok(Err(wit_sqlite::Error::Io(e.to_string()))),
            },
        };
        tracing::trace!(target: "arcana::sql", component = %self.caps.id, sql = %statement, "statement");
        let result = run_statement(&borrowed, &statement, parameters).await;
        // Keep the connection for the guest while its transaction is open.
        if !borrowed.is_autocommit() {
            conn.pinned = Some(borrowed);
        }
        Ok(result)
    }

    async fn drop(&mut self, this: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        // Dropping a pinned connection rolls back an unfinished transaction (see arcana_db::pool).
        self.table.delete(this)?;
        Ok(())
    }
}

async fn run_statement(
    conn: &arcana_db::PooledConnection,
    statement: &str,
    parameters: Vec<wit_sqlite::Value>,
) -> Result<wit_sqlite::QueryResult, wit_sqlite::Error> {
    let params: Vec<libsql::Value> = parameters.into_iter().map(to_libsql).collect();
    let table = conn
        .query_all(statement, params)
        .await
        .map_err(|e| wit_sqlite::Error::Io(e.to_string()))?;
    Ok(wit_sqlite::QueryResult {
        columns: table.columns,
        rows: table
            .rows
            .into_iter()
            .map(|values| wit_sqlite::RowResult {
                values: values.into_iter().map(from_libsql).collect(),
            })
            .collect(),
    })
}

fn to_libsql(v: wit_sqlite::Value) -> libsql::Value {
    match v {
        wit_sqlite::Value::Integer(i) => libsql::Value::Integer(i),
        wit_sqlite::Value::Real(f) => libsql::Value::Real(f),
        wit_sqlite::Value::Text(s) => libsql::Value::Text(s),
        wit_sqlite::Value::Blob(b) => libsql::Value::Blob(b),
        wit_sqlite::Value::Null => libsql::Value::Null,
    }
}

fn from_libsql(v: libsql::Value) -> wit_sqlite::Value {
    match v {
        libsql::Value::Integer(i) => wit_sqlite::Value::Integer(i),
        libsql::Value::Real(f) => wit_sqlite::Value::Real(f),
        libsql::Value::Text(s) => wit_sqlite::Value::Text(s),
        libsql::Value::Blob(b) => wit_sqlite::Value::Blob(b),
        libsql::Value::Null => wit_sqlite::Value::Null,
    }
}

impl wit_variables::Host for HostState {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, wit_variables::Error>> {
        if let Err(reason) = crate::ids::check_runtime_key(&name) {
            return Ok(Err(wit_variables::Error::InvalidName(reason)));
        }
        Ok(match self.caps.variables.get(&name) {
            Some(v) => Ok(v.clone()),
            None => Err(wit_variables::Error::Undefined(format!(
                "no variable for {:?}.{name:?}",
                self.caps.id
            ))),
        })
    }
}
