//! Who a send is for (`to` of API.md, Sending), parsed with field paths.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::Filter;
use super::{names, DeviceToken, FieldError, Platform};

/// Most ids or tokens one explicit target may list: these are expanded in the
/// request's own transaction, so `targeted` is exact in the 202.
pub const MAX_EXPLICIT: usize = 10_000;
/// Most user ids one target may list.
pub const MAX_USERS: usize = 1_000;
/// Most groups one target may list.
pub const MAX_GROUPS: usize = 100;

/// A device given by platform and token, registered or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTarget {
    /// `ios` or `android`.
    pub platform: Platform,
    /// The normalised token.
    pub token: String,
}

/// What a send is addressed to; stored as JSON beside the notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Registered devices by id (unknown ids are 404).
    DeviceIds(Vec<String>),
    /// Every active device of these users.
    UserIds(Vec<String>),
    /// Every active device of a group (an empty or unknown group is 404).
    Group(String),
    /// Every active device of any of these groups (unknown ones add none).
    Groups(Vec<String>),
    /// Every active device the filter selects.
    Filters(Filter),
    /// Raw provider tokens.
    Tokens(Vec<TokenTarget>),
    /// Every active device of the app.
    All(bool),
}

impl Target {
    /// True when the deliveries are inserted with the notification (exact
    /// `targeted`); otherwise the fan-out task expands the target in batches.
    pub fn is_explicit(&self) -> bool {
        matches!(self, Target::DeviceIds(_) | Target::Tokens(_))
    }

    /// How many devices or tokens an explicit target names (0 for others).
    pub fn explicit_len(&self) -> usize {
        match self {
            Target::DeviceIds(ids) => ids.len(),
            Target::Tokens(tokens) => tokens.len(),
            _ => 0,
        }
    }

    /// Parses `to`: an object with exactly one known key.
    pub fn parse(to: &Value) -> Result<Self, FieldError> {
        let obj = to.as_object().ok_or_else(|| FieldError::new("to", "to must be an object with one target"))?;
        let mut entries = obj.iter();
        let (kind, value) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            (None, _) => return Err(FieldError::new("to", "to names no target")),
            (Some(_), Some((second, _))) => {
                return Err(FieldError::new(format!("to.{second}"), "to takes exactly one target"))
            }
        };
        let field = format!("to.{kind}");
        match kind.as_str() {
            "device_ids" => {
                let ids = strings(value, &field, MAX_EXPLICIT)?;
                for (i, id) in ids.iter().enumerate() {
                    names::opaque(&format!("{field}[{i}]"), id)?;
                }
                Ok(Target::DeviceIds(dedup(ids)))
            }
            "user_ids" => {
                let ids = strings(value, &field, MAX_USERS)?;
                for (i, id) in ids.iter().enumerate() {
                    names::opaque(&format!("{field}[{i}]"), id)?;
                }
                Ok(Target::UserIds(dedup(ids)))
            }
            "group" => {
                let name = value.as_str().ok_or_else(|| FieldError::new(&field, "group must be a string"))?;
                names::group(&field, name)?;
                Ok(Target::Group(name.to_string()))
            }
            "groups" => {
                let names = strings(value, &field, MAX_GROUPS)?;
                for (i, name) in names.iter().enumerate() {
                    names::group(&format!("{field}[{i}]"), name)?;
                }
                Ok(Target::Groups(dedup(names)))
            }
            "filters" => Ok(Target::Filters(Filter::parse(value, &field)?)),
            "tokens" => Ok(Target::Tokens(tokens(value, &field)?)),
            "all" => match value {
                Value::Bool(true) => Ok(Target::All(true)),
                _ => Err(FieldError::new(&field, "all must be true")),
            },
            _ => Err(FieldError::new(
                &field,
                "unknown target: use device_ids, user_ids, group, groups, filters, tokens or all",
            )),
        }
    }
}

fn strings(value: &Value, field: &str, max: usize) -> Result<Vec<String>, FieldError> {
    let items = value.as_array().ok_or_else(|| FieldError::new(field, format!("{field} must be an array")))?;
    if items.is_empty() || items.len() > max {
        return Err(FieldError::new(field, format!("{field} must list 1 to {max} items")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().map(str::to_string).ok_or_else(|| FieldError::new(format!("{field}[{i}]"), "must be a string"))
        })
        .collect()
}

fn tokens(value: &Value, field: &str) -> Result<Vec<TokenTarget>, FieldError> {
    let items = value.as_array().ok_or_else(|| FieldError::new(field, format!("{field} must be an array")))?;
    if items.is_empty() || items.len() > MAX_EXPLICIT {
        return Err(FieldError::new(field, format!("{field} must list 1 to {MAX_EXPLICIT} items")));
    }
    let mut out: Vec<TokenTarget> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let obj = item.as_object().ok_or_else(|| FieldError::new(&at, "must be an object {platform, token}"))?;
        if let Some(extra) = obj.keys().find(|k| *k != "platform" && *k != "token") {
            return Err(FieldError::new(format!("{at}.{extra}"), "unknown field"));
        }
        let platform = obj
            .get("platform")
            .and_then(Value::as_str)
            .and_then(Platform::parse)
            .ok_or_else(|| FieldError::new(format!("{at}.platform"), "platform must be ios, android or web"))?;
        let raw = obj
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::new(format!("{at}.token"), "token must be a string"))?;
        let token = DeviceToken::parse(platform, raw, &format!("{at}.token"))?.into_string();
        out.push(TokenTarget { platform, token });
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|t| seen.insert((t.platform, t.token.clone())));
    Ok(out)
}

/// Removes repeats, keeping the first occurrence's order.
fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldErrorKind;
    use serde_json::json;

    fn field_of(err: FieldError) -> String {
        err.field
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            Target::parse(&json!({"device_ids": ["a", "b", "a"]})).expect("ok"),
            Target::DeviceIds(vec!["a".into(), "b".into()])
        );
        assert_eq!(Target::parse(&json!({"group": "news"})).expect("ok"), Target::Group("news".into()));
        assert_eq!(
            Target::parse(&json!({"groups": ["a", "b", "a"]})).expect("ok"),
            Target::Groups(vec!["a".into(), "b".into()])
        );
        let filters = json!({"filters": {"field": "platform", "relation": "=", "value": "ios"}});
        let parsed = Target::parse(&filters).expect("ok");
        assert_eq!(serde_json::to_value(&parsed).expect("json"), filters, "stored as given");
        assert_eq!(Target::parse(&json!({"all": true})).expect("ok"), Target::All(true));
        let t = Target::parse(&json!({"tokens": [{"platform": "android", "token": "abc"}]})).expect("ok");
        assert!(t.is_explicit());
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field_of(Target::parse(&json!({})).unwrap_err()), "to");
        assert_eq!(field_of(Target::parse(&json!({"planets": ["x"]})).unwrap_err()), "to.planets");
        assert_eq!(field_of(Target::parse(&json!({"device_ids": []})).unwrap_err()), "to.device_ids");
        assert_eq!(field_of(Target::parse(&json!({"device_ids": ["a", 3]})).unwrap_err()), "to.device_ids[1]");
        assert_eq!(field_of(Target::parse(&json!({"all": false})).unwrap_err()), "to.all");
        assert_eq!(field_of(Target::parse(&json!({"groups": ["ok", "no way"]})).unwrap_err()), "to.groups[1]");
        assert_eq!(field_of(Target::parse(&json!({"filters": {"any": [{}]}})).unwrap_err()), "to.filters.any[0].field");
        assert!(field_of(Target::parse(&json!({"group": "a", "all": true})).unwrap_err()).starts_with("to."));
        let bad = json!({"tokens": [{"platform": "ios", "token": "xyz"}]});
        assert!(matches!(Target::parse(&bad), Err(FieldError { kind: FieldErrorKind::Token, .. })));
        assert_eq!(field_of(Target::parse(&bad).unwrap_err()), "to.tokens[0].token");
    }
}
