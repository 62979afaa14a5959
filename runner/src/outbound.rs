//! `allowed_outbound_hosts`: which URLs a component may call, denied by default.
//!
//! Entries look like Spin's: `scheme://host[:port]`, where the scheme may be `*`, the
//! host may be `*` or start with `*.` (any subdomain), and the port may be `*` or a
//! range `8000..8010`. A missing port means the scheme's default (80, 443). Entries may
//! contain `{{ variable }}` templates, resolved at start-up; a template may expand to a
//! comma-separated list so that operators can allow several provider hosts with one
//! variable.

use anyhow::{Context, bail};

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Default,
    Range(u16, u16),
}

impl AllowedHost {
    /// Parses one entry (already template-expanded).
    pub fn parse(entry: &str) -> anyhow::Result<AllowedHost> {
        let (scheme, rest) = entry.split_once("://").with_context(|| {
            format!("allowed host {entry:?} needs a scheme, e.g. https://{entry}")
        })?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            other => bail!("allowed host {entry:?}: scheme {other:?} is not http, https or *"),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            bail!("allowed host {entry:?} must not contain a path");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Subdomain(suffix.to_string())
        } else if host.is_empty() || host.contains('*') {
            bail!("allowed host {entry:?}: bad host");
        } else {
            HostPattern::Exact(host)
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => match p.split_once("..") {
                Some((a, b)) => PortPattern::Range(a.parse()?, b.parse::<u16>()?.saturating_sub(1)),
                None => {
                    let n: u16 = p
                        .parse()
                        .with_context(|| format!("allowed host {entry:?}: bad port"))?;
                    PortPattern::Range(n, n)
                }
            },
        };
        Ok(AllowedHost { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomain(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(a, b) => (a..=b).contains(&port),
            PortPattern::Default => {
                let default = match (self.scheme.as_deref(), scheme) {
                    (Some("http"), _) | (None, "http") => 80,
                    _ => 443,
                };
                port == default
            }
        };
        host_ok && port_ok
    }
}

/// The allow list of one component.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

impl OutboundPolicy {
    /// Builds the policy from expanded entries; empty strings (an unset list variable) are skipped.
    pub fn new(entries: &[String]) -> anyhow::Result<OutboundPolicy> {
        let mut allowed = Vec::new();
        for entry in entries {
            for part in entry.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                allowed.push(AllowedHost::parse(part)?);
            }
        }
        Ok(OutboundPolicy { allowed })
    }

    /// Whether `uri` may be called.
    pub fn allows_uri(&self, uri: &hyper::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else { return false };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.allowed.iter().any(|a| a.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allowed(p: &OutboundPolicy, url: &str) -> bool {
        p.allows_uri(&url.parse().unwrap())
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allowed(&policy(&[]), "https://example.com/"));
    }

    #[test]
    fn scheme_host_and_default_port_must_match() {
        let p = policy(&["https://api.example.com"]);
        assert!(allowed(&p, "https://api.example.com/v1"));
        assert!(!allowed(&p, "http://api.example.com/v1"));
        assert!(!allowed(&p, "https://api.example.com:8443/"));
        assert!(!allowed(&p, "https://evil.com/"));
    }

    #[test]
    fn wildcards_ports_and_ranges() {
        let p = policy(&[
            "http://127.0.0.1:*",
            "https://*.example.com",
            "*://h:8000..8002",
        ]);
        assert!(allowed(&p, "http://127.0.0.1:5555/x"));
        assert!(allowed(&p, "https://a.example.com/"));
        assert!(!allowed(&p, "https://example.com/"));
        assert!(allowed(&p, "http://h:8001/"));
        assert!(!allowed(&p, "http://h:8002/"));
    }

    #[test]
    fn comma_separated_lists_and_blank_entries() {
        let p = policy(&["https://a.com, https://b.com", ""]);
        assert!(allowed(&p, "https://b.com/"));
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(AllowedHost::parse("example.com").is_err());
        assert!(AllowedHost::parse("ftp://example.com").is_err());
        assert!(AllowedHost::parse("https://example.com/path").is_err());
    }
}
