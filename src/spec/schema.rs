//! The spec's JSON Schema (`schemas/bridge-spec.schema.json`), compiled into the binary, and the
//! translation of its errors into `spec/schema` findings.
//!
//! Each schema error becomes one finding placed at the node it concerns, not at the root: an
//! unknown key at that key (with a "did you mean" hint), a missing field at the object that lacks
//! it, a wrong type or form at the value. The messages name fields as people write them
//! (`workflow.pollInterval`, `lockdown.allow[0]`), not as JSON Pointers.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::span::SpanMap;
use super::yaml::escape;
use crate::finding::{Finding, Location, Severity};

/// The schema's text, as published for editors.
pub const SCHEMA: &str = include_str!("../../schemas/bridge-spec.schema.json");

/// The finding code of every problem with the spec's form.
pub const CODE: &str = "spec/schema";

/// The schema as JSON.
pub fn schema() -> &'static Value {
    static SCHEMA_VALUE: OnceLock<Value> = OnceLock::new();
    SCHEMA_VALUE.get_or_init(|| {
        // Compiled in and checked by a test, so a parse failure is a build bug.
        serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("the spec schema is invalid: {e}"))
    })
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(schema())
            .unwrap_or_else(|e| panic!("the spec schema does not compile: {e}"))
    })
}

/// Validates a document; one finding per schema error, located through `spans`.
pub fn validate(document: &Value, spans: &SpanMap) -> Vec<Finding> {
    let mut findings = Vec::new();
    for error in validator().iter_errors(document) {
        translate(&error, spans, &mut findings);
    }
    findings
}

fn translate(error: &ValidationError<'_>, spans: &SpanMap, out: &mut Vec<Finding>) {
    let pointer = error.instance_path().as_str().to_owned();
    let field = field_name(&pointer);
    let node = schema_at(&pointer);
    let at_value =
        |message: String, help: String| finding(message, help, spans.locate(&pointer), &pointer);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = node.map(property_names).unwrap_or_default();
            for key in unexpected {
                let member = format!("{pointer}/{}", escape(key));
                let within = if pointer.is_empty() { "the spec".to_owned() } else { field.clone() };
                let help = suggestion(key, &allowed);
                let message = format!("unknown key `{key}` in {within}");
                out.push(finding(message, help, spans.locate_key(&member), &member));
            }
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_owned();
            let member = format!("{pointer}/{}", escape(&key));
            let help = match inner.kind() {
                ValidationErrorKind::Enum { options } => suggestion(&key, &strings(options)),
                _ => node.map(key_help).unwrap_or_default(),
            };
            let message = format!("`{key}` is not a valid key in {field}");
            out.push(finding(message, help, spans.locate_key(&member), &member));
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let message = if pointer.is_empty() {
                format!("the spec is missing the required field `{name}`")
            } else {
                format!("{field} is missing the required field `{name}`")
            };
            let help = field_description(&format!("{pointer}/{}", escape(name)))
                .map_or_else(|| format!("add `{name}`"), |d| format!("add `{name}`: {d}"));
            out.push(finding(message, help, spans.locate_key(&pointer), &pointer));
        }
        ValidationErrorKind::Type { .. } => {
            let expected = node.and_then(|n| n.get("type")).map_or("another type".into(), types);
            let instance = error.instance();
            let found = kind_of(instance);
            let quoted_boolean = expected.contains("`true`")
                && instance
                    .as_str()
                    .is_some_and(|s| BOOLEAN_WORDS.contains(&s.to_lowercase().as_str()));
            let help = if quoted_boolean {
                "write `true` or `false`, without quotes (YAML 1.2 reads `yes`, `no`, `on` and \
                 `off` as text)"
                    .to_owned()
            } else {
                field_description(&pointer).unwrap_or_default().to_owned()
            };
            out.push(at_value(format!("{field} must be {expected}, not {found}"), help));
        }
        ValidationErrorKind::Enum { options } => {
            let value = error.instance();
            let shown = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            let choices = strings(options);
            let mut help = suggestion(&shown, &choices);
            if !help.starts_with("did you mean") {
                help = format!("use one of: {}", quoted(&choices));
            }
            out.push(at_value(format!("`{shown}` is not allowed for {field}"), help));
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(at_value(
                format!("{field} must be {expected_value}"),
                node.and_then(description).unwrap_or_default().to_owned(),
            ));
        }
        ValidationErrorKind::MaxProperties { limit: 1 }
        | ValidationErrorKind::MinProperties { .. }
            if node
                .map(|n| n.get("else").map_or(n, resolve))
                .and_then(|n| n.get("maxProperties"))
                == Some(&Value::from(1)) =>
        {
            let choices = node.map(property_names).unwrap_or_default();
            let written = error.instance().as_object().map(|o| o.len()).unwrap_or_default();
            out.push(at_value(
                format!("{field} must have exactly one of {}, not {written}", quoted(&choices)),
                field_description(&pointer).unwrap_or_default().to_owned(),
            ));
        }
        ValidationErrorKind::Pattern { pattern } => {
            let value = error.instance();
            let shown = value.as_str().unwrap_or_default();
            let help = form_of(&pointer).map_or_else(
                || format!("it must match `{pattern}`"),
                |form| format!("expected {}", lower_first(form)),
            );
            out.push(at_value(format!("`{shown}` is not a valid value for {field}"), help));
        }
        _ => {
            out.push(at_value(
                format!("{field}: {error}"),
                node.and_then(description).unwrap_or_default().to_owned(),
            ));
        }
    }
}

/// Words people write for booleans; YAML 1.2 reads only `true` and `false` as booleans.
const BOOLEAN_WORDS: [&str; 10] = ["true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"];

fn finding(message: String, help: String, location: Option<Location>, pointer: &str) -> Finding {
    let mut finding = Finding::new(CODE, Severity::Error, message);
    finding.location =
        location.or_else(|| Some(Location { path: pointer.to_owned(), line: 1, column: 1 }));
    finding.remediation = (!help.is_empty()).then_some(help);
    finding
}

/// `/lockdown/allow/0` → `` `lockdown.allow[0]` ``; the root is "the spec".
pub fn field_name(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the spec".to_owned();
    }
    let mut name = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() && !name.is_empty() {
            name.push_str(&format!("[{segment}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(&segment);
        }
    }
    format!("`{name}`")
}

/// The schema node that governs the instance at `pointer`, following `$ref`, `properties`,
/// `additionalProperties`, `items` and, for objects, the `else` branch of `if`.
pub fn schema_at(pointer: &str) -> Option<&'static Value> {
    let mut node = resolve(schema());
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        let object_node = node.get("else").map_or(node, resolve);
        node = if let Some(next) = object_node.get("properties").and_then(|p| p.get(&segment)) {
            resolve(next)
        } else if let Some(items) = node.get("items") {
            resolve(items)
        } else if let Some(next) = object_node.get("additionalProperties").filter(|v| v.is_object())
        {
            resolve(next)
        } else {
            return None;
        };
    }
    Some(node)
}

/// The `$ref` target of a node (local references only), or the node itself.
fn resolve(node: &'static Value) -> &'static Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|r| schema().pointer(r))
        .unwrap_or(node)
}

/// The schema node of the field at `pointer` as written in its parent (before `$ref`).
fn raw_field(pointer: &str) -> Option<&'static Value> {
    let cut = pointer.rfind('/')?;
    let (parent, key) = (schema_at(&pointer[..cut])?, &pointer[cut + 1..]);
    let parent = parent.get("else").map_or(parent, resolve);
    parent
        .get("properties")
        .and_then(|ps| ps.get(key.replace("~1", "/").replace("~0", "~")))
        .or_else(|| parent.get("items"))
        .or_else(|| parent.get("additionalProperties").filter(|v| v.is_object()))
}

/// What the field at `pointer` is for: its own description, else its type's.
fn field_description(pointer: &str) -> Option<&'static str> {
    raw_field(pointer).and_then(description).or_else(|| schema_at(pointer).and_then(description))
}

/// The description of the form a value takes: the `$ref`'d definition's, else the field's.
fn form_of(pointer: &str) -> Option<&'static str> {
    raw_field(pointer).map(resolve).and_then(description).or_else(|| field_description(pointer))
}

fn description(node: &'static Value) -> Option<&'static str> {
    node.get("description").and_then(Value::as_str)
}

fn property_names(node: &'static Value) -> Vec<String> {
    let node = node.get("else").map_or(node, resolve);
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn key_help(node: &'static Value) -> String {
    node.get("propertyNames").and_then(description).map(str::to_owned).unwrap_or_default()
}

fn strings(options: &Value) -> Vec<String> {
    options
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .into_iter()
        .flatten()
        .collect()
}

/// "did you mean `x`?" when a candidate is close, else the list of what is allowed.
pub fn suggestion(word: &str, candidates: &[String]) -> String {
    let best = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, candidate)) => format!("did you mean `{candidate}`?"),
        None if candidates.is_empty() => String::new(),
        None => format!("allowed here: {}", quoted(candidates)),
    }
}

fn quoted(words: &[String]) -> String {
    words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

fn types(kind: &Value) -> String {
    let name = |t: &str| match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a text",
        "boolean" => "`true` or `false`",
        "integer" => "a whole number",
        "number" => "a number",
        _ => "empty",
    };
    match kind {
        Value::String(t) => name(t).to_owned(),
        Value::Array(ts) => {
            ts.iter().filter_map(Value::as_str).map(name).collect::<Vec<_>>().join(" or ")
        }
        _ => "another type".to_owned(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_as_people_write_them() {
        assert_eq!(field_name(""), "the spec");
        assert_eq!(field_name("/lockdown/allow/0"), "`lockdown.allow[0]`");
        assert_eq!(field_name("/workflow/change/a~1b"), "`workflow.change.a/b`");
    }

    #[test]
    fn suggestions_pick_the_closest_word_or_list_the_choices() {
        let allowed = ["projectSettings".to_owned(), "allow".to_owned()];
        assert_eq!(suggestion("projectSetings", &allowed), "did you mean `projectSettings`?");
        assert_eq!(suggestion("zzz", &allowed), "allowed here: `projectSettings`, `allow`");
    }

    #[test]
    fn the_schema_compiles() {
        assert!(validator().is_valid(&serde_json::json!({
            "version": 1, "name": "n",
            "bytebase": { "url": "https://b.example", "serviceAccount": "a@b.example",
                          "serviceKeyEnv": "K", "projects": ["*"] },
            "approval": { "catchAll": { "roles": ["roles/x"] } },
            "lockdown": { "allow": [] },
        })));
    }
}
