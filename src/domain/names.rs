//! Names given by clients: group names, user ids, client ids.

use super::FieldError;

/// Validates a group name: 1–128 characters of `[A-Za-z0-9_.:@~-]` (no
/// separators, so stored lists of names stay unambiguous).
pub fn group(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@~-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, "group names are 1-128 characters of A-Z a-z 0-9 _ . : @ ~ -"))
    }
}

/// Validates an opaque id given by a client (user id, client id): 1–256
/// bytes, no control characters.
pub fn opaque(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.len() > 256 {
        Err(FieldError::new(field, format!("{field} must be 1-256 characters")))
    } else {
        printable(field, value)
    }
}

/// Refuses control characters (NUL, CR, LF, …): no stored string or header
/// value needs them, Postgres refuses NUL, and CR/LF would break a header.
pub fn printable(field: &str, value: &str) -> Result<(), FieldError> {
    if value.chars().any(char::is_control) {
        Err(FieldError::new(field, format!("{field} must not contain control characters")))
    } else {
        Ok(())
    }
}
