//! JSON helpers shared by the payload builders.

use serde_json::{Map, Value};

/// Merges `patch` into `target` the way JSON Merge Patch (RFC 7386) does:
/// objects merge key by key at every depth, `null` removes a key, anything
/// else replaces. This lets raw provider fields add to what pushgate built
/// (e.g. one key inside `aps`) without restating the rest.
pub(crate) fn deep_merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(patch_obj) => match target.get_mut(key) {
                Some(Value::Object(target_obj)) => deep_merge(target_obj, patch_obj),
                _ => {
                    let mut fresh = Map::new();
                    deep_merge(&mut fresh, patch_obj);
                    target.insert(key.clone(), Value::Object(fresh));
                }
            },
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn merges_nested_objects_replaces_scalars_and_removes_nulls() {
        let mut target = obj(json!({"aps": {"alert": {"title": "a"}, "badge": 1}, "x": 1, "gone": 2}));
        deep_merge(
            &mut target,
            &obj(json!({"aps": {"alert": {"subtitle": "s"}, "badge": 2}, "x": [1], "gone": null, "new": {"k": null}})),
        );
        assert_eq!(
            Value::Object(target),
            json!({"aps": {"alert": {"title": "a", "subtitle": "s"}, "badge": 2}, "x": [1], "new": {}})
        );
    }
}
