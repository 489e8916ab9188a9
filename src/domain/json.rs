//! Client JSON into typed values, naming the offending field by its path.
//! Used by the HTTP bodies, the socket frames and the stored credentials alike.

use serde::de::DeserializeOwned;

use super::FieldError;

/// Deserializes a JSON value, reporting the path of the offending field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let mut field = e.path().to_string();
        if field == "." || field.is_empty() {
            field = missing_field_name(&message).unwrap_or_default();
        } else if let Some(inner) = missing_field_name(&message) {
            field = format!("{field}.{inner}");
        }
        FieldError::new(field, message)
    })
}

/// serde reports a missing field only in its message: "missing field `x`".
pub fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}
