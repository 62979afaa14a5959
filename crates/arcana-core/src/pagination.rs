//! Keyset pagination with opaque cursors. A cursor encodes the sort key and id of the
//! last item returned, so pages stay stable while rows are inserted concurrently
//! (offsets would skip or repeat items).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::http::ApiRequest;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size a client may ask for.
pub const MAX_LIMIT: i64 = 200;

/// Position after the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort key of the last item (e.g. a timestamp).
    pub key: String,
    /// Its id, to break ties.
    pub id: String,
}

impl Cursor {
    /// Opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serializes"))
    }

    /// Parses the text form; garbage is a 400.
    pub fn decode(s: &str) -> Result<Cursor, ApiError> {
        URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request("invalid_cursor", "The cursor is not valid."))
    }
}

/// `limit` and `cursor` from the query string.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Reads `?limit=&cursor=`; a bad limit is a 400.
    pub fn from_request(req: &ApiRequest) -> Result<PageRequest, ApiError> {
        let limit = match req.query_param("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let after = req
            .query_param("cursor")
            .filter(|c| !c.is_empty())
            .map(|c| Cursor::decode(&c))
            .transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// One page of results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says more exist.
    pub fn from_rows(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().map(|i| cursor_of(i).encode())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_rejected() {
        let c = Cursor {
            key: "2026".into(),
            id: "x".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(Cursor::decode("!!").unwrap_err().code, "invalid_cursor");
    }

    #[test]
    fn limits_are_bounded() {
        assert!(PageRequest::from_request(&ApiRequest::new("GET", "/x?limit=0")).is_err());
        assert!(PageRequest::from_request(&ApiRequest::new("GET", "/x?limit=201")).is_err());
        assert_eq!(
            PageRequest::from_request(&ApiRequest::new("GET", "/x"))
                .unwrap()
                .limit,
            DEFAULT_LIMIT
        );
    }

    #[test]
    fn extra_row_means_next_cursor() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |i| Cursor {
            key: i.to_string(),
            id: i.to_string(),
        });
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(
            Cursor::decode(page.next_cursor.as_ref().unwrap())
                .unwrap()
                .id,
            "2"
        );
        let last = Page::from_rows(vec![1], 2, |i| Cursor {
            key: i.to_string(),
            id: i.to_string(),
        });
        assert!(last.next_cursor.is_none());
    }
}
