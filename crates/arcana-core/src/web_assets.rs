//! The web console's static files, answered the way browsers and caches expect: the
//! `console` component embeds the built files (see `components/console/build.rs`) and
//! hands them here with each request.
//!
//! - `GET /` is the console, `GET /api/docs` the API reference, `GET /console/{name}`
//!   any other built file; `HEAD` too; anything else is a JSON 404/405.
//! - Every answer carries a strict Content-Security-Policy ([`CONTENT_SECURITY_POLICY`])
//!   and the usual hardening headers, so the page runs only the scripts it was built with.
//! - Files have a strong `ETag` (a hash of their bytes): `If-None-Match` answers 304.
//!   Pages are revalidated on every load (`no-cache`); other files are cached for a day.
//! - A gzip copy made at build time is sent to clients that accept it (`Vary:
//!   Accept-Encoding`), so the console's scripts cost a fraction of their size.

use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};

/// One built file.
#[derive(Debug)]
pub struct Asset {
    /// The file's name in the build output (`index.html`, `app.js`).
    pub name: &'static str,
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Its bytes gzip-compressed, when that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// A quoted strong entity tag, e.g. `"3f2a…"`.
    pub etag: &'static str,
}

/// Where each page lives: `(path, file)`.
pub const PAGES: [(&str, &str); 2] = [("/", "index.html"), ("/api/docs", "docs.html")];

/// The prefix of every other file's path.
pub const ASSET_PREFIX: &str = "/console/";

/// The policy every answer carries: scripts, styles, fonts and connections only from
/// this origin (WebSockets to it included), no plugins, no framing, no inline script or
/// style (the console moves the styles xterm.js injects into constructed style sheets,
/// which the policy allows; see `console/src/xterm-csp.ts`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; \
     connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Answers `req` from `assets`.
pub fn serve(assets: &[Asset], req: &ApiRequest) -> ApiResponse {
    let Some(name) = file_for(&req.path) else {
        return hardened(ApiResponse::problem(
            &ApiError::new(404, "not_found", "There is nothing at this path."),
            None,
        ));
    };
    let Some(asset) = assets.iter().find(|a| a.name == name) else {
        return hardened(ApiResponse::problem(
            &ApiError::new(
                404,
                "not_found",
                "There is no such file in the console (was it built? see README, Web console).",
            ),
            None,
        ));
    };
    if req.method != "GET" && req.method != "HEAD" {
        return hardened(
            ApiResponse::problem(
                &ApiError::new(
                    405,
                    "method_not_allowed",
                    "Only GET and HEAD are served here.",
                ),
                None,
            )
            .with_header("allow", "GET, HEAD"),
        );
    }
    let cache = if asset.content_type.starts_with("text/html") {
        "no-cache"
    } else {
        "public, max-age=86400"
    };
    let mut resp = ApiResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), asset.content_type.into()),
            ("etag".into(), asset.etag.into()),
            ("cache-control".into(), cache.into()),
            ("vary".into(), "accept-encoding".into()),
        ],
        body: Vec::new(),
    };
    if matches_etag(req.header_value("if-none-match"), asset.etag) {
        resp.status = 304;
        return hardened(resp);
    }
    let body = match asset.gzip {
        Some(gz) if accepts_gzip(req.header_value("accept-encoding")) => {
            resp.headers
                .push(("content-encoding".into(), "gzip".into()));
            gz
        }
        _ => asset.body,
    };
    if req.method == "GET" {
        resp.body = body.to_vec();
    }
    hardened(resp)
}

/// The file a path names, if any.
fn file_for(path: &str) -> Option<&str> {
    if let Some((_, file)) = PAGES.iter().find(|(p, _)| *p == path) {
        return Some(file);
    }
    let name = path.strip_prefix(ASSET_PREFIX)?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    plain.then_some(name)
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches_etag(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    })
}

/// Whether `Accept-Encoding` allows gzip (a `q=0` refuses it).
fn accepts_gzip(header: Option<&str>) -> bool {
    header.is_some_and(|h| {
        h.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let coding = fields.next().unwrap_or("");
            let refused = fields.any(|f| f.replace(' ', "") == "q=0" || f == "q=0.0");
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

/// Adds the security headers every answer of the console carries.
fn hardened(resp: ApiResponse) -> ApiResponse {
    resp.with_header("content-security-policy", CONTENT_SECURITY_POLICY)
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
        .with_header("cross-origin-opener-policy", "same-origin")
        .with_header("x-frame-options", "DENY")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSETS: &[Asset] = &[
        Asset {
            name: "index.html",
            content_type: "text/html; charset=utf-8",
            body: b"<!doctype html>",
            gzip: None,
            etag: "\"i1\"",
        },
        Asset {
            name: "app.js",
            content_type: "text/javascript; charset=utf-8",
            body: b"console.log(1)",
            gzip: Some(b"GZ"),
            etag: "\"a1\"",
        },
    ];

    #[test]
    fn pages_and_files_are_found_and_nothing_else() {
        let resp = serve(ASSETS, &ApiRequest::new("GET", "/"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"<!doctype html>");
        assert_eq!(resp.header_value("cache-control"), Some("no-cache"));
        assert!(resp.header_value("content-security-policy").is_some());
        assert_eq!(
            serve(ASSETS, &ApiRequest::new("GET", "/console/app.js")).status,
            200
        );
        for path in [
            "/console/",
            "/console/../x",
            "/console/.env",
            "/console/a/b",
            "/x",
        ] {
            let resp = serve(ASSETS, &ApiRequest::new("GET", path));
            assert_eq!(resp.status, 404, "{path}");
            assert!(resp.header_value("content-security-policy").is_some());
        }
        // A page that was not built is a 404 naming the fix.
        let resp = serve(ASSETS, &ApiRequest::new("GET", "/api/docs"));
        assert_eq!(resp.status, 404);
        assert_eq!(
            serve(ASSETS, &ApiRequest::new("POST", "/console/app.js")).status,
            405
        );
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        let plain = serve(ASSETS, &ApiRequest::new("GET", "/console/app.js"));
        assert_eq!(plain.body, b"console.log(1)");
        assert_eq!(plain.header_value("content-encoding"), None);
        let gz = serve(
            ASSETS,
            &ApiRequest::new("GET", "/console/app.js").header("accept-encoding", "br, gzip"),
        );
        assert_eq!(gz.body, b"GZ");
        assert_eq!(gz.header_value("content-encoding"), Some("gzip"));
        let refused = serve(
            ASSETS,
            &ApiRequest::new("GET", "/console/app.js").header("accept-encoding", "gzip;q=0"),
        );
        assert_eq!(refused.body, b"console.log(1)");
    }

    #[test]
    fn a_known_etag_answers_304_and_head_has_no_body() {
        let req = ApiRequest::new("GET", "/console/app.js").header("if-none-match", "W/\"a1\"");
        let resp = serve(ASSETS, &req);
        assert_eq!(resp.status, 304);
        assert!(resp.body.is_empty());
        let head = serve(ASSETS, &ApiRequest::new("HEAD", "/console/app.js"));
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }
}
