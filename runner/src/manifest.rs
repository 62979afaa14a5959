//! `spin.toml` (manifest version 2): the single source of truth for components,
//! routes, variables, databases and outbound hosts.
//!
//! Only the parts Spin's HTTP trigger uses are modelled; unknown keys are ignored as
//! Spin ignores them in tables it does not own. Anything the runner cannot honour
//! (a remote `source`, a non-HTTP trigger) is an error at start-up, never a silent skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

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
#[serde(rename_all = "snake_case")]
struct RawManifest {
    spin_manifest_version: u32,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
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

/// One `[[trigger.http]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    pub route: RouteSpec,
    pub component: String,
    #[serde(default)]
    pub id: Option<String>,
}

/// A trigger route: a pattern, or `{ private = true }` (reachable only from inside the app).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteSpec {
    Pattern(String),
    Private { private: bool },
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Component {
    pub source: ComponentSource,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<BuildConfig>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Where a component's wasm comes from. Only local files are supported by the runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentSource {
    Local(String),
    Remote(toml::Value),
}

/// `[component.<id>.build]`, run by `arcana build`.
#[derive(Debug, Clone, Deserialize)]
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
        Self::parse(&text, dir).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; `dir` is where relative paths point.
    pub fn parse(text: &str, dir: PathBuf) -> anyhow::Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version {} is not supported; use 2",
                raw.spin_manifest_version
            );
        }
        if let Some(kind) = raw.trigger.other.keys().next() {
            bail!("trigger type {kind:?} is not supported by this runner (only http)");
        }
        for name in raw.variables.keys() {
            check_variable_name(name)?;
        }
        for (id, decl) in &raw.variables {
            if decl.required && decl.default.is_some() {
                bail!("variable {id:?} cannot be both required and have a default");
            }
        }
        for trigger in &raw.trigger.http {
            if !raw.component.contains_key(&trigger.component) {
                bail!(
                    "trigger route {:?} names component {:?}, which is not defined",
                    trigger.route,
                    trigger.component
                );
            }
        }
        for (id, component) in &raw.component {
            if let ComponentSource::Remote(_) = component.source {
                bail!("component {id:?}: only a local file `source` is supported by this runner");
            }
            for name in component.variables.keys() {
                check_variable_name(name).with_context(|| format!("component {id:?} variable"))?;
            }
        }
        Ok(Manifest {
            dir,
            application: raw.application,
            variables: raw.variables,
            http_triggers: raw.trigger.http,
            components: raw.component,
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

/// Spin variable names: lower-case letters, digits and underscores, starting with a letter.
pub fn check_variable_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if ok {
        Ok(())
    } else {
        bail!(
            "invalid variable name {name:?}: use lower-case letters, digits and single underscores"
        )
    }
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

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(SAMPLE, PathBuf::from("/app")).unwrap();
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
        let text = SAMPLE.replace(
            "component = \"hello\"\n[[trigger.http]]",
            "component = \"nope\"\n[[trigger.http]]",
        );
        let err = Manifest::parse(&text, PathBuf::from(".")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        assert!(check_variable_name("jwt_secret").is_ok());
        assert!(check_variable_name("JWT").is_err());
        assert!(check_variable_name("1abc").is_err());
        assert!(check_variable_name("a__b").is_err());
    }
}
