//! Filters compiled to SQL (API.md, Targeting by filters): one condition
//! over devices `d`, every value bound as a parameter, never spliced into
//! the text. Tags differ by dialect (see [`Dialect`]); Postgres answers tag
//! conditions from the GIN index on the tags.

use super::sql::{Dialect, Sql};
use crate::domain::filter::{Condition, Field, Filter, Operand, Relation};

/// Appends `filter` as one condition on devices `d` to `q`. Ages count back
/// from `now` (ms).
pub(super) fn push(q: &mut Sql, d: &Dialect, filter: &Filter, now: i64) {
    match filter {
        Filter::All(items) => join(q, d, items, " AND ", now),
        Filter::Any(items) => join(q, d, items, " OR ", now),
        Filter::Is(c) => condition(q, d, c, now),
    }
}

fn join(q: &mut Sql, d: &Dialect, items: &[Filter], op: &str, now: i64) {
    q.push("(");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            q.push(op);
        }
        push(q, d, item, now);
    }
    q.push(")");
}

fn condition(q: &mut Sql, d: &Dialect, c: &Condition, now: i64) {
    let first = c.values.first();
    match (c.relation, first) {
        (Relation::Eq, Some(v)) => {
            q.push("(");
            equals(q, d, c, v);
            q.push(")");
        }
        // Not equal, or not set: a device without a user is not `u-1`'s.
        (Relation::Ne, Some(v)) => {
            q.push("NOT COALESCE((");
            equals(q, d, c, v);
            q.push("), FALSE)");
        }
        (Relation::In, Some(_)) => {
            q.push("(");
            for (i, v) in c.values.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                equals(q, d, c, v);
            }
            q.push(")");
        }
        (Relation::Exists, _) => exists(q, d, c),
        // COALESCE: a device without tags has no tag, not an unknown one.
        (Relation::NotExists, _) => {
            q.push("NOT COALESCE(");
            exists(q, d, c);
            q.push(", FALSE)");
        }
        (Relation::Gt | Relation::Lt | Relation::Ge | Relation::Le, Some(v)) => compare(q, d, c, v, now),
        // Parsing gives every other relation a value.
        _ => {
            q.push("FALSE");
        }
    }
}

/// The column a field is stored in (`None`: not a plain column).
fn column(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::Platform => "d.platform",
        Field::Timezone => "d.timezone",
        Field::UserId => "d.user_id",
        Field::AppVersion => "d.version_key",
        Field::LastSeenAt => "d.last_seen_at",
        Field::CreatedAt => "d.created_at",
        Field::Locale | Field::Group | Field::Tag => return None,
    })
}

fn equals(q: &mut Sql, d: &Dialect, c: &Condition, v: &Operand) {
    match (c.field, v, &c.key) {
        (Field::Locale, Operand::Text(prefix), _) => {
            // Validated as letters, digits and `-`: no LIKE wildcards.
            q.push("(lower(d.locale) = ").push_bind(prefix.as_str());
            q.push(" OR lower(d.locale) LIKE ").push_bind(format!("{prefix}-%").as_str()).push(")");
        }
        (Field::Group, Operand::Text(name), _) => {
            q.push("EXISTS (SELECT 1 FROM device_groups m WHERE m.app_id = d.app_id AND m.name = ")
                .push_bind(name.as_str())
                .push(" AND m.device_id = d.id)");
        }
        (Field::Tag, Operand::Tag(value), Some(key)) => d.push_tag_is(q, key, value),
        (field, Operand::Text(s) | Operand::Version { key: s, .. }, _) => match column(field) {
            Some(col) => {
                q.push(col).push(" = ").push_bind(s.as_str());
            }
            None => {
                q.push("FALSE");
            }
        },
        _ => {
            q.push("FALSE");
        }
    }
}

fn exists(q: &mut Sql, d: &Dialect, c: &Condition) {
    match (c.field, &c.key) {
        (Field::Group, _) => {
            q.push("EXISTS (SELECT 1 FROM device_groups m WHERE m.device_id = d.id)");
        }
        (Field::Tag, Some(key)) => d.push_tag_exists(q, key),
        (Field::Locale, _) => {
            q.push("d.locale IS NOT NULL");
        }
        (Field::AppVersion, _) => {
            q.push("d.app_version IS NOT NULL");
        }
        (field, _) => match column(field) {
            Some(col) => {
                q.push(col).push(" IS NOT NULL");
            }
            None => {
                q.push("FALSE");
            }
        },
    }
}

fn compare(q: &mut Sql, d: &Dialect, c: &Condition, v: &Operand, now: i64) {
    let op = match c.relation {
        Relation::Gt => ">",
        Relation::Lt => "<",
        Relation::Ge => ">=",
        _ => "<=",
    };
    match (c.field, v, &c.key) {
        (Field::AppVersion, Operand::Version { key, .. }, _) => {
            q.push("d.version_key ").push(op).push(" ").push_bind(key.as_str());
        }
        (Field::Tag, Operand::Tag(value), Some(key)) => d.push_tag_compare(q, key, op, value),
        (field @ (Field::LastSeenAt | Field::CreatedAt), Operand::Age { ms, .. }, _) => {
            // An age greater than 7d is a time before now - 7d.
            let flipped = match op {
                ">" => "<",
                "<" => ">",
                ">=" => "<=",
                _ => ">=",
            };
            let col = if field == Field::LastSeenAt { "d.last_seen_at" } else { "d.created_at" };
            q.push(col).push(" ").push(flipped).push(" ").push_bind(now.saturating_sub(*ms));
        }
        _ => {
            q.push("FALSE");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sql::Arg;
    use super::*;
    use serde_json::json;

    fn compiled(d: Dialect, filter: serde_json::Value) -> (String, Vec<Arg>) {
        let filter = Filter::parse(&filter, "filters").expect("valid");
        let mut q = Sql::after(1);
        push(&mut q, &d, &filter, 10_000_000_000);
        (q.text().to_string(), q.args().to_vec())
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let evil = "x'); DROP TABLE devices; --";
        let filter = json!({"any": [
            {"field": "user_id", "relation": "=", "value": evil},
            {"field": "tag", "key": "tier", "relation": "=", "value": evil},
        ]});
        for d in [Dialect::postgres(), Dialect::sqlite()] {
            let (text, args) = compiled(d, filter.clone());
            assert!(!text.contains("DROP"), "{text}");
            assert!(args.iter().any(|a| matches!(a, Arg::Text(s) if s.contains("DROP"))), "{args:?}");
            assert!(text.starts_with("((d.user_id = $2) OR ("), "{text}");
        }
    }

    #[test]
    fn relations_compile_to_their_sql() {
        let lite = Dialect::sqlite();
        let (text, args) = compiled(lite, json!({"field": "app_version", "relation": ">", "value": "3.10"}));
        assert_eq!(text, "d.version_key > $2");
        assert_eq!(args, [Arg::Text("000000003.000000010.000000000.000000000".into())]);
        let (text, args) = compiled(lite, json!({"field": "last_seen_at", "relation": ">", "value": "1d"}));
        assert_eq!((text.as_str(), args), ("d.last_seen_at < $2", vec![Arg::Int(10_000_000_000 - 86_400_000)]));
        let (text, _) = compiled(lite, json!({"field": "user_id", "relation": "!=", "value": "u"}));
        assert_eq!(text, "NOT COALESCE((d.user_id = $2), FALSE)");
        let (text, _) = compiled(lite, json!({"field": "user_id", "relation": "not_exists"}));
        assert_eq!(text, "NOT COALESCE(d.user_id IS NOT NULL, FALSE)");
        let (text, _) =
            compiled(Dialect::postgres(), json!({"field": "tag", "key": "tier", "relation": "=", "value": "gold"}));
        assert_eq!(text, "(CAST(d.tags AS jsonb) @> CAST($2 AS jsonb))");
    }
}
