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
use crate::manifest::{Manifest, RouteSpec};
use crate::outbound::OutboundPolicy;
use crate::routes::{RoutePattern, Router};
use crate::variables::{AppVariables, expand_template, resolve_component_variables};
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(300),
            max_memory_bytes: 256 << 20,
            max_concurrent_requests: 128,
            db_connections: 8,
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

/// A loaded application, shared by all connections.
pub struct App {
    pub name: String,
    pub engine: Engine,
    pub router: Router<usize>,
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
        let component_vars = resolve_component_variables(manifest, &app_vars)?;

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
        for (id, component) in &manifest.components {
            for label in &component.sqlite_databases {
                if databases.contains_key(label) {
                    continue;
                }
                let config: &DatabaseConfig = opts.runtime_config.databases.get(label).with_context(|| {
                    format!("component {id:?} uses database {label:?}, which has no [sqlite_database.{label}] in the runtime config")
                })?;
                let pool = Pool::open(config, opts.limits.db_connections)
                    .await
                    .with_context(|| {
                        format!("cannot open database {label:?} ({})", config.describe())
                    })?;
                databases.insert(label.clone(), pool);
            }
        }

        let engine = build_engine(&opts.limits, opts.cache_dir.as_deref())?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        host::add_to_linker(&mut linker)?;

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
                     The runner provides WASI 0.2, wasi:http outgoing-handler, fermyon:spin/sqlite@2.0.0 \
                     and fermyon:spin/variables@2.0.0."
                )
            })?;
            let pre = ProxyPre::new(instance_pre)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id:?} does not export wasi:http/incoming-handler")
                })?;

            let vars = &component_vars[id];
            let lookup = |n: &str| {
                vars.get(n)
                    .cloned()
                    .or_else(|| app_vars.get(n).map(str::to_string))
            };
            let hosts = component
                .allowed_outbound_hosts
                .iter()
                .map(|h| expand_template(h, lookup))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("component {id:?} allowed_outbound_hosts"))?;
            let outbound =
                OutboundPolicy::new(&hosts).with_context(|| format!("component {id:?}"))?;

            let granted = component
                .sqlite_databases
                .iter()
                .map(|l| (l.clone(), databases[l].clone()))
                .collect();
            let caps = ComponentCapabilities {
                id: id.clone(),
                databases: granted,
                known_databases: opts.runtime_config.databases.keys().cloned().collect(),
                variables: Arc::new(vars.clone()),
                outbound: Arc::new(outbound),
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
        for trigger in &manifest.http_triggers {
            let RouteSpec::Pattern(pattern) = &trigger.route else {
                continue; // private: reachable only through internal service chaining
            };
            routes.push((RoutePattern::parse(pattern)?, index[&trigger.component]));
            route_list.push((pattern.clone(), trigger.component.clone()));
        }
        let router = Router::new(routes)?;
        Ok(App {
            name: manifest.application.name.clone(),
            engine,
            router,
            components,
            limits: opts.limits,
            route_list,
            databases,
            variables: app_vars,
        })
    }
}
