//! `spin.toml` (manifest version 2): the single source of truth for components,
//! routes, variables, databases and outbound hosts.
//!
//! Parsed as Spin parses it: the same tables refuse unknown keys, identifiers follow
//! Spin's word rules (see [`crate::ids`]) and are checked while the TOML is read, so a
//! bad name is reported with its line and with Spin's sentence. What the runner cannot
//! honour (a registry `source`, a non-HTTP trigger, the WAGI executor, mounted `files`)
//! is refused at start-up with a reason, never skipped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::ids::{ComponentId, Label, VariableName};

/// The parsed manifest plus the folder it came from (relative paths resolve against it).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub dir: PathBuf,
    pub application: Application,
    pub variables: BTreeMap<String, VariableDecl>,
    pub http_triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(alias = "spin_version")]
    #[allow(dead_code)] // checked before this struct is parsed
    spin_manifest_version: toml::Value,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<VariableName, VariableDecl>,
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<ComponentId, Component>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub targets: Vec<toml::Value>,
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// An entry of the application-level `[variables]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]`, after the checks `spin up` applies to its table.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub route: RouteSpec,
    /// The component serving it, or `None` for a `static_response` trigger.
    pub component: Option<String>,
    pub static_response: Option<StaticResponse>,
}

/// The table of a `[[trigger.http]]` as Spin's HTTP trigger reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    component: Option<toml::Value>,
    #[serde(default)]
    components: Option<toml::Value>,
    #[serde(default)]
    dependencies: Option<toml::Value>,
    route: RouteSpec,
    #[serde(default)]
    executor: Option<Executor>,
    #[serde(default)]
    static_response: Option<StaticResponse>,
}

/// `executor = { type = "http" }` (the default) or WAGI.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Executor {
    #[serde(alias = "spin")]
    Http,
    Wagi {
        #[serde(default)]
        #[allow(dead_code)]
        argv: Option<String>,
        #[serde(default)]
        #[allow(dead_code)]
        entrypoint: Option<String>,
    },
}

/// A trigger answering with a fixed response, no component involved.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// A trigger route: a pattern, or `{ private = true }` (reachable only from inside the app).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteSpec {
    Pattern(String),
    Private(PrivateRoute),
}

/// `{ private = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateRoute {
    pub private: bool,
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub source: ComponentSource,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<VariableName, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<toml::Value>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<Label>,
    #[serde(default)]
    pub sqlite_databases: Vec<Label>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub targets: Vec<toml::Value>,
    #[serde(default)]
    pub build: Option<BuildConfig>,
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
    #[serde(default)]
    pub dependencies: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub profile: BTreeMap<String, toml::Value>,
}

/// Where a component's wasm comes from. Only local files are supported by the runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentSource {
    Local(String),
    Remote(RemoteSource),
}

/// `{ url, digest }` or `{ registry, package, version }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum RemoteSource {
    Url {
        url: String,
        digest: String,
    },
    Registry {
        #[serde(default)]
        registry: Option<String>,
        package: String,
        version: String,
    },
}

/// `[component.<id>.build]`, run by `arcana build`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    pub command: BuildCommand,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// A build command: one shell line or several run in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuildCommand {
    One(String),
    Many(Vec<String>),
}

impl BuildCommand {
    pub fn lines(&self) -> Vec<&str> {
        match self {
            BuildCommand::One(s) => vec![s.as_str()],
            BuildCommand::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl Component {
    /// The database labels this component may open.
    pub fn database_labels(&self) -> impl Iterator<Item = &str> {
        self.sqlite_databases.iter().map(|l| &**l)
    }
}

impl Manifest {
    /// Reads and validates `spin.toml`.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        // Absolute, so that the cache, databases and build folders do not depend on
        // where the runner was started from.
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self::parse(&text, dir)
            .with_context(|| format!("Failed to load Spin app from {:?}", path.display()))
    }

    /// Parses manifest text; `dir` is where relative paths point.
    pub fn parse(text: &str, dir: PathBuf) -> anyhow::Result<Manifest> {
        check_version(text)?;
        let raw: RawManifest = toml::from_str(text)?;
        let mut variables = BTreeMap::new();
        for (name, decl) in raw.variables {
            if decl.required == decl.default.is_some() {
                bail!("must be `required` OR have a `default`");
            }
            variables.insert(name.to_string(), decl);
        }
        let components: BTreeMap<String, Component> = raw
            .component
            .into_iter()
            .map(|(id, c)| (id.to_string(), c))
            .collect();
        for (id, component) in &components {
            check_component(id, component)
                .with_context(|| format!("Failed to load component `{id}`"))?;
        }
        let mut http_triggers = Vec::new();
        for (kind, triggers) in raw.trigger {
            if kind != "http" {
                bail!("trigger type {kind:?} is not supported by this runner (only http)");
            }
            for table in triggers {
                http_triggers.push(http_trigger(table, &components)?);
            }
        }
        Ok(Manifest {
            dir,
            application: raw.application,
            variables,
            http_triggers,
            components,
        })
    }

    /// Absolute (or manifest-relative) path of a component's wasm file.
    pub fn component_path(&self, component: &Component) -> PathBuf {
        match &component.source {
            ComponentSource::Local(p) => self.dir.join(p),
            ComponentSource::Remote(_) => unreachable!("rejected in parse"),
        }
    }
}

/// Spin reads the version first, with any type: the integer 2 is this format, the
/// string "1" the old one, anything else is refused.
fn check_version(text: &str) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(alias = "spin_version")]
        spin_manifest_version: toml::Value,
    }
    let probe: Probe = toml::from_str(text)?;
    match probe.spin_manifest_version {
        toml::Value::Integer(2) => Ok(()),
        toml::Value::String(v) if v == "1" => {
            bail!(
                "manifest version 1 is not supported by this runner; use `spin_manifest_version = 2`"
            )
        }
        other => bail!("invalid manifest version: {other}"),
    }
}

/// What a component may ask for, as far as the runner can give it.
fn check_component(id: &str, component: &Component) -> anyhow::Result<()> {
    if let ComponentSource::Remote(source) = &component.source {
        if let RemoteSource::Url { digest, url } = source
            && !digest.starts_with("sha256:")
        {
            return Err(anyhow::anyhow!(
                "invalid `digest` {digest:?}; must start with 'sha256:'"
            ))
            .with_context(|| format!("Failed to load Wasm source {url:?} with digest {digest:?}"));
        }
        bail!("only a local file `source` is supported by this runner (component {id:?})");
    }
    if !component.files.is_empty() {
        bail!("`files` mounts are not supported by this runner; embed the assets in the component");
    }
    if !component.dependencies.is_empty() {
        bail!("component `dependencies` are not supported by this runner");
    }
    if !component.allowed_http_hosts.is_empty() {
        bail!(
            "`allowed_http_hosts` is deprecated and not supported by this runner; use `allowed_outbound_hosts`"
        );
    }
    Ok(())
}

/// Reads one `[[trigger.http]]` table as Spin's HTTP trigger does at start-up.
fn http_trigger(
    table: toml::Table,
    components: &BTreeMap<String, Component>,
) -> anyhow::Result<HttpTrigger> {
    let raw: RawHttpTrigger = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("json error: {}", e.message()))?;
    let name = raw.id.clone().unwrap_or_else(|| "http-trigger".into());
    if raw.components.is_some() || raw.dependencies.is_some() {
        bail!("trigger {name}: `components` and `dependencies` are not supported by this runner");
    }
    let component = match raw.component {
        Some(toml::Value::String(id)) => {
            crate::ids::check_component_id(&id).map_err(anyhow::Error::msg)?;
            Some(id)
        }
        Some(_) => bail!("trigger {name}: inline components are not supported by this runner"),
        None => None,
    };
    match (&component, &raw.static_response) {
        (None, None) => {
            bail!("Triggers must specify either component or static_response - {name} has neither")
        }
        (Some(_), Some(_)) => {
            bail!("Triggers must specify either component or static_response - {name} has both")
        }
        _ => {}
    }
    if let Some(id) = &component
        && !components.contains_key(id)
    {
        bail!("no such component {id:?}");
    }
    if let Some(Executor::Wagi { .. }) = raw.executor {
        bail!("the WAGI executor is not supported by this runner");
    }
    if let RouteSpec::Private(PrivateRoute { private: false }) = raw.route {
        bail!(
            "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
            component.as_deref().unwrap_or(&name)
        );
    }
    Ok(HttpTrigger {
        route: raw.route,
        component,
        static_response: raw.static_response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
version = "1.0.0"
[variables]
greeting = { default = "hi" }
secret_key = { required = true, secret = true }
[[trigger.http]]
route = "/hello/..."
component = "hello"
[[trigger.http]]
route = { private = true }
component = "hello"
[component.hello]
source = "target/hello.wasm"
allowed_outbound_hosts = ["https://example.com"]
sqlite_databases = ["default"]
[component.hello.variables]
message = "{{ greeting }} there"
[component.hello.build]
command = "cargo build"
workdir = "hello"
"#;

    fn parse(text: &str) -> anyhow::Result<Manifest> {
        Manifest::parse(text, PathBuf::from("/app"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn parses_a_full_manifest() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.application.name, "demo");
        assert_eq!(m.http_triggers.len(), 2);
        assert!(m.variables["secret_key"].required);
        let hello = &m.components["hello"];
        assert_eq!(
            m.component_path(hello),
            PathBuf::from("/app/target/hello.wasm")
        );
        assert_eq!(hello.variables["message"], "{{ greeting }} there");
        assert_eq!(
            hello.build.as_ref().unwrap().command.lines(),
            vec!["cargo build"]
        );
    }

    #[test]
    fn unknown_component_in_trigger_is_an_error() {
        let text = SAMPLE.replacen("component = \"hello\"", "component = \"nope\"", 1);
        assert!(error(&text).contains("no such component \"nope\""));
    }

    #[test]
    fn identifiers_are_checked_with_spins_words_and_the_line() {
        let text = SAMPLE.replace("greeting = {", "greeting_1 = {");
        let err = error(&text);
        assert!(err.contains("line 7"), "{err}");
        assert!(
            err.contains("'_'-separated words must start with an ASCII letter; got '1'"),
            "{err}"
        );
        let err = error(&SAMPLE.replace("[component.hello", "[component.hello_world"));
        assert!(
            err.contains("words must be separated with '-', not '_'"),
            "{err}"
        );
        let err = error(&SAMPLE.replace("[\"default\"]", "[\"camelCase\"]"));
        assert!(err.contains("expected kebab-case or snake_case"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_where_spin_refuses_them() {
        let err = error(&SAMPLE.replace("version = \"1.0.0\"", "colour = \"red\""));
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = error(&SAMPLE.replace("sqlite_databases", "sqlite_database"));
        assert!(err.contains("unknown field `sqlite_database`"), "{err}");
        let err = error(&SAMPLE.replace(
            "route = \"/hello/...\"",
            "route = \"/hello/...\"\nmethod = \"GET\"",
        ));
        assert!(err.contains("json error: unknown field `method`"), "{err}");
    }

    #[test]
    fn versions_and_variable_declarations() {
        assert!(error(&SAMPLE.replace("= 2", "= 3")).contains("invalid manifest version: 3"));
        assert!(error("").contains("missing field `spin_manifest_version`"));
        let err = error(&SAMPLE.replace(
            "greeting = { default = \"hi\" }",
            "greeting = { default = \"hi\", required = true }",
        ));
        assert!(
            err.contains("must be `required` OR have a `default`"),
            "{err}"
        );
        let err = error(&SAMPLE.replace("greeting = { default = \"hi\" }", "greeting = {}"));
        assert!(
            err.contains("must be `required` OR have a `default`"),
            "{err}"
        );
    }

    #[test]
    fn static_responses_need_no_component() {
        let text = format!(
            "{SAMPLE}\n[[trigger.http]]\nroute = \"/teapot\"\nstatic_response = {{ status_code = 418, body = \"short and stout\" }}\n"
        );
        let m = parse(&text).unwrap();
        let t = m
            .http_triggers
            .iter()
            .find(|t| t.component.is_none())
            .unwrap();
        assert_eq!(t.static_response.as_ref().unwrap().status_code, Some(418));
    }
}
