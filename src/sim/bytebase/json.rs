//! protojson output: responses omit zero values (`false`, `0`, `""`, `[]`, `*_UNSPECIFIED`), so a
//! client that expects a field to be present is caught here, as it would be by a real server.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Builds one JSON object, leaving out zero values as protojson does.
#[derive(Debug, Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Obj(Map::new())
    }

    /// A string field; `""` is omitted.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::String(value.into()));
        }
        self
    }

    /// An enum field; `*_UNSPECIFIED` and `""` are omitted.
    pub fn enumv(self, key: &str, value: &str) -> Self {
        if value.ends_with("_UNSPECIFIED") { self } else { self.str(key, value) }
    }

    /// A bool field; `false` is omitted.
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        if value {
            self.0.insert(key.into(), Value::Bool(true));
        }
        self
    }

    /// An int32 field (a JSON number); `0` is omitted.
    pub fn int(mut self, key: &str, value: i64) -> Self {
        if value != 0 {
            self.0.insert(key.into(), Value::from(value));
        }
        self
    }

    /// A repeated field; `[]` is omitted.
    pub fn list(mut self, key: &str, values: Vec<Value>) -> Self {
        if !values.is_empty() {
            self.0.insert(key.into(), Value::Array(values));
        }
        self
    }

    /// A repeated string field; `[]` is omitted.
    pub fn strs(self, key: &str, values: &[String]) -> Self {
        self.list(key, values.iter().map(|v| Value::String(v.clone())).collect())
    }

    /// A map field; `{}` is omitted.
    pub fn map(mut self, key: &str, value: Map<String, Value>) -> Self {
        if !value.is_empty() {
            self.0.insert(key.into(), Value::Object(value));
        }
        self
    }

    /// A message field that is set: kept even when empty (`{}`), as protojson does.
    pub fn msg(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.into(), value);
        self
    }

    /// An optional message field.
    pub fn opt(self, key: &str, value: Option<Value>) -> Self {
        match value {
            Some(v) => self.msg(key, v),
            None => self,
        }
    }

    /// A timestamp field (RFC 3339, UTC); omitted when unset.
    pub fn time(self, key: &str, value: Option<DateTime<Utc>>) -> Self {
        match value {
            Some(t) => self.str(key, &rfc3339(t)),
            None => self,
        }
    }

    /// The finished object.
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// RFC 3339 with the precision protojson uses (whole seconds unless there are fractions).
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
