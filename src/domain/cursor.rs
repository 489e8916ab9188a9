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

/// The secret that signs cursors, the same on every instance of a database
/// (kept in its settings), so a cursor from one instance works on another.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// Bytes of the signature at the head of a cursor.
const TAG_LEN: usize = 12;

impl CursorKey {
    /// A key from its secret bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        Self(secret)
    }

    /// The cursors of one list (`"devices"`, `"groups"`, …): a cursor of
    /// another list does not decode here.
    pub fn list(&self, list: &'static str) -> ListCursors<'_> {
        ListCursors { key: self, list }
    }

    fn tag(&self, list: &str, sort_key: &str) -> [u8; TAG_LEN] {
        use hmac::{Mac, SimpleHmac};
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(list.as_bytes());
        mac.update(&[0]);
        mac.update(sort_key.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

/// Encodes and checks the cursors of one list.
#[derive(Clone, Copy, Debug)]
pub struct ListCursors<'a> {
    key: &'a CursorKey,
    list: &'static str,
}

impl ListCursors<'_> {
    /// Encodes the sort key of the last item of a page, signed for this list.
    pub fn encode(&self, sort_key: &str) -> String {
        let mut bytes = self.key.tag(self.list, sort_key).to_vec();
        bytes.extend_from_slice(sort_key.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a cursor given by a client back into the sort key; a cursor
    /// this list did not give (made up, altered, or of another list) is refused.
    pub fn decode(&self, cursor: Option<&str>) -> Result<Option<String>, FieldError> {
        let Some(cursor) = cursor else { return Ok(None) };
        let refused = || FieldError::new("cursor", "cursor is not one this list gave");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
        if bytes.len() < TAG_LEN {
            return Err(refused());
        }
        let (tag, sort_key) = bytes.split_at(TAG_LEN);
        let sort_key = String::from_utf8(sort_key.to_vec()).map_err(|_| refused())?;
        // Compared without early exit, so timing does not reveal the tag.
        let expected = self.key.tag(self.list, &sort_key);
        let diff = tag.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(refused());
        }
        Ok(Some(sort_key))
    }
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
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursors: ListCursors<'_>, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| cursors.encode(&key(r))) } else { None };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_decode_only_in_their_own_list_and_key() {
        let key = CursorKey::new([7; 32]);
        let devices = key.list("devices");
        let cursor = devices.encode("dev_0042");
        assert_eq!(devices.decode(Some(&cursor)), Ok(Some("dev_0042".to_string())));
        assert_eq!(devices.decode(None), Ok(None));
        assert!(key.list("groups").decode(Some(&cursor)).is_err(), "another list's cursor");
        assert!(CursorKey::new([8; 32]).list("devices").decode(Some(&cursor)).is_err(), "another key's cursor");
        // Made up: plain base64 of a sort key, garbage, an altered tag.
        assert!(devices.decode(Some(&URL_SAFE_NO_PAD.encode("dev_0042"))).is_err());
        assert!(devices.decode(Some("!!not base64")).is_err());
        let mut altered = URL_SAFE_NO_PAD.decode(&cursor).expect("b64");
        altered[0] ^= 1;
        assert!(devices.decode(Some(&URL_SAFE_NO_PAD.encode(altered))).is_err());
    }
}
