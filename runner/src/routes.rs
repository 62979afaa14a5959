//! Spin's HTTP route syntax and precedence.
//!
//! A route is a list of segments: literal (`/api`), single-segment parameter (`/:id`)
//! and an optional trailing wildcard (`/...`), which matches zero or more segments.
//! When several routes match, the most specific wins: compared segment by segment,
//! a literal beats a parameter, a parameter beats the wildcard, and ending the route
//! beats a wildcard that would also match nothing. Of two identical routes the last wins.

use std::collections::BTreeMap;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route pattern such as `/api/users/:id/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// What a successful match captured, to be passed to the component as Spin's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The route as written in `spin.toml` (`spin-matched-route`, `spin-raw-component-route`).
    pub raw_route: String,
    /// The route without its trailing `/...` (`spin-component-route`).
    pub component_route: String,
    /// The part of the path covered by the wildcard, with its leading `/` (`spin-path-info`).
    pub path_info: String,
    /// Named parameters (`spin-path-match-<name>`).
    pub params: BTreeMap<String, String>,
}

impl RoutePattern {
    /// Parses a route as written in `spin.toml`, normalized as Spin does: a missing
    /// leading `/` is added, one trailing `/` is dropped, and a final `/...` or `/*`
    /// is the wildcard.
    pub fn parse(raw: &str) -> anyhow::Result<RoutePattern> {
        let mut parts: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
        let wildcard = matches!(parts.last(), Some(&"...") | Some(&"*"));
        if wildcard {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        for part in parts {
            if part.starts_with('*') {
                if part == "*" {
                    anyhow::bail!("a wildcard may only end a route");
                }
                anyhow::bail!(
                    "since there can only be one wildcard, it doesn't need a name. replace `{part}` with `*`"
                );
            }
            segments.push(match part.strip_prefix(':') {
                Some("") => anyhow::bail!("params must be named"),
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(part.to_string()),
            });
        }
        Ok(RoutePattern {
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    /// The route as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Matches a request path (without query string).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.split('/').skip(1).filter(|s| !s.is_empty()).collect();
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => {
                    params.insert(name.clone(), (*part).to_string());
                }
            }
        }
        let rest = &parts[self.segments.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            let mut info = format!("/{}", rest.join("/"));
            if path.ends_with('/') {
                info.push('/');
            }
            info
        };
        Some(RouteMatch {
            raw_route: self.raw.clone(),
            component_route: self
                .raw
                .strip_suffix("/...")
                .or_else(|| self.raw.strip_suffix("/*"))
                .unwrap_or(&self.raw)
                .to_string(),
            path_info,
            params,
        })
    }

    /// Specificity key: larger is more specific (see module docs).
    fn rank(&self) -> Vec<u8> {
        let mut key: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 3,
                Segment::Param(_) => 2,
            })
            .collect();
        key.push(if self.wildcard { 0 } else { 1 });
        key
    }
}

/// All routes of an application, each pointing at a value (a component index).
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T: Clone> Router<T> {
    /// Builds the router. Two triggers with the same route text are not an error in
    /// Spin: the last one wins and the others are reported, as here.
    pub fn new(routes: Vec<(RoutePattern, T)>) -> Router<T> {
        let mut kept: Vec<(RoutePattern, T)> = Vec::with_capacity(routes.len());
        for (pattern, value) in routes {
            if let Some(i) = kept.iter().position(|(p, _)| p.raw == pattern.raw) {
                tracing::error!(
                    route = %pattern.raw,
                    "The following component routes are duplicates and will never be used: {} (duplicate of a later trigger)",
                    pattern.raw
                );
                kept.remove(i);
            }
            if pattern.raw.starts_with("/.well-known/spin/") {
                tracing::error!(route = %pattern.raw, "Routes under /.well-known/spin/ are handled by the Spin runtime and will never be reached");
            }
            kept.push((pattern, value));
        }
        Router { routes: kept }
    }

    /// The most specific route matching `path`, if any.
    pub fn route(&self, path: &str) -> Option<(RouteMatch, T)> {
        self.routes
            .iter()
            .filter_map(|(pattern, value)| {
                pattern.matches(path).map(|m| (pattern.rank(), m, value))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, m, value)| (m, value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router<usize> {
        Router::new(
            routes
                .iter()
                .enumerate()
                .map(|(i, r)| (RoutePattern::parse(r).unwrap(), i))
                .collect(),
        )
    }

    fn winner(r: &Router<usize>, path: &str) -> Option<usize> {
        r.route(path).map(|(_, i)| i)
    }

    #[test]
    fn exact_route_matches_only_itself() {
        let r = router(&["/cart"]);
        assert_eq!(winner(&r, "/cart"), Some(0));
        assert_eq!(winner(&r, "/cart/checkout"), None);
        assert_eq!(winner(&r, "/car"), None);
    }

    #[test]
    fn wildcard_matches_prefix_and_itself() {
        let r = router(&["/api/..."]);
        assert_eq!(winner(&r, "/api"), Some(0));
        assert_eq!(winner(&r, "/api/a/b"), Some(0));
        assert_eq!(winner(&r, "/apix"), None);
        let m = r.route("/api/a/b").unwrap().0;
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(m.component_route, "/api");
    }

    #[test]
    fn exact_beats_wildcard_and_longer_wildcard_beats_shorter() {
        let r = router(&["/...", "/api/...", "/api/chat", "/api/chat/..."]);
        assert_eq!(winner(&r, "/api/chat"), Some(2));
        assert_eq!(winner(&r, "/api/chat/history/1"), Some(3));
        assert_eq!(winner(&r, "/api/other"), Some(1));
        assert_eq!(winner(&r, "/index.html"), Some(0));
    }

    #[test]
    fn literal_beats_parameter_and_parameters_are_captured() {
        let r = router(&["/users/:id", "/users/me"]);
        assert_eq!(winner(&r, "/users/me"), Some(1));
        let (m, i) = r.route("/users/42").unwrap();
        assert_eq!(i, 0);
        assert_eq!(m.params["id"], "42");
    }

    #[test]
    fn duplicate_routes_the_last_one_wins() {
        let r = router(&["/a/...", "/a/...", "/b"]);
        assert_eq!(winner(&r, "/a/x"), Some(1));
        assert_eq!(winner(&r, "/b"), Some(2));
    }

    #[test]
    fn routes_are_normalized_as_spin_does() {
        let r = router(&["api/...", "/exact/", "/star/*"]);
        assert_eq!(winner(&r, "/api/x"), Some(0));
        assert_eq!(winner(&r, "/exact"), Some(1));
        assert_eq!(winner(&r, "/star/a/b"), Some(2));
    }

    #[test]
    fn malformed_routes_are_refused_with_spins_words() {
        let err = |r: &str| RoutePattern::parse(r).unwrap_err().to_string();
        assert_eq!(err("/a/:"), "params must be named");
        assert!(err("/a/*rest").contains("replace `*rest` with `*`"));
        assert!(RoutePattern::parse("/a/*/b").is_err());
    }
}
