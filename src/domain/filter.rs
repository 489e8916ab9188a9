//! Targeting filters (API.md, Targeting by filters): `all` / `any` trees of
//! conditions on the registry, validated up front with the path of each
//! fault (`to.filters.any[1].relation`). The store compiles them to SQL.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tags::{self, TagValue};
use super::{local_time, names, version, FieldError, Platform};

/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 50;
/// Deepest nesting of `all` / `any`.
pub const MAX_DEPTH: usize = 5;
/// Most values of one `in`.
pub const MAX_IN: usize = 100;

/// A filter: every one, any one, or a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every sub-filter holds.
    All(Vec<Filter>),
    /// At least one sub-filter holds.
    Any(Vec<Filter>),
    /// One condition.
    Is(Condition),
}

/// What a condition looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `ios` / `android`.
    Platform,
    /// The device's locale, matched by prefix (`es` matches `es-UY`).
    Locale,
    /// The app version, in version order (`3.10.0 > 3.9.2`).
    AppVersion,
    /// The IANA time zone.
    Timezone,
    /// The app's user.
    UserId,
    /// Membership of a group.
    Group,
    /// A tag, named by `key`.
    Tag,
    /// Last registration or token refresh, compared by age.
    LastSeenAt,
    /// Registration, compared by age.
    CreatedAt,
}

const FIELDS: &[(&str, Field)] = &[
    ("platform", Field::Platform),
    ("locale", Field::Locale),
    ("app_version", Field::AppVersion),
    ("timezone", Field::Timezone),
    ("user_id", Field::UserId),
    ("group", Field::Group),
    ("tag", Field::Tag),
    ("last_seen_at", Field::LastSeenAt),
    ("created_at", Field::CreatedAt),
];

/// How a condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// `=`
    Eq,
    /// `!=`: also true where the field is not set.
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// Equal to one of a list.
    In,
    /// The field is set.
    Exists,
    /// The field is not set.
    NotExists,
}

const RELATIONS: &[(&str, Relation)] = &[
    ("=", Relation::Eq),
    ("!=", Relation::Ne),
    (">", Relation::Gt),
    ("<", Relation::Lt),
    (">=", Relation::Ge),
    ("<=", Relation::Le),
    ("in", Relation::In),
    ("exists", Relation::Exists),
    ("not_exists", Relation::NotExists),
];

/// A validated operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Text (platform, locale lower-cased, time zone, user id, group).
    Text(String),
    /// A tag value.
    Tag(TagValue),
    /// A version, with its sortable key.
    Version {
        /// As given.
        text: String,
        /// See [`version::key`].
        key: String,
    },
    /// An age, e.g. `7d`.
    Age {
        /// As given.
        text: String,
        /// In milliseconds.
        ms: i64,
    },
}

/// One condition, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// What it looks at.
    pub field: Field,
    /// How it compares.
    pub relation: Relation,
    /// The tag's name (`tag` only).
    pub key: Option<String>,
    /// The values: none (`exists`), one, or several (`in`).
    pub values: Vec<Operand>,
}

impl Filter {
    /// Parses a filter found at `path` (e.g. `to.filters`).
    pub fn parse(value: &Value, path: &str) -> Result<Self, FieldError> {
        let mut count = 0;
        parse_node(value, path, 1, &mut count)
    }

    /// The filter as the API takes it.
    pub fn to_json(&self) -> Value {
        match self {
            Filter::All(items) => serde_json::json!({"all": items.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Any(items) => serde_json::json!({"any": items.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Is(c) => c.to_json(),
        }
    }
}

impl Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Filter::parse(&value, "filters").map_err(|e| serde::de::Error::custom(format!("{}: {}", e.field, e.message)))
    }
}

fn parse_node(value: &Value, path: &str, depth: usize, count: &mut usize) -> Result<Filter, FieldError> {
    let obj = value
        .as_object()
        .ok_or_else(|| FieldError::new(path, "a filter is a condition, {\"all\": [...]} or {\"any\": [...]}"))?;
    for (word, make) in [("all", Filter::All as fn(Vec<Filter>) -> Filter), ("any", Filter::Any)] {
        let Some(items) = obj.get(word) else { continue };
        if let Some(other) = obj.keys().find(|k| *k != word) {
            return Err(FieldError::new(format!("{path}.{other}"), format!("`{word}` stands alone")));
        }
        let at = format!("{path}.{word}");
        if depth > MAX_DEPTH {
            return Err(FieldError::new(at, format!("filters nest at most {MAX_DEPTH} deep")));
        }
        let items = items
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| FieldError::new(&at, format!("`{word}` takes a non-empty array of filters")))?;
        let parsed = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_node(item, &format!("{at}[{i}]"), depth + 1, count))
            .collect::<Result<_, _>>()?;
        return Ok(make(parsed));
    }
    *count += 1;
    if *count > MAX_CONDITIONS {
        return Err(FieldError::new(path, format!("a filter has at most {MAX_CONDITIONS} conditions")));
    }
    Condition::parse(obj, path).map(Filter::Is)
}

/// Which relations a field takes, and what its values are.
fn relations_of(field: Field) -> &'static [Relation] {
    use Relation::*;
    match field {
        Field::Platform => &[Eq, Ne, In],
        Field::Locale | Field::Timezone | Field::UserId | Field::Group => &[Eq, Ne, In, Exists, NotExists],
        Field::AppVersion | Field::Tag => &[Eq, Ne, Gt, Lt, Ge, Le, In, Exists, NotExists],
        Field::LastSeenAt | Field::CreatedAt => &[Gt, Lt, Ge, Le],
    }
}

impl Condition {
    fn parse(obj: &Map<String, Value>, path: &str) -> Result<Self, FieldError> {
        if let Some(other) = obj.keys().find(|k| !["field", "relation", "value", "key"].contains(&k.as_str())) {
            return Err(FieldError::new(
                format!("{path}.{other}"),
                "unknown field: a condition has field, relation, value, key",
            ));
        }
        let at = |name: &str| format!("{path}.{name}");
        let field_name = obj.get("field").and_then(Value::as_str);
        let field = FIELDS.iter().find(|(n, _)| Some(*n) == field_name).map(|(_, f)| *f).ok_or_else(|| {
            let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
            FieldError::new(at("field"), format!("field is one of {}", names.join(", ")))
        })?;
        let relation_name = obj.get("relation").and_then(Value::as_str);
        let allowed = relations_of(field);
        let relation = RELATIONS
            .iter()
            .find(|(n, _)| Some(*n) == relation_name)
            .map(|(_, r)| *r)
            .filter(|r| allowed.contains(r))
            .ok_or_else(|| {
                let names: Vec<&str> = RELATIONS.iter().filter(|(_, r)| allowed.contains(r)).map(|(n, _)| *n).collect();
                FieldError::new(at("relation"), format!("relations of {} are {}", name_of(field), names.join(" ")))
            })?;
        let key = match (field, obj.get("key")) {
            (Field::Tag, Some(Value::String(k))) => {
                tags::key(&at("key"), k)?;
                Some(k.clone())
            }
            (Field::Tag, _) => return Err(FieldError::new(at("key"), "a tag condition names its tag in `key`")),
            (_, Some(_)) => return Err(FieldError::new(at("key"), "only tag conditions take a key")),
            (_, None) => None,
        };
        let value_at = at("value");
        let values = match (relation, obj.get("value")) {
            (Relation::Exists | Relation::NotExists, None) => Vec::new(),
            (Relation::Exists | Relation::NotExists, Some(_)) => {
                return Err(FieldError::new(value_at, "exists and not_exists take no value"))
            }
            (_, None) => return Err(FieldError::new(value_at, "this relation needs a value")),
            (Relation::In, Some(v)) => {
                let items = v.as_array().filter(|a| !a.is_empty() && a.len() <= MAX_IN).ok_or_else(|| {
                    FieldError::new(&value_at, format!("`in` takes an array of 1 to {MAX_IN} values"))
                })?;
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| operand(field, relation, item, &format!("{value_at}[{i}]")))
                    .collect::<Result<_, _>>()?
            }
            (_, Some(v)) => vec![operand(field, relation, v, &value_at)?],
        };
        Ok(Self { field, relation, key, values })
    }

    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("field".into(), name_of(self.field).into());
        let relation = RELATIONS.iter().find(|(_, r)| *r == self.relation).map_or("=", |(n, _)| *n);
        obj.insert("relation".into(), relation.into());
        if let Some(key) = &self.key {
            obj.insert("key".into(), key.clone().into());
        }
        let json = |o: &Operand| match o {
            Operand::Text(s) | Operand::Version { text: s, .. } | Operand::Age { text: s, .. } => {
                Value::from(s.clone())
            }
            Operand::Tag(t) => t.to_json(),
        };
        match (self.relation, self.values.as_slice()) {
            (Relation::Exists | Relation::NotExists, _) => {}
            (Relation::In, values) => {
                obj.insert("value".into(), values.iter().map(json).collect());
            }
            (_, [one, ..]) => {
                obj.insert("value".into(), json(one));
            }
            (_, []) => {}
        }
        Value::Object(obj)
    }
}

/// The API name of `field`.
pub fn name_of(field: Field) -> &'static str {
    FIELDS.iter().find(|(_, f)| *f == field).map_or("field", |(n, _)| *n)
}

/// Parses one value of a condition on `field`.
fn operand(field: Field, relation: Relation, value: &Value, at: &str) -> Result<Operand, FieldError> {
    let text = || value.as_str().ok_or_else(|| FieldError::new(at, format!("{} takes a string", name_of(field))));
    Ok(match field {
        Field::Platform => {
            let s = text()?;
            Platform::parse(s).ok_or_else(|| FieldError::new(at, "platform is ios or android"))?;
            Operand::Text(s.to_string())
        }
        Field::Locale => {
            let s = text()?;
            let ok = !s.is_empty() && s.len() <= 35 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(FieldError::new(at, "a locale (prefix) is letters, digits and -, e.g. es or es-UY"));
            }
            Operand::Text(s.to_ascii_lowercase())
        }
        Field::AppVersion => {
            let s = text()?;
            let key = version::parse(s).ok_or_else(|| {
                FieldError::new(at, "a version is 1 to 4 numbers of up to 9 digits joined by dots, e.g. 3.10.0")
            })?;
            Operand::Version { text: s.to_string(), key }
        }
        Field::Timezone => {
            let s = text()?;
            local_time::timezone(at, s)?;
            Operand::Text(s.to_string())
        }
        Field::UserId => {
            let s = text()?;
            names::opaque(at, s)?;
            Operand::Text(s.to_string())
        }
        Field::Group => {
            let s = text()?;
            names::group(at, s)?;
            Operand::Text(s.to_string())
        }
        Field::Tag => {
            let tag = tags::value(at, value)?;
            let ordered = matches!(relation, Relation::Gt | Relation::Lt | Relation::Ge | Relation::Le);
            if ordered && !matches!(tag, TagValue::Number(_)) {
                return Err(FieldError::new(at, "tags compare with > < >= <= against a number"));
            }
            Operand::Tag(tag)
        }
        Field::LastSeenAt | Field::CreatedAt => {
            let s = text()?;
            let ms = age_ms(s)
                .ok_or_else(|| FieldError::new(at, "an age is a whole number and a unit: s, m, h, d or w, e.g. 7d"))?;
            Operand::Age { text: s.to_string(), ms }
        }
    })
}

/// `7d` in milliseconds: a whole number (up to 10 years) and one of s, m, h, d, w.
fn age_ms(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let ms = n.checked_mul(seconds * 1000)?;
    (ms <= 10 * 366 * 86_400_000).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(v: Value) -> String {
        Filter::parse(&v, "to.filters").expect_err("refused").field
    }

    #[test]
    fn parses_nesting_and_round_trips() {
        let v = json!({"all": [
            {"field": "platform", "relation": "=", "value": "ios"},
            {"any": [
                {"field": "tag", "key": "tier", "relation": "in", "value": ["gold", 3, true]},
                {"field": "app_version", "relation": ">=", "value": "3.10"},
                {"field": "last_seen_at", "relation": "<", "value": "7d"},
                {"field": "group", "relation": "not_exists"}
            ]}
        ]});
        let f = Filter::parse(&v, "to.filters").expect("valid");
        assert_eq!(f.to_json(), v);
        let again: Filter = serde_json::from_value(serde_json::to_value(&f).expect("json")).expect("reads back");
        assert_eq!(again, f);
    }

    #[test]
    fn names_the_path_of_each_fault() {
        let cond =
            |field: &str, relation: &str, value: Value| json!({"field": field, "relation": relation, "value": value});
        assert_eq!(fault(json!([])), "to.filters");
        assert_eq!(fault(json!({"any": []})), "to.filters.any");
        assert_eq!(fault(json!({"all": [], "x": 1})), "to.filters.x");
        assert_eq!(
            fault(json!({"any": [cond("platform", "=", json!("ios")), cond("platform", ">", json!("ios"))]})),
            "to.filters.any[1].relation"
        );
        assert_eq!(fault(json!({"any": [cond("colour", "=", json!("red"))]})), "to.filters.any[0].field");
        assert_eq!(fault(cond("app_version", ">", json!("3.x"))), "to.filters.value");
        assert_eq!(fault(cond("last_seen_at", ">", json!("7 days"))), "to.filters.value");
        assert_eq!(fault(cond("platform", "in", json!(["ios", "huawei"]))), "to.filters.value[1]");
        assert_eq!(fault(cond("tag", "=", json!("gold"))), "to.filters.key");
        assert_eq!(fault(json!({"field": "user_id", "relation": "exists", "value": "u"})), "to.filters.value");
        assert_eq!(fault(json!({"field": "user_id", "relation": "=", "value": "u", "colour": 1})), "to.filters.colour");
        assert_eq!(fault(json!({"field": "tag", "key": "n", "relation": ">", "value": "a"})), "to.filters.value");
        assert_eq!(fault(cond("timezone", "=", json!("Mars/Olympus"))), "to.filters.value");
        let deep = (0..=MAX_DEPTH).fold(cond("user_id", "=", json!("u")), |inner, _| json!({"all": [inner]}));
        assert!(fault(deep).ends_with(".all"));
    }

    #[test]
    fn ages_have_a_unit() {
        assert_eq!(age_ms("7d"), Some(7 * 86_400_000));
        assert_eq!(age_ms("90m"), Some(90 * 60_000));
        assert_eq!(age_ms("d"), None);
        assert_eq!(age_ms("-1d"), None);
        assert_eq!(age_ms("5y"), None);
        assert_eq!(age_ms("99999999w"), None);
    }
}
