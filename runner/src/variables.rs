//! Spin variables: application-level declarations resolved from the environment
//! (`SPIN_VARIABLE_<NAME>`, then `.env`) or their defaults, and templates
//! (`"{{ name }} and literal text"`) that expose them to components.
//!
//! Resolved once at start-up, with Spin's rules and messages: a required variable
//! without a value, or a component variable naming an undeclared one, stops the
//! runner before it listens.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::manifest::{Manifest, VariableDecl};

/// Resolved application variables.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
    /// Declared names (with or without a value), to tell "unknown" from "unset".
    declared: Vec<String>,
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
            let key = env_key(name);
            match env(&key).or_else(|| decl.default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None if decl.required => missing.push(name.clone()),
                None => {}
            }
        }
        if !missing.is_empty() {
            let keys: Vec<String> = missing.iter().map(|k| format!("Key({k:?})")).collect();
            let hint: Vec<String> = missing.iter().map(|k| env_key(k)).collect();
            bail!(
                "provider error: no provider resolved required variable(s): [{}] (set {})",
                keys.join(", "),
                hint.join(", ")
            );
        }
        Ok(AppVariables {
            values,
            declared: decls.keys().cloned().collect(),
        })
    }

    /// Only the declared defaults: what Spin checks templates against while loading.
    pub fn defaults(decls: &BTreeMap<String, VariableDecl>) -> AppVariables {
        AppVariables {
            values: decls
                .iter()
                .filter_map(|(k, d)| Some((k.clone(), d.default.clone()?)))
                .collect(),
            declared: decls.keys().cloned().collect(),
        }
    }

    /// A resolved value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Expands a template against these variables.
    pub fn expand(&self, template: &Template) -> anyhow::Result<String> {
        template.render(|name| {
            if !self.declared.iter().any(|d| d == name) {
                bail!("invalid variable template: unknown variable {name:?}");
            }
            match self.get(name) {
                Some(v) => Ok(v.to_string()),
                None => bail!("no provider resolved required variable {name:?}"),
            }
        })
    }
}

/// The environment variable that sets application variable `name`.
pub fn env_key(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A parsed `{{ name }}` template. `{{` opens an expression that the next `}}`
/// closes; everything else, a lone `}}` included, is literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template; an unclosed `{{` is an error.
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(0) => {
                    let Some(end) = rest[2..].find("}}") else {
                        bail!("invalid variable template: unmatched '{{{{' in template");
                    };
                    parts.push(Part::Variable(rest[2..2 + end].trim().to_string()));
                    rest = &rest[2 + end + 2..];
                }
                Some(start) => {
                    parts.push(Part::Literal(rest[..start].to_string()));
                    rest = &rest[start..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        Ok(Template { parts })
    }

    /// Whether the template has no `{{ }}` expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Renders with `lookup` giving each variable's value (or the error to report).
    pub fn render(
        &self,
        lookup: impl Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Variable(name) => out.push_str(&lookup(name)?),
            }
        }
        Ok(out)
    }
}

/// Resolves every component's `[component.<id>.variables]` against the application's.
/// Returns component id → variable name → value.
pub fn resolve_component_variables(
    manifest: &Manifest,
    app: &AppVariables,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut all = BTreeMap::new();
    for (id, component) in &manifest.components {
        let mut resolved = BTreeMap::new();
        for (name, text) in &component.variables {
            let value = Template::parse(text).and_then(|t| app.expand(&t));
            match value {
                Ok(value) => {
                    resolved.insert(name.to_string(), value);
                }
                Err(e) => bail!("failed to configure app: component {id:?} variable {name}: {e}"),
            }
        }
        all.insert(id.clone(), resolved);
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
        let err = err.to_string();
        assert!(
            err.contains("no provider resolved required variable(s): [Key(\"api_key\")]"),
            "{err}"
        );
        assert!(err.contains("SPIN_VARIABLE_API_KEY"), "{err}");
    }

    #[test]
    fn templates_expand_and_unknown_names_fail_with_spins_words() {
        let vars = AppVariables::resolve(&decls(), |_| Some("x".into())).unwrap();
        let t = Template::parse("https://{{ greeting }}:443").unwrap();
        assert_eq!(vars.expand(&t).unwrap(), "https://x:443");
        assert_eq!(
            vars.expand(&Template::parse("plain }} text").unwrap())
                .unwrap(),
            "plain }} text"
        );
        let err = vars
            .expand(&Template::parse("{{ nope }}").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid variable template: unknown variable \"nope\""
        );
        let err = Template::parse("{{ greeting").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid variable template: unmatched '{{' in template"
        );
        assert!(Template::parse("a {{x}} b").unwrap().parts.len() == 3);
        assert!(Template::parse("literal").unwrap().is_literal());
    }

    #[test]
    fn defaults_only_know_defaults() {
        let d = AppVariables::defaults(&decls());
        assert_eq!(d.get("greeting"), Some("hi"));
        assert!(
            d.expand(&Template::parse("{{ api_key }}").unwrap())
                .is_err()
        );
    }
}
