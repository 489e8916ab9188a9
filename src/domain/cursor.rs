//! Opaque list cursors and page limits (API.md, Lists).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::FieldError;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;

/// Validates `limit` (1..=1000, default 50).
pub fn limit(limit: Option<i64>) -> Result<i64, FieldError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(FieldError::new("limit", format!("limit must be between 1 and {MAX_LIMIT}"))),
    }
}

/// Encodes the sort key of the last item of a page.
pub fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// Decodes a cursor given by a client back into the sort key.
pub fn decode(cursor: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(cursor) = cursor else { return Ok(None) };
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| FieldError::new("cursor", "cursor is not one this server gave"))
}

/// A page of a list: `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Debug, serde::Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra
    /// row only tells that another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| encode(&key(r))) } else { None };
        Page { items: rows, next_cursor }
    }

    /// Maps every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

/// The OpenAPI shape of a page (`Page<T>` serializes to exactly this).
#[derive(utoipa::ToSchema)]
pub struct PageOf<T: utoipa::ToSchema> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}
