//! Output: one JSON object per line on stdout, nothing else there.

use std::io::Write;

use serde_json::Value;

use crate::StoreKind;

/// One result line, built field by field and printed with [`Line::emit`].
/// Fields keep their order (`bench` and `store` first), for people reading them.
#[derive(Debug)]
pub struct Line(Vec<(String, Value)>);

impl Line {
    /// A line for scenario `bench`, on `store` when the scenario has one.
    pub fn new(bench: &str, store: Option<StoreKind>) -> Self {
        let line = Self(vec![("bench".into(), bench.into())]);
        match store {
            Some(store) => line.set("store", store.as_str()),
            None => line,
        }
    }

    /// Adds a field.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Adds a float rounded to `digits` decimals (JSON null when not finite).
    pub fn num(self, key: &str, value: f64, digits: i32) -> Self {
        let scale = 10f64.powi(digits);
        let rounded = (value * scale).round() / scale;
        let value = serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number);
        self.set(key, value)
    }

    /// The value of field `key`, if set.
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Prints the line. A closed stdout is not worth failing a benchmark for.
    pub fn emit(self) {
        let fields: Vec<String> = self.0.iter().map(|(k, v)| format!("{}:{v}", Value::String(k.clone()))).collect();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{{{}}}", fields.join(","));
        let _ = out.flush();
    }
}

/// Prints that `bench` could not run, and why.
pub fn skipped(bench: &str, store: Option<StoreKind>, reason: impl std::fmt::Display) {
    Line::new(bench, store).set("skipped", reason.to_string()).emit();
}

/// Prints that `bench` failed part-way, and why.
pub fn failed(bench: &str, store: Option<StoreKind>, error: impl std::fmt::Display) {
    Line::new(bench, store).set("error", error.to_string()).emit();
}
