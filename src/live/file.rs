//! Reading a snapshot file (`cabgate check --snapshot`) straight into the typed [`Snapshot`].
//!
//! A snapshot of a large workspace is tens of megabytes. Building a `serde_json::Value` tree of it
//! and validating that tree against `schemas/snapshot.schema.json` costs several times what
//! deserializing the typed model costs, so the usual case (a valid file) takes the fast path:
//! the model itself is strict enough to mirror the schema (unknown keys refused where the schema
//! has `additionalProperties: false`, required fields required, objects only as JSON objects,
//! timestamps checked as the schema's `date-time`), and [`check`] then covers what types cannot
//! say (`pattern`s, `const`s, the approval-rule `source` enum).
//!
//! Only a file the fast path refuses pays for the slow path: the `Value` parse and the schema,
//! which name each problem by its JSON Pointer, as they always did. If the schema finds nothing
//! (the fast path is stricter only on duplicate keys, see the tests), the fast path's own message
//! is reported. A differential test in this module keeps the two paths in agreement.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};

use super::{ConditionFacts, IamPolicyFacts, Snapshot};
use crate::bytebase::models::{ApprovalFlow, ApprovalRule, ApprovalTemplate, Expr};

/// The most problems one report lists.
pub const MAX_ERRORS: usize = 20;

/// Why a snapshot file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The text is not JSON.
    #[error("line {line}, column {column}: {message}")]
    NotJson {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// JSON, but not a snapshot: up to [`MAX_ERRORS`] problems, each led by its JSON Pointer.
    #[error("{}", .errors.join("\n"))]
    Invalid {
        /// One line per problem, `/pointer: what is wrong`.
        errors: Vec<String>,
    },
}

/// Reads a snapshot file's text into the typed model, enforcing exactly what
/// `schemas/snapshot.schema.json` enforces (with `format: date-time` asserted).
pub fn parse_snapshot(text: &str) -> Result<Snapshot, SnapshotFileError> {
    let fast = match parse_typed(text) {
        Ok(snapshot) => match check(&snapshot) {
            problems if problems.is_empty() => return Ok(snapshot),
            problems => problems,
        },
        Err(error) => {
            vec![format!(
                "/: {} (line {}, column {})",
                strip_position(&error),
                error.line(),
                error.column()
            )]
        }
    };
    // Slow path: the schema's own messages, which name the place by JSON Pointer.
    let document: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        SnapshotFileError::NotJson { line: e.line(), column: e.column(), message: e.to_string() }
    })?;
    let errors = match super::schema_errors(&document, MAX_ERRORS) {
        Ok(errors) if errors.is_empty() => fast.into_iter().take(MAX_ERRORS).collect(),
        Ok(errors) => errors,
        Err(broken) => vec![broken],
    };
    Err(SnapshotFileError::Invalid { errors })
}

/// The fast path's deserialization alone: the typed model over the text, no [`check`].
fn parse_typed(text: &str) -> Result<Snapshot, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let snapshot: Snapshot = object(&mut deserializer)?;
    deserializer.end()?;
    Ok(snapshot)
}

/// serde_json's message without its trailing ` at line L column C`, which is given separately.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The approval-rule sources the schema allows.
const RULE_SOURCES: [&str; 5] =
    ["SOURCE_UNSPECIFIED", "CHANGE_DATABASE", "CREATE_DATABASE", "REQUEST_ROLE", "REQUEST_ACCESS"];

/// What the schema enforces beyond types and keys: the `pattern`s, the `const`s and the
/// approval-rule `source` enum. Each problem is `/pointer: message`, in document order.
pub fn check(snapshot: &Snapshot) -> Vec<String> {
    let mut problems = Problems(Vec::new());
    problems.prefix(&snapshot.workspace, "workspaces/", || "/workspace".into());
    for (r, rule) in snapshot.approval_rules.iter().enumerate() {
        if !RULE_SOURCES.contains(&rule.source.as_str()) {
            problems.0.push(format!(
                "/approvalRules/{r}/source: {:?} is not one of {RULE_SOURCES:?}",
                rule.source
            ));
        }
        for (i, role) in rule.template.flow.roles.iter().enumerate() {
            problems
                .prefix(role, "roles/", || format!("/approvalRules/{r}/template/flow/roles/{i}"));
        }
    }
    for (i, role) in snapshot.roles.iter().enumerate() {
        problems.prefix(&role.name, "roles/", || format!("/roles/{i}/name"));
    }
    problems.bindings(&snapshot.workspace_iam_policy, "/workspaceIamPolicy");
    for (p, project) in snapshot.projects.iter().enumerate() {
        problems.prefix(&project.name, "projects/", || format!("/projects/{p}/name"));
        problems.bindings(&project.iam_policy, &format!("/projects/{p}/iamPolicy"));
    }
    for (g, group) in snapshot.groups.iter().enumerate() {
        problems.prefix(&group.name, "groups/", || format!("/groups/{g}/name"));
    }
    for (e, environment) in snapshot.environments.iter().enumerate() {
        problems.prefix(&environment.name, "environments/", || format!("/environments/{e}/name"));
        for (i, role) in environment.rollout_policy.roles.iter().enumerate() {
            problems
                .prefix(role, "roles/", || format!("/environments/{e}/rolloutPolicy/roles/{i}"));
        }
    }
    for (i, issue) in snapshot.skipped_issues.iter().enumerate() {
        if !is_issue_name(&issue.name) {
            problems.0.push(format!(
                "/skippedIssues/{i}/name: {:?} does not match \"^projects/[^/]+/issues/\"",
                issue.name
            ));
        }
        problems.prefix(&issue.project, "projects/", || format!("/skippedIssues/{i}/project"));
        if issue.approval_status != "SKIPPED" {
            problems.0.push(format!(
                "/skippedIssues/{i}/approvalStatus: \"SKIPPED\" was expected, not {:?}",
                issue.approval_status
            ));
        }
    }
    problems.0
}

/// The problems [`check`] found; pointers are only written for a problem (a big snapshot has
/// hundreds of thousands of names to check).
struct Problems(Vec<String>);

impl Problems {
    /// A `pattern: "^{prefix}"` with no other regex syntax.
    fn prefix(&mut self, value: &str, prefix: &str, at: impl FnOnce() -> String) {
        if !value.starts_with(prefix) {
            self.0.push(format!("{}: {value:?} does not match \"^{prefix}\"", at()));
        }
    }

    /// Binding roles are `roles/…`.
    fn bindings(&mut self, policy: &IamPolicyFacts, at: &str) {
        for (b, binding) in policy.bindings.iter().enumerate() {
            self.prefix(&binding.role, "roles/", || format!("{at}/bindings/{b}/role"));
        }
    }
}

/// `^projects/[^/]+/issues/`.
fn is_issue_name(name: &str) -> bool {
    name.strip_prefix("projects/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(project, rest)| !project.is_empty() && rest.starts_with("issues/"))
}

/// RFC 3339 `date-time` as JSON Schema's `format` asserts it: `YYYY-MM-DDTHH:MM:SS[.frac]` and
/// `Z` or `±HH:MM` (`T` and `Z` in either case), real calendar dates, and a leap second (`:60`)
/// only at 23:59 UTC. Stricter than chrono's serde reading, which also takes a space for `T`,
/// `UTC`, offsets without a colon and spaces before the offset.
pub fn is_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = bytes.get(from..to)?;
        digits
            .iter()
            .try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, expected: &[u8]| bytes.get(i).is_some_and(|b| expected.contains(b));
    let (Some(year), Some(month), Some(day)) = (number(0, 4), number(5, 7), number(8, 10)) else {
        return false;
    };
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    let (Some(hour), Some(minute), Some(second)) = (number(11, 13), number(14, 16), number(17, 19))
    else {
        return false;
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += 1 + digits;
    }
    // Minutes east of UTC.
    let offset: i32 = match bytes.get(i) {
        Some(b'Z' | b'z') if i + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == bytes.len() && at(i + 3, b":") => {
            let (Some(hours), Some(minutes)) = (number(i + 1, i + 3), number(i + 4, i + 6)) else {
                return false;
            };
            if hours > 23 || minutes > 59 {
                return false;
            }
            let east = (hours * 60 + minutes) as i32;
            if *sign == b'+' { east } else { -east }
        }
        _ => return false,
    };
    if second == 60 {
        let utc = ((hour * 60 + minute) as i32 - offset).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

/// A timestamp read strictly: [`is_date_time`], then chrono's RFC 3339 parse.
struct Timestamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Strict;
        impl Visitor<'_> for Strict {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 date-time")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                if !is_date_time(text) {
                    return Err(E::custom(format!("{text:?} is not a \"date-time\"")));
                }
                DateTime::parse_from_rfc3339(text)
                    .map(|t| Timestamp(t.to_utc()))
                    .map_err(|e| E::custom(format!("{text:?} is not a \"date-time\": {e}")))
            }
        }
        deserializer.deserialize_str(Strict)
    }
}

/// A required timestamp.
pub(super) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    Timestamp::deserialize(d).map(|t| t.0)
}

/// An optional timestamp: absent is `None` (with `#[serde(default)]`), `null` is refused.
pub(super) fn present_timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    timestamp(d).map(Some)
}

/// A required timestamp that may be `null` (used without `#[serde(default)]`, so a missing
/// one is an error, where serde would read a missing `Option` as `None`).
pub(super) fn nullable_timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<Timestamp>::deserialize(d).map(|t| t.map(|t| t.0))
}

/// `version`: the schema's `const: 1`, which any JSON number equal to 1 meets (`1.0` too).
pub(super) fn version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct One;
    impl Visitor<'_> for One {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("1")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u32, E> {
            if n == 1 { Ok(1) } else { Err(E::custom(format!("1 was expected, not {n}"))) }
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u32, E> {
            if n == 1 { Ok(1) } else { Err(E::custom(format!("1 was expected, not {n}"))) }
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<u32, E> {
            if n == 1.0 { Ok(1) } else { Err(E::custom(format!("1 was expected, not {n}"))) }
        }
    }
    d.deserialize_any(One)
}

/// A struct read from a JSON object only. serde's derived structs also accept a JSON array of
/// the field values in order, which the schema's `type: object` refuses.
pub(super) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct Object<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Object(PhantomData))
}

/// A list of structs, each read by [`object`].
pub(super) fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct Item<T>(T);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Item<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            object(d).map(Item)
        }
    }
    Vec::<Item<T>>::deserialize(d).map(|items| items.into_iter().map(|i| i.0).collect())
}

/// An `expr` object (`{"expression": …}`), where the schema allows other keys. Those are read as
/// `serde_json::Value` and dropped: reading them as `Value` holds them to the same rules (nesting
/// depth, number range) as the slow path's parse, which serde's skipping of unknown content
/// does not.
pub(super) fn condition<'de, D: Deserializer<'de>>(d: D) -> Result<ConditionFacts, D::Error> {
    struct Condition;
    impl<'de> Visitor<'de> for Condition {
        type Value = ConditionFacts;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object with an expression")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConditionFacts, A::Error> {
            let mut expression = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == "expression" {
                    if expression.is_some() {
                        return Err(de::Error::duplicate_field("expression"));
                    }
                    expression = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<serde_json::Value>()?;
                }
            }
            let expression = expression.ok_or_else(|| de::Error::missing_field("expression"))?;
            Ok(ConditionFacts { expression })
        }
    }
    d.deserialize_map(Condition)
}

/// `approvalRules` as the schema requires them (`source`, `condition.expression`,
/// `template.{title,description,flow.roles}`; other keys allowed), converted to Bytebase's
/// [`ApprovalRule`], whose own reading is lenient for API replies that omit zero values.
pub(super) fn approval_rules<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<ApprovalRule>, D::Error> {
    // Few rules and keys allowed anywhere in them: read as `Value` (same parse rules as the
    // slow path), then shaped by hand.
    let rules = Vec::<serde_json::Value>::deserialize(d)?;
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| strict_rule(rule).map_err(|e| de::Error::custom(format!("rule {i}: {e}"))))
        .collect()
}

/// One approval rule, or what is wrong with it.
fn strict_rule(rule: &serde_json::Value) -> Result<ApprovalRule, String> {
    let field = |object: &serde_json::Value, key: &str| -> Result<serde_json::Value, String> {
        let map = object.as_object().ok_or("an object was expected")?;
        map.get(key).cloned().ok_or_else(|| format!("missing field `{key}`"))
    };
    let string = |value: serde_json::Value, key: &str| match value {
        serde_json::Value::String(text) => Ok(text),
        other => Err(format!("`{key}`: {other} is not a string")),
    };
    let source = field(rule, "source")?;
    let source = source.as_str().ok_or(format!("`source`: {source} is not a string"))?.to_owned();
    let condition = field(rule, "condition")?;
    let expression = string(field(&condition, "expression")?, "expression")?;
    let template = field(rule, "template")?;
    let title = string(field(&template, "title")?, "title")?;
    let description = string(field(&template, "description")?, "description")?;
    let flow = field(&template, "flow")?;
    let roles: Vec<String> =
        serde_json::from_value(field(&flow, "roles")?).map_err(|e| format!("`flow.roles`: {e}"))?;
    Ok(ApprovalRule {
        source,
        condition: Expr { expression },
        template: ApprovalTemplate { title, description, flow: ApprovalFlow { roles } },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const EXAMPLE: &str = include_str!("../../fixtures/live/example.json");

    /// The reference answer: what the old reader accepted (a `Value` parse, then the schema
    /// with `format` asserted).
    fn schema_accepts(text: &str) -> bool {
        serde_json::from_str::<Value>(text)
            .is_ok_and(|document| super::super::schema_errors(&document, 1).unwrap().is_empty())
    }

    /// Texts standing for JSON that a `Value` cannot hold, swapped in for a placeholder string.
    const RAW: &str = "@@raw@@";

    /// Every mutation of `document`: each node replaced by other JSON types, each key removed,
    /// an unknown key added to each object, strings broken (patterns, consts, enums,
    /// date-times), lists emptied and extended.
    fn mutations(document: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut pointers = Vec::new();
        collect_pointers(document, String::new(), &mut pointers);
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for pointer in &pointers {
            let node = document.pointer(pointer).unwrap().clone();
            let mut replacements = vec![
                json!(null),
                json!(true),
                json!(7),
                json!(-1),
                json!(1.5),
                json!("text"),
                json!([]),
                json!({}),
                json!([node.clone()]),
            ];
            match &node {
                Value::Object(map) => {
                    replacements.push(Value::Array(map.values().cloned().collect()));
                    for key in map.keys() {
                        let mut removed = map.clone();
                        removed.shift_remove(key);
                        replacements.push(Value::Object(removed));
                    }
                    for extra in [json!(1), json!(RAW)] {
                        let mut added = map.clone();
                        added.insert("zzUnknown".into(), extra);
                        replacements.push(Value::Object(added));
                    }
                }
                Value::Array(items) => {
                    replacements.push(json!({ "0": items.first() }));
                    for extra in [json!(null), json!("bogus"), json!("roles/x"), json!(1)] {
                        let mut longer = items.clone();
                        longer.push(extra);
                        replacements.push(Value::Array(longer));
                    }
                    if let Some(first) = items.first() {
                        let mut doubled = items.clone();
                        doubled.push(first.clone());
                        replacements.push(Value::Array(doubled));
                    }
                }
                Value::String(text) => {
                    for broken in ["bogus", "", "2026-13-01T00:00:00Z", "yesterday"] {
                        replacements.push(json!(broken));
                    }
                    for source in RULE_SOURCES.iter().chain(&["change_database", "SKIPPED"]) {
                        replacements.push(json!(source));
                    }
                    for prefix in ["roles/", "projects/", "groups/", "environments/"] {
                        replacements.push(json!(format!("{prefix}x")));
                    }
                    if is_date_time(text) {
                        replacements.extend(DATE_TIMES.iter().map(|(t, _)| json!(t)));
                    }
                    if text.contains("/issues/") {
                        for name in
                            ["projects//issues/1", "projects/a/b/issues/1", "projects/a/issues"]
                        {
                            replacements.push(json!(name));
                        }
                    }
                }
                Value::Number(_) => {
                    for n in [json!(0), json!(2), json!(1.0), json!(1.000_000_1), json!(u64::MAX)] {
                        replacements.push(n);
                    }
                    replacements.push(json!("1"));
                    replacements.push(json!(RAW));
                }
                Value::Bool(b) => replacements.push(json!(!b)),
                Value::Null => replacements.push(json!("2026-12-03T12:00:00Z")),
            }
            for replacement in replacements {
                let mut mutated = document.clone();
                if pointer.is_empty() {
                    mutated = replacement.clone();
                } else {
                    *mutated.pointer_mut(pointer).unwrap() = replacement.clone();
                }
                let text = serde_json::to_string(&mutated).unwrap();
                if text.contains(RAW) {
                    for raw in ["1e400", deep.as_str()] {
                        let name = format!("{pointer} = {replacement} with {raw:.12}");
                        out.push((name, text.replace(&format!("\"{RAW}\""), raw)));
                    }
                } else {
                    out.push((format!("{pointer} = {replacement}"), text));
                }
            }
        }
        out
    }

    fn collect_pointers(node: &Value, at: String, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for (key, child) in map {
                    collect_pointers(child, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    collect_pointers(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    /// Date-times, and whether JSON Schema's `date-time` takes them.
    const DATE_TIMES: &[(&str, bool)] = &[
        ("2026-12-03T12:00:00Z", true),
        ("2026-12-03t12:00:00z", true),
        ("2026-12-03T12:00:00.123456789012Z", true),
        ("2026-12-03T12:00:00+05:30", true),
        ("2026-12-03T12:00:00-00:00", true),
        ("2024-02-29T00:00:00Z", true),
        ("2000-02-29T00:00:00Z", true),
        ("2026-12-31T23:59:60Z", true),
        ("2026-12-31T23:59:60.5Z", true),
        ("2026-12-31T15:59:60-08:00", true),
        ("2027-01-01T00:59:60+01:00", true),
        ("0000-01-01T00:00:00Z", true),
        ("0000-01-01T00:00:00+23:59", true),
        ("9999-12-31T23:59:59-23:59", true),
        ("2026-13-01T00:00:00Z", false),
        ("yesterday", false),
        ("", false),
        ("2026-12-03 12:00:00Z", false),
        ("2026-12-03T12:00:00", false),
        ("2026-12-03T12:00:00UTC", false),
        ("2026-12-03T12:00:00 +00:00", false),
        ("2026-12-03T12:00:00+0000", false),
        ("2026-12-03T12:00:00+05", false),
        ("2026-12-03T12:00:00+05:3", false),
        ("2026-12-03T12:00:00+24:00", false),
        ("2026-12-03T12:00:00+05:60", false),
        ("2026-12-03T12:00:00\u{2212}05:00", false),
        ("2026-12-03T24:00:00Z", false),
        ("2026-12-03T12:60:00Z", false),
        ("2026-12-03T12:00:61Z", false),
        ("2026-12-03T12:00:60Z", false),
        ("2026-12-31T23:59:60+01:00", false),
        ("2023-02-29T00:00:00Z", false),
        ("1900-02-29T00:00:00Z", false),
        ("2026-04-31T00:00:00Z", false),
        ("2026-00-10T00:00:00Z", false),
        ("2026-12-00T00:00:00Z", false),
        ("2026-12-03T12:00:00.Z", false),
        ("26-12-03T12:00:00Z", false),
        ("+2026-12-03T12:00:00Z", false),
        ("2026-12-03T12:00:00Zjunk", false),
        ("2026-12-03T12:00:00Z ", false),
        ("2026-12-03T1:00:00Z", false),
        ("\u{ff12}026-12-03T12:00:00Z", false),
    ];

    #[test]
    fn date_times_are_read_as_the_schema_reads_them() {
        let format = jsonschema::options()
            .should_validate_formats(true)
            .build(&json!({ "type": "string", "format": "date-time" }))
            .unwrap();
        for (text, expected) in DATE_TIMES {
            assert_eq!(format.is_valid(&json!(text)), *expected, "jsonschema on {text:?}");
            assert_eq!(is_date_time(text), *expected, "is_date_time on {text:?}");
            // What the schema takes, chrono's RFC 3339 parse takes too (the reverse is false).
            if *expected {
                assert!(DateTime::parse_from_rfc3339(text).is_ok(), "chrono on {text:?}");
            }
        }
        // Why chrono's own serde reading is not used: it takes what the schema refuses.
        assert!("2026-12-03 12:00:00Z".parse::<DateTime<Utc>>().is_ok());
        assert!("2026-12-03T12:00:00 UTC".parse::<DateTime<Utc>>().is_ok());
        assert!(!is_date_time("2026-12-03 12:00:00Z"));
    }

    #[test]
    fn the_fast_path_accepts_exactly_what_the_schema_accepts() {
        let document: Value = serde_json::from_str(EXAMPLE).unwrap();
        let cases = mutations(&document);
        assert!(cases.len() > 2_000, "{} cases", cases.len());
        let mut accepted = 0;
        let mut disagreements = Vec::new();
        for (name, text) in &cases {
            let schema = schema_accepts(text);
            accepted += usize::from(schema);
            let read = parse_snapshot(text);
            if read.is_ok() != schema {
                disagreements.push(format!("{name}: read {}, schema {schema}", read.is_ok()));
            }
            // A refusal always says something, by pointer.
            match read {
                Ok(_) => {}
                Err(SnapshotFileError::Invalid { errors }) => {
                    assert!(!errors.is_empty() && errors.len() <= MAX_ERRORS, "{name}");
                    assert!(errors.iter().all(|e| e.starts_with('/')), "{name}: {errors:?}");
                }
                Err(SnapshotFileError::NotJson { .. }) => {
                    assert!(serde_json::from_str::<Value>(text).is_err(), "{name}");
                }
            }
        }
        assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
        // Both sides of the equivalence are exercised.
        assert!(accepted > 100 && accepted < cases.len() / 2, "{accepted} of {}", cases.len());
    }

    #[test]
    fn the_example_reads_back_to_the_same_document() {
        let snapshot = parse_snapshot(EXAMPLE).unwrap();
        let document: Value = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(serde_json::to_value(&snapshot).unwrap(), document);
        // Every optional part is present, so the round trip covers every field.
        assert!(snapshot.skipped_since.is_some() && snapshot.subscription.plan == "ENTERPRISE");
        assert!(snapshot.skipped_issues.iter().any(|i| i.create_time.is_none()));
        assert!(snapshot.skipped_issues.iter().any(|i| i.create_time.is_some()));
        assert!(snapshot.projects.iter().any(|p| !p.webhooks.is_empty()));
        let conditions = snapshot.projects.iter().flat_map(|p| &p.iam_policy.bindings);
        assert!(conditions.clone().any(|b| !b.condition.expression.is_empty()));
        assert!(snapshot.groups.iter().any(|g| !g.members.is_empty()));
        // What cabgate writes, it reads back.
        assert_eq!(parse_snapshot(&snapshot.to_pretty_json()).unwrap(), snapshot);
    }

    #[test]
    fn a_refused_file_is_named_by_pointer_as_the_schema_names_it() {
        let mut document: Value = serde_json::from_str(EXAMPLE).unwrap();
        document["environments"][0]["rolloutPolicy"]["automatic"] = "yes".into();
        let Err(SnapshotFileError::Invalid { errors }) = parse_snapshot(&document.to_string())
        else {
            panic!("accepted");
        };
        assert_eq!(
            errors,
            [r#"/environments/0/rolloutPolicy/automatic: "yes" is not of type "boolean""#]
        );

        let Err(SnapshotFileError::NotJson { line, column, .. }) =
            parse_snapshot("{\n  \"version\": }")
        else {
            panic!("accepted");
        };
        assert_eq!((line, column), (2, 14));
    }

    #[test]
    fn the_rust_check_names_the_places_the_schema_names() {
        let mut snapshot = parse_snapshot(EXAMPLE).unwrap();
        snapshot.workspace = "acme".into();
        snapshot.approval_rules[1].source = "ANY".into();
        snapshot.approval_rules[0].template.flow.roles.push("cab".into());
        snapshot.projects[1].iam_policy.bindings[0].role = "owner".into();
        snapshot.environments[0].rollout_policy.roles = vec!["roles/x".into(), "x".into()];
        snapshot.skipped_issues[1].name = "projects/payments/plans/1".into();
        snapshot.skipped_issues[1].approval_status = "DONE".into();
        let problems = check(&snapshot);
        let pointers: Vec<&str> = problems.iter().map(|p| p.split_once(": ").unwrap().0).collect();
        assert_eq!(
            pointers,
            [
                "/workspace",
                "/approvalRules/0/template/flow/roles/1",
                "/approvalRules/1/source",
                "/projects/1/iamPolicy/bindings/0/role",
                "/environments/0/rolloutPolicy/roles/1",
                "/skippedIssues/1/name",
                "/skippedIssues/1/approvalStatus",
            ]
        );
        assert_eq!(problems[0], r#"/workspace: "acme" does not match "^workspaces/""#);
        let mut by_schema: Vec<String> = super::super::schema_errors(&snapshot.to_value(), 20)
            .unwrap()
            .iter()
            .map(|e| e.split_once(": ").unwrap().0.to_owned())
            .collect();
        by_schema.sort();
        let mut pointers: Vec<String> = pointers.iter().map(|p| (*p).to_owned()).collect();
        pointers.sort();
        assert_eq!(by_schema, pointers);
    }

    /// The one deliberate divergence: a key twice in one object. A `Value` keeps the last one and
    /// the schema never sees the first; the typed reader refuses the file, since two values for
    /// one fact make the evidence ambiguous. The schema finds nothing, so the message is serde's.
    #[test]
    fn a_duplicate_key_is_refused_though_the_schema_cannot_see_it() {
        let text = EXAMPLE.replacen("\"version\": 1,", "\"version\": 1, \"version\": 1,", 1);
        assert!(schema_accepts(&text));
        let Err(SnapshotFileError::Invalid { errors }) = parse_snapshot(&text) else {
            panic!("accepted");
        };
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("/: duplicate field `version` (line 2, column"),
            "{errors:?}"
        );
    }
}
