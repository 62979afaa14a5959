//! Spin variables: application-level declarations resolved from the environment
//! (`SPIN_VARIABLE_<NAME>`) or their defaults, and component-level templates
//! (`"{{ name }} and literal text"`) that expose them to one component.
//!
//! Everything is resolved once at start-up, so a missing required variable or a
//! template naming an undeclared variable stops the runner before it listens, with
//! every problem listed in one message.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::manifest::{Manifest, VariableDecl};

/// Resolved application variables.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
}

impl AppVariables {
    /// Resolves every declared variable; `env` looks up `SPIN_VARIABLE_<NAME>`.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<AppVariables> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in decls {
            let key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            match env(&key).or_else(|| decl.default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None if decl.required => missing.push(format!("{name} (set {key})")),
                None => {}
            }
        }
        if !missing.is_empty() {
            bail!("required variables have no value: {}", missing.join(", "));
        }
        Ok(AppVariables { values })
    }

    /// A resolved value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Expands `{{ name }}` references in `template` using `lookup`.
pub fn expand_template(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unclosed '{{{{' in {template:?}");
        };
        let name = after[..end].trim();
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => bail!("{template:?} refers to variable {name:?}, which has no value"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves every component's `[component.<id>.variables]` against the application's.
/// Returns component id → variable name → value.
pub fn resolve_component_variables(
    manifest: &Manifest,
    app: &AppVariables,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut all = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, component) in &manifest.components {
        let mut resolved = BTreeMap::new();
        for (name, template) in &component.variables {
            match expand_template(template, |n| app.get(n).map(str::to_string)) {
                Ok(value) => {
                    resolved.insert(name.clone(), value);
                }
                Err(e) => problems.push(format!("component {id:?} variable {name:?}: {e}")),
            }
        }
        all.insert(id.clone(), resolved);
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut d = BTreeMap::new();
        d.insert(
            "greeting".into(),
            VariableDecl {
                default: Some("hi".into()),
                ..Default::default()
            },
        );
        d.insert(
            "api_key".into(),
            VariableDecl {
                required: true,
                secret: true,
                ..Default::default()
            },
        );
        d
    }

    #[test]
    fn env_overrides_default_and_required_is_enforced() {
        let env = |k: &str| match k {
            "SPIN_VARIABLE_API_KEY" => Some("k".to_string()),
            "SPIN_VARIABLE_GREETING" => Some("hello".to_string()),
            _ => None,
        };
        let vars = AppVariables::resolve(&decls(), env).unwrap();
        assert_eq!(vars.get("greeting"), Some("hello"));
        assert_eq!(vars.get("api_key"), Some("k"));

        let err = AppVariables::resolve(&decls(), |_| None).unwrap_err();
        assert!(err.to_string().contains("SPIN_VARIABLE_API_KEY"), "{err}");
    }

    #[test]
    fn templates_expand_and_unknown_names_fail() {
        let lookup = |n: &str| (n == "host").then(|| "example.com".to_string());
        assert_eq!(
            expand_template("https://{{ host }}:443", lookup).unwrap(),
            "https://example.com:443"
        );
        assert_eq!(expand_template("plain", lookup).unwrap(), "plain");
        assert!(expand_template("{{ nope }}", lookup).is_err());
        assert!(expand_template("{{ host", lookup).is_err());
    }
}
