//! `allowed_outbound_hosts`: which URLs a component may call, denied by default.
//!
//! Entries follow Spin's grammar: `scheme://host[:port]`. The scheme is a word of
//! letters or `*`; the host is a name, an IP address or CIDR range, `*`, `*.domain`
//! (any subdomain) or `self`; the port is a number, `*` or an end-exclusive range
//! `8000..8010`, and may be left out for schemes with a well-known port. Entries with
//! `{{ variable }}` templates are checked against the declared defaults while loading
//! (as Spin does) and resolved against the real values when the app starts; one that
//! resolves to nothing (an empty variable) allows nothing, so operators can leave a
//! slot empty. Anything else Spin refuses is refused here with Spin's words.

use std::net::IpAddr;

use anyhow::{Context, bail};
use ip_network::IpNetwork;
use url::Host;

use crate::variables::{AppVariables, Template};

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` is `*`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored with its leading dot.
    AnySubdomain(String),
    /// `self`: relative requests (service chaining); never matches an absolute URL.
    ToSelf,
    Literal(Host),
    Cidr(IpNetwork),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    One(u16),
    /// Start inclusive, end exclusive, as Spin reads `a..b`.
    Range(u16, u16),
}

/// The port a scheme uses when a URL or an entry names none.
fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        "http" => 80,
        "https" => 443,
        _ => return None,
    })
}

const LEARN_MORE: &str = "Learn more: https://spinframework.dev/v3/http-outbound#granting-http-permissions-to-components";

impl AllowedHost {
    /// Parses one entry (already template-expanded).
    pub fn parse(entry: &str) -> anyhow::Result<AllowedHost> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            if matches!(url, "*" | ":" | "" | "?") {
                bail!(
                    "{url:?} is not an allowed outbound host format.\nHosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each.\nIf you intended to allow all outbound networking, you can use '*://*:*' - this will obviate all network sandboxing.\n{LEARN_MORE}"
                );
            }
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')\n{LEARN_MORE}");
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            // `[::1]` is a whole host, not a host and a port.
            Some(_) if parse_host(rest).is_ok() => (rest, ""),
            Some((h, tail)) => match tail.split_once('/') {
                Some((_, path)) if !path.is_empty() => {
                    bail!("{url:?} has a path but is not allowed to")
                }
                Some((port, _)) => (h, port),
                None => (h, tail),
            },
        };
        let port = parse_port(port, scheme)
            .with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = parse_scheme(scheme)
            .with_context(|| format!("Invalid allowed host scheme {scheme:?}"))?;
        let host = parse_host(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(AllowedHost { scheme, host, port })
    }

    /// Whether a request to `scheme://host[:port]` is allowed by this entry.
    fn allows(&self, scheme: &str, host: &Host, port: Option<u16>) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host_ok = match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::AnySubdomain(suffix), Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (HostPattern::Literal(l), h) => l == h,
            (HostPattern::Cidr(net), Host::Ipv4(ip)) => net.contains(IpAddr::V4(*ip)),
            (HostPattern::Cidr(net), Host::Ipv6(ip)) => net.contains(IpAddr::V6(*ip)),
            _ => false,
        };
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return false;
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::One(p) => p == port,
            PortPattern::Range(a, b) => (a..b).contains(&port),
        };
        host_ok && port_ok
    }
}

fn parse_scheme(scheme: &str) -> anyhow::Result<Option<String>> {
    if scheme == "*" {
        return Ok(None);
    }
    if scheme.starts_with('{') {
        bail!("scheme lists are not supported");
    }
    if !scheme.chars().all(char::is_alphabetic) {
        bail!("only alphabetic characters are allowed");
    }
    Ok(Some(scheme.to_string()))
}

fn parse_port(port: &str, scheme: &str) -> anyhow::Result<PortPattern> {
    if port.is_empty() {
        return well_known_port(scheme).map(PortPattern::One).with_context(|| {
            format!(
                "no port was provided and the scheme {scheme:?} does not have a known default port number"
            )
        });
    }
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    if port.starts_with('{') {
        bail!("port lists are not yet supported");
    }
    if let Some((a, b)) = port.split_once("..") {
        let n = |s: &str| {
            s.parse::<u16>()
                .with_context(|| format!("port range {port:?} contains non-number"))
        };
        return Ok(PortPattern::Range(n(a)?, n(b)?));
    }
    port.parse()
        .map(PortPattern::One)
        .with_context(|| format!("port {port:?} is not a number"))
}

fn parse_host(host: &str) -> anyhow::Result<HostPattern> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostPattern::ToSelf);
    }
    if host.starts_with('{') {
        bail!("host lists are not yet supported");
    }
    if let Ok(net) = IpNetwork::from_str_truncate(host) {
        return Ok(HostPattern::Cidr(net));
    }
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.contains('/') {
        bail!("must not include a path");
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            bail!("wildcards are allowed only as prefixes");
        }
        let parsed =
            Host::parse(domain).with_context(|| format!("invalid wildcard host \"*.{domain}\""))?;
        let Host::Domain(domain) = parsed else {
            bail!("wildcard suffix must be a domain");
        };
        return Ok(HostPattern::AnySubdomain(format!(".{domain}")));
    }
    if host.contains('*') {
        bail!("wildcards are allowed only as subdomains");
    }
    Ok(HostPattern::Literal(Host::parse(host)?))
}

/// The allow list of one component, as the app will run with it.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
    /// Why the list could not be resolved (then nothing is allowed and each denial says so).
    unresolved: Option<String>,
}

impl OutboundPolicy {
    /// Builds the policy from manifest entries. Load errors (a malformed literal, a
    /// template error, a default that yields a malformed host) are returned; a template
    /// that cannot be resolved with the real values denies everything, as in Spin.
    pub fn new(
        entries: &[String],
        defaults: &AppVariables,
        actual: &AppVariables,
    ) -> anyhow::Result<OutboundPolicy> {
        let context = "`allowed_outbound_hosts` is malformed";
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
            );
        }
        let mut templates = Vec::new();
        let mut allowed = Vec::new();
        for entry in entries {
            let template = Template::parse(entry).context(context)?;
            if template.is_literal() {
                allowed.push(AllowedHost::parse(entry).context(context)?);
                continue;
            }
            // Checked with defaults only; missing values are left for run time.
            if let Ok(resolved) = defaults.expand(&template) {
                parse_or_skip(&resolved)
                    .with_context(|| {
                        format!(
                            "using default variable value(s) with template {entry:?} results in invalid config {resolved:?}"
                        )
                    })
                    .context(context)?;
            }
            templates.push((entry, template));
        }
        let mut unresolved = None;
        for (entry, template) in templates {
            match actual
                .expand(&template)
                .and_then(|resolved| parse_or_skip(&resolved))
            {
                Ok(Some(host)) => allowed.push(host),
                Ok(None) => {}
                Err(e) => {
                    unresolved = Some(format!("{entry:?}: {e:#}"));
                }
            }
        }
        if unresolved.is_some() {
            allowed.clear();
        }
        Ok(OutboundPolicy {
            allowed,
            unresolved,
        })
    }

    /// A policy from already-resolved entries (tests, sidecars).
    pub fn from_entries(entries: &[&str]) -> anyhow::Result<OutboundPolicy> {
        let allowed = entries
            .iter()
            .map(|e| AllowedHost::parse(e))
            .collect::<anyhow::Result<_>>()?;
        Ok(OutboundPolicy {
            allowed,
            unresolved: None,
        })
    }

    /// Why everything is denied, when the list could not be resolved.
    pub fn unresolved(&self) -> Option<&str> {
        self.unresolved.as_deref()
    }

    /// Whether `uri` may be called.
    pub fn allows_uri(&self, uri: &hyper::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host().and_then(|h| Host::parse(h).ok()) else {
            return false;
        };
        self.allowed
            .iter()
            .any(|a| a.allows(scheme, &host, uri.port_u16()))
    }
}

/// An empty expansion (or a bare scheme) allows nothing, so a slot can be left empty.
fn parse_or_skip(resolved: &str) -> anyhow::Result<Option<AllowedHost>> {
    if resolved.is_empty() || resolved == "http://" || resolved == "https://" {
        Ok(None)
    } else {
        AllowedHost::parse(resolved).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::from_entries(entries).unwrap()
    }

    fn allowed(p: &OutboundPolicy, url: &str) -> bool {
        p.allows_uri(&url.parse().unwrap())
    }

    fn err(entry: &str) -> String {
        format!("{:#}", AllowedHost::parse(entry).unwrap_err())
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allowed(&policy(&[]), "https://example.com/"));
    }

    #[test]
    fn scheme_host_and_default_port_must_match() {
        let p = policy(&["https://api.example.com"]);
        assert!(allowed(&p, "https://api.example.com/v1"));
        assert!(allowed(&p, "https://API.example.com:443/v1"));
        assert!(!allowed(&p, "http://api.example.com/v1"));
        assert!(!allowed(&p, "https://api.example.com:8443/"));
        assert!(!allowed(&p, "https://evil.com/"));
    }

    #[test]
    fn wildcards_ports_ranges_and_cidrs() {
        let p = policy(&[
            "http://127.0.0.1:*",
            "https://*.example.com",
            "*://h:8000..8002",
            "*://10.0.0.0/8:443",
            "http://[::1]:8001",
        ]);
        assert!(allowed(&p, "http://127.0.0.1:5555/x"));
        assert!(allowed(&p, "https://a.example.com/"));
        assert!(!allowed(&p, "https://example.com/"));
        assert!(allowed(&p, "http://h:8001/"));
        assert!(!allowed(&p, "http://h:8002/"), "ranges exclude their end");
        assert!(allowed(&p, "https://10.1.2.3/"));
        assert!(!allowed(&p, "https://11.1.2.3/"));
        assert!(allowed(&p, "http://[::1]:8001/"));
    }

    #[test]
    fn entries_spin_accepts() {
        for ok in [
            "http://spin.fermyon.dev",
            "http://spin.fermyon.dev/",
            "https://x:5555",
            "*://x:7777",
            "http://self",
            "mysql://xyz.com",
            "*://*:*",
            "http://[::1]:8001",
            "*://127.0.0.0/24:80",
        ] {
            assert!(AllowedHost::parse(ok).is_ok(), "{ok}: {}", err(ok));
        }
    }

    #[test]
    fn entries_spin_refuses_with_its_words() {
        assert!(err("example.com").contains("\"example.com\" does not contain a scheme"));
        assert!(err("*").contains("is not an allowed outbound host format"));
        assert!(err("https://example.com/path").contains("must not include a path"));
        assert!(err("http://x:6666/a/b").contains("has a path but is not allowed to"));
        assert!(err("*://127.0.0.0/24").contains("does not have a known default port number"));
        assert!(err("tcp://host").contains("\"tcp\" does not have a known default port number"));
        assert!(err("http://h:abc").contains("port \"abc\" is not a number"));
        assert!(err("http://a.*.com").contains("wildcards are allowed only as subdomains"));
        assert!(err("h2c://x:1").contains("only alphabetic characters are allowed"));
        // A comma-separated list is one (malformed) entry to Spin.
        assert!(err("https://a.com, https://b.com").contains("has a path but is not allowed to"));
    }

    #[test]
    fn templates_resolve_and_empty_slots_allow_nothing() {
        use crate::manifest::VariableDecl;
        let mut decls = std::collections::BTreeMap::new();
        decls.insert(
            "host".to_string(),
            VariableDecl {
                default: Some("https://a.example.com".into()),
                ..Default::default()
            },
        );
        decls.insert(
            "extra".to_string(),
            VariableDecl {
                default: Some(String::new()),
                ..Default::default()
            },
        );
        let defaults = AppVariables::defaults(&decls);
        let actual = AppVariables::resolve(&decls, |k| {
            (k == "SPIN_VARIABLE_HOST").then(|| "http://127.0.0.1:9".to_string())
        })
        .unwrap();
        let entries = vec!["{{ host }}".to_string(), "{{ extra }}".to_string()];
        let p = OutboundPolicy::new(&entries, &defaults, &actual).unwrap();
        assert!(allowed(&p, "http://127.0.0.1:9/"));
        assert!(!allowed(&p, "https://a.example.com/"));

        // A bad default is a load error; an unknown variable only denies at run time.
        decls.get_mut("extra").unwrap().default = Some("invalid host".into());
        let bad = AppVariables::defaults(&decls);
        let e = OutboundPolicy::new(&entries, &bad, &actual).unwrap_err();
        assert!(
            format!("{e:#}").contains("using default variable value(s)"),
            "{e:#}"
        );
        let entries = vec!["{{ host }}".to_string(), "{{ undeclared }}".to_string()];
        let p = OutboundPolicy::new(&entries, &defaults, &actual).unwrap();
        assert!(p.unresolved().is_some());
        assert!(!allowed(&p, "http://127.0.0.1:9/"));
    }
}
