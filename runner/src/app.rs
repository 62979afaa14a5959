//! Loading an application: manifest → variables → databases → compiled, pre-instantiated
//! components. Every check happens here, before the runner listens, and each gap
//! (missing wasm, unknown database, unset variable, unsupported import) is reported with
//! what to do about it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arcana_db::{DatabaseConfig, Pool};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::host::{self, ComponentCapabilities, HostState};
use crate::manifest::{Manifest, RouteSpec, StaticResponse};
use crate::outbound::OutboundPolicy;
use crate::routes::{RoutePattern, Router};
use crate::variables::{AppVariables, resolve_component_variables};
use arcana_db::RuntimeConfig;

/// Limits applied to every request. Defaults suit a small server; all are flags of `up`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit for one request, including a streamed response body.
    pub request_timeout: Duration,
    /// Linear memory one instance may grow to.
    pub max_memory_bytes: usize,
    /// Requests executing at once; more wait in line.
    pub max_concurrent_requests: usize,
    /// Open database connections per database.
    pub db_connections: usize,
    /// Connection and body limits applied before a request reaches a component.
    pub front_door: arcana_serve::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(300),
            max_memory_bytes: 256 << 20,
            max_concurrent_requests: 128,
            db_connections: 8,
            front_door: arcana_serve::Limits::default(),
        }
    }
}

/// How often the epoch ticks; the request deadline is counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(50);

/// One servable component.
pub struct LoadedComponent {
    pub pre: ProxyPre<HostState>,
    pub caps: ComponentCapabilities,
    pub environment: Vec<(String, String)>,
}

/// What a route leads to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A component, by index into [`App::components`].
    Component(usize),
    /// A fixed answer (`static_response`), by index into [`App::static_responses`].
    Static(usize),
}

/// A loaded application, shared by all connections.
pub struct App {
    pub name: String,
    pub engine: Engine,
    pub router: Router<Target>,
    pub static_responses: Vec<StaticResponse>,
    pub components: Vec<LoadedComponent>,
    pub limits: Limits,
    /// Route patterns in manifest order, for the start-up banner.
    pub route_list: Vec<(String, String)>,
    pub databases: BTreeMap<String, Pool>,
    /// Resolved application variables (for sidecars that share them).
    pub variables: AppVariables,
}

/// Options for [`App::load`].
pub struct LoadOptions<'a> {
    pub manifest: &'a Manifest,
    pub runtime_config: &'a RuntimeConfig,
    pub limits: Limits,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub cache_dir: Option<PathBuf>,
}

/// Builds the wasmtime engine: async, epoch interruption for deadlines, the pooling
/// allocator so that a fresh instance per request costs microseconds, and an on-disk
/// cache of compiled code so restarts (and test runs) compile each component once.
pub fn build_engine(limits: &Limits, cache_dir: Option<&Path>) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    let slots = (limits.max_concurrent_requests as u32).max(1) + 16;
    pooling.total_component_instances(slots);
    pooling.total_memories(slots * 2);
    pooling.total_tables(slots * 2);
    pooling.max_memory_size(limits.max_memory_bytes);
    // Reset a finished instance's memory by rewriting only the pages it dirtied
    // (PAGEMAP_SCAN, Linux 6.7+) instead of `madvise`: measured, `madvise` plus the
    // page faults of the next instance were a third of the per-request cost, mostly
    // TLB-shootdown IPIs between the worker threads.
    pooling.linear_memory_keep_resident(16 << 20);
    pooling.table_keep_resident(1 << 20);
    pooling.pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    if std::env::var_os("ARCANA_PERFMAP").is_some() {
        // Names JIT-compiled guest functions for `perf` (see README, Benchmarks).
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(dir) = cache_dir {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(
            wasmtime::Cache::new(cache).map_err(anyhow::Error::from)?,
        ));
    }
    Ok(Engine::new(&config)?)
}

impl App {
    /// Loads and checks everything; fails with every problem it can name.
    pub async fn load(opts: LoadOptions<'_>) -> anyhow::Result<App> {
        let manifest = opts.manifest;
        let app_vars = AppVariables::resolve(&manifest.variables, opts.env)?;
        let defaults = AppVariables::defaults(&manifest.variables);
        let component_vars = resolve_component_variables(manifest, &app_vars)?;
        check_labels(manifest, opts.runtime_config)?;

        // Every wasm file must exist before anything else is attempted.
        let missing: Vec<String> = manifest
            .components
            .iter()
            .filter(|(_, c)| !manifest.component_path(c).exists())
            .map(|(id, c)| format!("{id} ({})", manifest.component_path(c).display()))
            .collect();
        if !missing.is_empty() {
            bail!(
                "component wasm not found: {}.\nBuild it first: `arcana build` (or start with `arcana up --build`).",
                missing.join(", ")
            );
        }

        // Databases: only labels some component uses are opened.
        let mut databases = BTreeMap::new();
        for component in manifest.components.values() {
            for label in component.database_labels() {
                if databases.contains_key(label) {
                    continue;
                }
                let config: &DatabaseConfig = &opts.runtime_config.databases[label];
                let pool = Pool::open(config, opts.limits.db_connections)
                    .await
                    .with_context(|| {
                        format!("cannot open database {label:?} ({})", config.describe())
                    })?;
                databases.insert(label.to_string(), pool);
            }
        }

        let engine = build_engine(&opts.limits, opts.cache_dir.as_deref())?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        host::add_to_linker(&mut linker)?;

        // One local LLM engine per application, as Spin has: models load once.
        let llm = Arc::new(crate::embeddings::LocalEmbeddings::new(
            crate::ai_models::models_dir(&opts.runtime_config.state_dir),
        ));
        let mut index = BTreeMap::new();
        let mut components = Vec::new();
        for (id, component) in &manifest.components {
            let path = manifest.component_path(component);
            let compiled = Component::from_file(&engine, &path)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot compile component {id:?} ({})", path.display()))?;
            let instance_pre = linker.instantiate_pre(&compiled).map_err(|e| {
                anyhow::anyhow!(
                    "component {id:?} imports something this runner does not provide: {e}. \
                     The runner provides WASI 0.2, wasi:http outgoing-handler, fermyon:spin/sqlite@2.0.0, \
                     fermyon:spin/variables@2.0.0 and fermyon:spin/llm@2.0.0."
                )
            })?;
            let pre = ProxyPre::new(instance_pre)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id:?} does not export wasi:http/incoming-handler")
                })?;

            let vars = &component_vars[id];
            // As in Spin, templates here name application variables.
            let outbound =
                OutboundPolicy::new(&component.allowed_outbound_hosts, &defaults, &app_vars)
                    .with_context(|| format!("Failed to load component `{id}`"))?;
            if let Some(why) = outbound.unresolved() {
                tracing::error!(component = %id, error = %why, "Error resolving variables when checking request against allowed outbound hosts; every outbound request of this component is denied");
            }

            let granted = component
                .database_labels()
                .map(|l| (l.to_string(), databases[l].clone()))
                .collect();
            let caps = ComponentCapabilities {
                id: id.clone(),
                databases: granted,
                variables: Arc::new(vars.clone()),
                outbound: Arc::new(outbound),
                ai_models: Arc::new(component.ai_models.iter().cloned().collect()),
                llm: llm.clone(),
            };
            index.insert(id.clone(), components.len());
            components.push(LoadedComponent {
                pre,
                caps,
                environment: component.environment.clone().into_iter().collect(),
            });
        }

        let mut routes = Vec::new();
        let mut route_list = Vec::new();
        let mut static_responses = Vec::new();
        for trigger in &manifest.http_triggers {
            let RouteSpec::Pattern(pattern) = &trigger.route else {
                continue; // private: reachable only through internal service chaining
            };
            let (target, name) = match (&trigger.component, &trigger.static_response) {
                (Some(component), _) => (Target::Component(index[component]), component.clone()),
                (None, response) => {
                    static_responses.push(response.clone().unwrap_or_default());
                    (
                        Target::Static(static_responses.len() - 1),
                        "(static response)".to_string(),
                    )
                }
            };
            let parsed = RoutePattern::parse(pattern).with_context(|| {
                format!("Error parsing route {pattern} associated with component {name}")
            })?;
            routes.push((parsed, target));
            route_list.push((pattern.clone(), name));
        }
        let router = Router::new(routes);
        Ok(App {
            name: manifest.application.name.clone(),
            engine,
            router,
            static_responses,
            components,
            limits: opts.limits,
            route_list,
            databases,
            variables: app_vars,
        })
    }
}

/// Every database label a component uses must be configured (`default` always is), with
/// the message `spin up` prints; key-value store labels likewise, except that the runner
/// provides no key-value interface at all (a component importing it is refused later).
fn check_labels(manifest: &Manifest, runtime_config: &RuntimeConfig) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (id, component) in &manifest.components {
        for label in component.database_labels() {
            if !runtime_config.databases.contains_key(label) {
                missing.push(format!("- Component {id} uses database '{label}'"));
            }
        }
        for label in &component.key_value_stores {
            if &**label != "default" {
                bail!(
                    "unknown key_value_stores label {:?} for component {id:?}",
                    &**label
                );
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "failed to configure app: One or more components use SQLite databases which are not defined.\nCheck the spelling, or pass a runtime configuration file that defines these stores.\nSee https://spinframework.dev/dynamic-configuration#sqlite-storage-runtime-configuration\nDetails:\n{}",
            missing.join("\n")
        );
    }
    Ok(())
}
