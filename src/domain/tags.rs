//! Device tags: a flat JSON object of string, number or boolean values,
//! small enough to index and to filter on (API.md, Targeting by filters).

use serde_json::{Map, Number, Value};

use super::FieldError;

/// Most tags one device may carry.
pub const MAX_TAGS: usize = 50;
/// Longest tag name, in bytes.
pub const MAX_KEY_BYTES: usize = 64;
/// Longest string value, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;

/// One tag's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagValue {
    /// Text.
    Text(String),
    /// A finite number.
    Number(Number),
    /// `true` / `false`.
    Bool(bool),
}

impl TagValue {
    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(s) => Value::String(s.clone()),
            Self::Number(n) => Value::Number(n.clone()),
            Self::Bool(b) => Value::Bool(*b),
        }
    }
}

/// Validates a tag name: 1–64 characters of `[A-Za-z0-9_.:-]` (no quotes
/// or spaces, so a name is also a plain JSON path step).
pub fn key(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("tag names are 1-{MAX_KEY_BYTES} characters of A-Z a-z 0-9 _ . : -")))
    }
}

/// Validates a tag value: a string of at most 256 bytes, a number or a boolean.
pub fn value(field: &str, value: &Value) -> Result<TagValue, FieldError> {
    match value {
        Value::String(s) if s.len() <= MAX_VALUE_BYTES && !s.chars().any(char::is_control) => {
            Ok(TagValue::Text(s.clone()))
        }
        Value::String(_) => Err(FieldError::new(
            field,
            format!("a tag string is at most {MAX_VALUE_BYTES} bytes, without control characters"),
        )),
        Value::Number(n) => Ok(TagValue::Number(n.clone())),
        Value::Bool(b) => Ok(TagValue::Bool(*b)),
        _ => Err(FieldError::new(field, "a tag value is a string, a number or a boolean")),
    }
}

/// Validates a device's `tags` object; returns it as stored JSON text.
pub fn parse(field: &str, tags: &Map<String, Value>) -> Result<String, FieldError> {
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new(field, format!("a device has at most {MAX_TAGS} tags")));
    }
    for (name, v) in tags {
        let at = format!("{field}.{name}");
        key(&at, name)?;
        value(&at, v)?;
    }
    Ok(Value::Object(tags.clone()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(v: Value) -> String {
        parse("tags", v.as_object().expect("object")).expect_err("refused").field
    }

    #[test]
    fn takes_flat_scalars_within_limits() {
        let ok = json!({"tier": "gold", "score": 42, "beta": true, "ratio": 0.5});
        assert!(parse("tags", ok.as_object().expect("object")).is_ok());
        assert_eq!(fault(json!({"tier": null})), "tags.tier");
        assert_eq!(fault(json!({"tier": {"a": 1}})), "tags.tier");
        assert_eq!(fault(json!({"bad key": 1})), "tags.bad key");
        assert_eq!(fault(json!({"long": "x".repeat(MAX_VALUE_BYTES + 1)})), "tags.long");
        let many: Map<String, Value> = (0..=MAX_TAGS).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(fault(Value::Object(many)), "tags");
    }
}
