//! Opaque identifiers: UUIDv7 text, sortable by creation time.

/// A new UUIDv7 identifier as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
