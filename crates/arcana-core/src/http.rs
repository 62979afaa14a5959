//! A runtime-neutral HTTP request and response, and the route table type.
//!
//! Components convert Spin's request into [`ApiRequest`] (after enforcing the body
//! limit) and write [`ApiResponse`] back; handlers and tests see only these types.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult, FieldError};

/// An incoming request with its body already read (and size-checked).
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// Path without query string, e.g. `/api/auth/me`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// Convenience constructor for tests.
    pub fn new(method: &str, target: &str) -> ApiRequest {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        ApiRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            ..Default::default()
        }
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &str, value: &str) -> ApiRequest {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets a JSON body (builder style).
    pub fn json_body(mut self, value: &serde_json::Value) -> ApiRequest {
        self.body = value.to_string().into_bytes();
        self.header("content-type", "application/json")
    }

    /// First value of a header (name is matched case-insensitively).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The media type of the body, lower-case, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header_value("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Parses a JSON body: 415 for another media type, 400 for malformed JSON,
    /// 422 for JSON of the wrong shape.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        match self.content_type().as_deref() {
            Some("application/json") => {}
            Some(_) | None if self.body.is_empty() => {
                return Err(ApiError::bad_request(
                    "missing_body",
                    "A JSON body is required.",
                ));
            }
            _ => {
                return Err(ApiError::new(
                    415,
                    "unsupported_media_type",
                    "Send the body as application/json.",
                ));
            }
        }
        parse_json(&self.body)
    }
}

impl ApiRequest {
    /// [`ApiRequest::json`] for a body type that flattens another (serde's
    /// `deny_unknown_fields` does not work with `flatten`): a key not in `known` is a
    /// 422 naming it, as `deny_unknown_fields` would refuse it.
    pub fn json_with_fields<T: DeserializeOwned>(&self, known: &[&str]) -> ApiResult<T> {
        let value: serde_json::Value = self.json()?;
        if let Some(unknown) = value
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
        {
            return Err(ApiError::validation(vec![FieldError {
                field: unknown.clone(),
                message: format!("unknown field, expected one of: {}", known.join(", ")),
            }]));
        }
        serde_json::from_value(value).map_err(|e| {
            ApiError::validation(vec![FieldError {
                field: "body".into(),
                message: e.to_string(),
            }])
        })
    }
}

/// Parses JSON bytes with the API's error mapping.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(vec![FieldError {
            field: "body".into(),
            message: e.to_string(),
        }]),
        _ => ApiError::bad_request("malformed_json", format!("The body is not valid JSON: {e}")),
    })
}

/// A response ready to be written by the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// A JSON response.
    pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResponse {
        ApiResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).expect("API types serialize"),
        }
    }

    /// Marks a response the handler already streamed to the client.
    pub fn streamed() -> ApiResponse {
        ApiResponse {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Whether the handler already streamed this response.
    pub fn is_streamed(&self) -> bool {
        self.status == 0
    }

    /// 204 No Content.
    pub fn no_content() -> ApiResponse {
        ApiResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> ApiResponse {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The problem+json response for an error.
    pub fn problem(err: &ApiError, request_id: Option<&str>) -> ApiResponse {
        let mut resp = ApiResponse {
            status: err.status,
            headers: vec![("content-type".into(), "application/problem+json".into())],
            body: serde_json::to_vec(&err.to_problem(request_id)).expect("problem serializes"),
        };
        for (name, value) in &err.headers {
            resp.headers.push((name.to_string(), value.clone()));
        }
        resp
    }

    /// First value of a header.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Path parameters captured by a route (`{id}` → value).
#[derive(Debug, Clone, Default)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// A captured parameter; routes guarantee presence, so absence is a 404.
    pub fn get(&self, name: &str) -> ApiResult<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::not_found("resource"))
    }
}

/// Matches a path against an OpenAPI-style template (`/api/users/{id}`).
pub fn match_template(template: &'static str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut t = template.split('/');
    let mut p = path.trim_end_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(PathParams(params)),
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if ps.is_empty() {
                        return None;
                    }
                    let value = percent_decode(ps)?;
                    params.push((name, value));
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_parameters() {
        let p = match_template("/api/admin/users/{id}", "/api/admin/users/abc").unwrap();
        assert_eq!(p.get("id").unwrap(), "abc");
        assert!(match_template("/api/admin/users/{id}", "/api/admin/users").is_none());
        assert!(match_template("/api/admin/users/{id}", "/api/admin/users/a/b").is_none());
        assert!(match_template("/api/auth/me", "/api/auth/me/").is_some());
        let p = match_template("/api/m/{key}", "/api/m/a%20b").unwrap();
        assert_eq!(p.get("key").unwrap(), "a b");
    }

    #[test]
    fn json_errors_are_classified() {
        let req = ApiRequest::new("POST", "/").header("content-type", "application/json");
        let mut bad = req.clone();
        bad.body = b"{not json".to_vec();
        assert_eq!(
            bad.json::<serde_json::Value>().unwrap_err().code,
            "malformed_json"
        );
        let mut shape = req.clone();
        shape.body = b"{\"a\": 1}".to_vec();
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct A {
            a: String,
        }
        assert_eq!(shape.json::<A>().unwrap_err().status, 422);
        let mut text = ApiRequest::new("POST", "/").header("content-type", "text/plain");
        text.body = b"hi".to_vec();
        assert_eq!(text.json::<serde_json::Value>().unwrap_err().status, 415);
    }
}
