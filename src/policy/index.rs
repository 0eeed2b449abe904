//! Facts computed in Rust before any Rego runs: `input.index`.
//!
//! regorus evaluates a comprehension nested in another over big inputs in quadratic time, and Rego
//! has neither recursion nor CEL. So whatever needs a glob, a CEL evaluation, a graph walk, a time
//! comparison or a join is computed here, once, into maps keyed for O(1) lookups. The policies then
//! make every decision with one linear pass over the live data. The index states facts, never
//! verdicts: which binding conditions are expired, not whether a holder is allowed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSetBuilder};
use serde_json::{Map, Value, json};

/// Builds `input.index` from the normalized spec document and the live snapshot.
pub fn build(spec: &Value, live: Option<&Value>, now: DateTime<Utc>) -> Value {
    let mut index = Map::new();
    index.insert("strings".into(), strings(spec));
    index.insert("workflow".into(), workflow(spec));
    if let Some(live) = live.filter(|l| !l.is_null()) {
        let permission = spec
            .pointer("/lockdown/permission")
            .and_then(Value::as_str)
            .unwrap_or("bb.taskRuns.create");
        index.insert("governedProjects".into(), governed_projects(spec, live));
        index.insert("permissionRoles".into(), permission_roles(live, permission));
        index.insert("groups".into(), groups(live));
        index.insert("conditions".into(), conditions(live, now));
        index.insert("environments".into(), environments(live));
        index.insert("specEnvironments".into(), spec_environments(spec));
        index.insert("rolloutRoles".into(), rollout_roles(spec, live));
        let (cutoff, skipped) = skipped_issues(spec, live, now);
        index.insert("lookbackCutoff".into(), cutoff);
        index.insert("skippedIssues".into(), skipped);
    }
    Value::Object(index)
}

/// `projects/{id}` → true for every live project the spec governs (`bytebase.projects`: ids or
/// globs, `*` = all). A pattern that is not a valid glob is matched literally.
fn governed_projects(spec: &Value, live: &Value) -> Value {
    let patterns: Vec<&str> = spec
        .pointer("/bytebase/projects")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut builder = GlobSetBuilder::new();
    let mut literals = BTreeSet::new();
    for pattern in &patterns {
        let id = pattern.strip_prefix("projects/").unwrap_or(pattern);
        match Glob::new(id) {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(_) => {
                literals.insert(id.to_owned());
            }
        }
    }
    let set = builder.build().unwrap_or_else(|_| globset::GlobSet::empty());
    let mut governed = Map::new();
    for project in array(live, "/projects") {
        let Some(name) = project.get("name").and_then(Value::as_str) else { continue };
        let id = name.strip_prefix("projects/").unwrap_or(name);
        if set.is_match(id) || literals.contains(id) {
            governed.insert(name.to_owned(), Value::Bool(true));
        }
    }
    Value::Object(governed)
}

/// `roles/{id}` → true for every role (built-in or custom) whose permissions include the
/// lockdown permission.
fn permission_roles(live: &Value, permission: &str) -> Value {
    let mut roles = Map::new();
    for role in array(live, "/roles") {
        let Some(name) = role.get("name").and_then(Value::as_str) else { continue };
        let holds = role
            .get("permissions")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().any(|x| x.as_str() == Some(permission)));
        if holds {
            roles.insert(name.to_owned(), Value::Bool(true));
        }
    }
    Value::Object(roles)
}

/// `group:{email}` → the principals of its members, in IAM member form.
fn groups(live: &Value) -> Value {
    let mut groups = Map::new();
    for group in array(live, "/groups") {
        let email = group.get("email").and_then(Value::as_str).or_else(|| {
            group.get("name").and_then(Value::as_str).and_then(|n| n.strip_prefix("groups/"))
        });
        let Some(email) = email else { continue };
        let members: Vec<Value> = group
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("member").and_then(Value::as_str))
            .map(|m| Value::String(principal(m)))
            .collect();
        groups.insert(format!("group:{email}"), Value::Array(members));
    }
    Value::Object(groups)
}

/// A group member (`users/{email}`) in IAM member form: service accounts and workload identities
/// are told apart by their email's domain, as Bytebase does.
pub fn principal(member: &str) -> String {
    let email = member.strip_prefix("users/").unwrap_or(member);
    if email.contains(':') {
        return email.to_owned();
    }
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    if domain == "service.bytebase.com" || domain.ends_with(".service.bytebase.com") {
        format!("serviceAccount:{email}")
    } else if domain == "workload.bytebase.com" || domain.ends_with(".workload.bytebase.com") {
        format!("workloadIdentity:{email}")
    } else {
        format!("user:{email}")
    }
}

/// Every distinct binding condition expression → what it means at `now`:
/// `{"expired": bool, "residual": bool, "error": string?}`. Keyed by the expression text, since
/// thousands of bindings share a handful of conditions.
fn conditions(live: &Value, now: DateTime<Utc>) -> Value {
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let workspace = array(live, "/workspaceIamPolicy/bindings");
    let projects = array(live, "/projects")
        .iter()
        .flat_map(|p| p.pointer("/iamPolicy/bindings").and_then(Value::as_array).into_iter())
        .flatten();
    for binding in workspace.iter().chain(projects) {
        let expression = condition_text(binding);
        if !seen.contains_key(expression) {
            let fact = condition_fact(expression, now);
            seen.insert(expression.to_owned(), fact);
        }
    }
    Value::Object(seen.into_iter().collect())
}

/// The condition expression of a binding; `""` when there is none.
fn condition_text(binding: &Value) -> &str {
    binding.pointer("/condition/expression").and_then(Value::as_str).unwrap_or("")
}

/// Evaluates one IAM condition as Bytebase does for `bb.taskRuns.create`: only `request.time` is
/// known; a condition that still depends on `resource.*` is residual and grants.
pub fn condition_fact(expression: &str, now: DateTime<Utc>) -> Value {
    let text = expression.trim();
    if text.is_empty() {
        return json!({"expired": false, "residual": false});
    }
    let program = match cel::Program::compile(text) {
        Ok(program) => program,
        Err(e) => {
            let error = format!("not understood ({}); the binding is counted", first_line(&e));
            return json!({"expired": false, "residual": false, "error": error});
        }
    };
    let residual = program.references().has_variable("resource");
    let mut context = cel::Context::default();
    let time = cel::Value::Timestamp(now.fixed_offset());
    let request = HashMap::from([("time", time)]);
    context.add_variable_from_value("request", request);
    match program.execute(&context) {
        Ok(cel::Value::Bool(false)) => json!({"expired": true, "residual": residual}),
        Ok(cel::Value::Bool(true)) => json!({"expired": false, "residual": residual}),
        // Undecided without `resource.*`: Bytebase keeps the binding and so do we.
        Err(_) if residual => json!({"expired": false, "residual": true}),
        Ok(other) => {
            let error = format!("evaluates to {other:?}, not a boolean; the binding is counted");
            json!({"expired": false, "residual": residual, "error": error})
        }
        Err(e) => {
            let error = format!("cannot be evaluated ({e}); the binding is counted");
            json!({"expired": false, "residual": residual, "error": error})
        }
    }
}

fn first_line(error: &impl std::fmt::Display) -> String {
    error.to_string().lines().next().unwrap_or("").trim().to_owned()
}

/// Live environment id → `{name, automatic, roles}`.
fn environments(live: &Value) -> Value {
    let mut environments = Map::new();
    for env in array(live, "/environments") {
        let name = env.get("name").and_then(Value::as_str).unwrap_or("");
        let id = env
            .get("id")
            .and_then(Value::as_str)
            .or_else(|| name.strip_prefix("environments/"))
            .unwrap_or(name);
        let automatic =
            env.pointer("/rolloutPolicy/automatic").and_then(Value::as_bool).unwrap_or(false);
        let roles = env.pointer("/rolloutPolicy/roles").cloned().unwrap_or(json!([]));
        let name = if name.is_empty() { format!("environments/{id}") } else { name.to_owned() };
        let fact = json!({"name": name, "automatic": automatic, "roles": roles});
        environments.insert(id.to_owned(), fact);
    }
    Value::Object(environments)
}

/// Spec environment id → true (for the undeclared-environment check).
fn spec_environments(spec: &Value) -> Value {
    let ids = spec.get("environments").and_then(Value::as_object);
    Value::Object(ids.into_iter().flatten().map(|(k, _)| (k.clone(), Value::Bool(true))).collect())
}

/// `roles/{id}` → the ids of the governed environments whose live rollout policy lists the role:
/// the holders of these roles are extra runners there.
fn rollout_roles(spec: &Value, live: &Value) -> Value {
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for env in array(live, "/environments") {
        let Some(id) = env.get("id").and_then(Value::as_str) else { continue };
        let governed = spec
            .pointer(&format!("/environments/{}/governed", pointer_escape(id)))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !governed {
            continue;
        }
        let listed = env.pointer("/rolloutPolicy/roles").and_then(Value::as_array);
        for role in listed.into_iter().flatten().filter_map(Value::as_str) {
            roles.entry(role.to_owned()).or_default().insert(id.to_owned());
        }
    }
    let map = roles.into_iter().map(|(role, envs)| (role, json!(envs)));
    Value::Object(map.collect())
}

/// `now` minus `alerts.skippedApproval.lookback` (7 days when it does not parse).
pub fn lookback_cutoff(spec: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
    let lookback = spec
        .pointer("/alerts/skippedApproval/lookback")
        .and_then(Value::as_str)
        .and_then(|l| humantime::parse_duration(l).ok())
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .unwrap_or_else(|| chrono::Duration::days(7));
    now - lookback
}

/// True when a SKIPPED issue of the snapshot was created or updated at or after `cutoff`. An
/// issue without a parsable time is kept: missing a bypass is worse than a stale alert.
pub fn in_window(issue: &Value, cutoff: DateTime<Utc>) -> bool {
    let latest = ["createTime", "updateTime"]
        .iter()
        .filter_map(|k| issue.get(*k).and_then(Value::as_str))
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .max();
    latest.is_none_or(|t| t >= cutoff)
}

/// The lookback cutoff (RFC 3339) and the SKIPPED issues created or updated since then.
fn skipped_issues(spec: &Value, live: &Value, now: DateTime<Utc>) -> (Value, Value) {
    let cutoff = lookback_cutoff(spec, now);
    let mut issues = Vec::new();
    for issue in array(live, "/skippedIssues") {
        let status = issue.get("approvalStatus").and_then(Value::as_str).unwrap_or("SKIPPED");
        if status != "SKIPPED" || !in_window(issue, cutoff) {
            continue;
        }
        let name = issue.get("name").and_then(Value::as_str).unwrap_or("");
        let project = name.split('/').take(2).collect::<Vec<_>>().join("/");
        let mut fact = json!({"name": name, "project": project});
        for key in ["title", "creator"] {
            if let Some(v) = issue.get(key).and_then(Value::as_str) {
                fact[key] = Value::String(v.to_owned());
            }
        }
        issues.push(fact);
    }
    (Value::String(cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)), Value::Array(issues))
}

/// Every string leaf of the spec: `{path, key, value, entropy}`. `key` is the nearest object key
/// above the leaf; `entropy` is the Shannon entropy in bits per character, rounded down to two
/// decimals so every Rego engine compares the same number.
fn strings(spec: &Value) -> Value {
    let mut out = Vec::new();
    walk_strings(spec, String::new(), "", &mut out);
    Value::Array(out)
}

fn walk_strings(value: &Value, path: String, key: &str, out: &mut Vec<Value>) {
    match value {
        Value::String(text) => {
            let entropy = (shannon_entropy(text) * 100.0).floor() / 100.0;
            out.push(json!({"path": path, "key": key, "value": text, "entropy": entropy}));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_strings(item, format!("{path}/{i}"), key, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk_strings(v, format!("{path}/{}", pointer_escape(k)), k, out);
            }
        }
        _ => {}
    }
}

fn shannon_entropy(text: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let mut total = 0usize;
    for c in text.chars() {
        *counts.entry(c).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    counts.values().map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// RFC 6901 escaping of one pointer segment.
pub fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The workflow as the policies need it: transitions with action kinds and `when` values as lists
/// of strings, and each state's reachability from `initial` and to a final state.
fn workflow(spec: &Value) -> Value {
    let transitions: Vec<Transition> = array(spec, "/workflow/transitions")
        .iter()
        .enumerate()
        .map(|(i, t)| Transition::from_json(i, t))
        .collect();
    let initial = spec.pointer("/workflow/initial").and_then(Value::as_str).unwrap_or("new");
    let finals: BTreeSet<String> = array(spec, "/workflow/final")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let states = reachability(&transitions, initial, &finals);
    let listed: Vec<Value> = transitions.iter().map(Transition::to_json).collect();
    json!({"transitions": listed, "states": states})
}

struct Transition {
    index: usize,
    name: Option<String>,
    from: String,
    to: String,
    when: Map<String, Value>,
    actions: Vec<String>,
}

impl Transition {
    fn from_json(index: usize, t: &Value) -> Self {
        let text = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let mut when = Map::new();
        for (fact, values) in t.get("when").and_then(Value::as_object).into_iter().flatten() {
            let list: Vec<Value> = match values {
                Value::Array(items) => items.iter().map(scalar_text).collect(),
                one => vec![scalar_text(one)],
            };
            when.insert(fact.clone(), Value::Array(list));
        }
        let actions = array(t, "/actions").iter().filter_map(action_kind).collect();
        let name = t.get("name").and_then(Value::as_str).map(str::to_owned);
        Transition { index, name, from: text("from"), to: text("to"), when, actions }
    }

    fn to_json(&self) -> Value {
        json!({
            "index": self.index,
            "name": self.name.clone().unwrap_or_else(|| format!("#{}", self.index)),
            "from": self.from,
            "to": self.to,
            "when": self.when,
            "actions": self.actions,
        })
    }
}

/// A `when` value as text: `true`, `PENDING`, …
fn scalar_text(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// An action written as `run_tasks`, `{run_tasks: {…}}` or serialized as `{kind, args}`.
fn action_kind(action: &Value) -> Option<String> {
    match action {
        Value::String(kind) => Some(kind.clone()),
        Value::Object(map) => match map.get("kind") {
            Some(Value::String(kind)) => Some(kind.clone()),
            _ if map.len() == 1 => map.keys().next().cloned(),
            _ => None,
        },
        _ => None,
    }
}

/// Each state → `{reachable, canFinish, final}`. `from: "*"` leaves any non-final state.
fn reachability(transitions: &[Transition], initial: &str, finals: &BTreeSet<String>) -> Value {
    let mut states: BTreeSet<String> = finals.clone();
    states.insert(initial.to_owned());
    for t in transitions {
        if t.from != "*" {
            states.insert(t.from.clone());
        }
        states.insert(t.to.clone());
    }
    let sources = |t: &Transition| -> Vec<String> {
        if t.from == "*" {
            states.iter().filter(|s| !finals.contains(*s)).cloned().collect()
        } else {
            vec![t.from.clone()]
        }
    };
    let mut edges: Vec<(String, String)> = Vec::new();
    for t in transitions {
        for from in sources(t) {
            edges.push((from, t.to.clone()));
        }
    }
    let forward = closure(&edges, [initial.to_owned()].into(), false);
    let backward = closure(&edges, finals.clone(), true);
    let map = states.iter().map(|s| {
        let fact = json!({
            "reachable": forward.contains(s),
            "canFinish": backward.contains(s),
            "final": finals.contains(s),
        });
        (s.clone(), fact)
    });
    Value::Object(map.collect())
}

fn closure(edges: &[(String, String)], start: BTreeSet<String>, reverse: bool) -> BTreeSet<String> {
    let mut seen = start.clone();
    let mut queue: Vec<String> = start.into_iter().collect();
    while let Some(state) = queue.pop() {
        for (from, to) in edges {
            let (a, b) = if reverse { (to, from) } else { (from, to) };
            if *a == state && seen.insert(b.clone()) {
                queue.push(b.clone());
            }
        }
    }
    seen
}

fn array<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value.pointer(pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn expired_time_condition_is_dropped_and_resource_condition_kept() {
        let now = at("2026-12-03T12:00:00Z");
        let past = condition_fact(r#"request.time < timestamp("2026-01-01T00:00:00Z")"#, now);
        assert_eq!(past["expired"], true);
        let future = condition_fact(r#"request.time < timestamp("2027-01-01T00:00:00Z")"#, now);
        assert_eq!(future["expired"], false);
        let scoped = condition_fact(r#"resource.database == "instances/i/databases/d""#, now);
        assert_eq!(scoped, json!({"expired": false, "residual": true}));
        let both = condition_fact(
            r#"request.time < timestamp("2026-01-01T00:00:00Z") && resource.environment_id == "x""#,
            now,
        );
        assert_eq!(both["expired"], true);
        let broken = condition_fact("request.time <", now);
        assert_eq!(broken["expired"], false);
        assert!(broken["error"].as_str().unwrap().contains("not understood"));
        assert_eq!(condition_fact("", now), json!({"expired": false, "residual": false}));
    }

    #[test]
    fn group_members_become_iam_principals() {
        assert_eq!(principal("users/a@x.com"), "user:a@x.com");
        assert_eq!(
            principal("users/bot@service.bytebase.com"),
            "serviceAccount:bot@service.bytebase.com"
        );
        assert_eq!(
            principal("users/bot@p1.service.bytebase.com"),
            "serviceAccount:bot@p1.service.bytebase.com"
        );
        assert_eq!(
            principal("users/ci@workload.bytebase.com"),
            "workloadIdentity:ci@workload.bytebase.com"
        );
    }

    #[test]
    fn governed_projects_match_ids_and_globs() {
        let spec = json!({"bytebase": {"projects": ["payments", "ledger-*"]}});
        let live = json!({"projects": [
            {"name": "projects/payments"}, {"name": "projects/ledger-eu"}, {"name": "projects/hr"}
        ]});
        let governed = governed_projects(&spec, &live);
        assert_eq!(governed, json!({"projects/payments": true, "projects/ledger-eu": true}));
        let all = governed_projects(&json!({"bytebase": {"projects": ["*"]}}), &live);
        assert_eq!(all.as_object().unwrap().len(), 3);
    }

    #[test]
    fn reachability_follows_wildcards() {
        let spec = json!({"workflow": {"initial": "new", "final": ["done", "canceled"], "transitions": [
            {"from": "new", "to": "waiting", "actions": ["create_change"]},
            {"from": "waiting", "to": "done", "actions": [{"kind": "approve_issue", "args": {}}]},
            {"from": "*", "to": "canceled"},
            {"from": "orphan", "to": "stuck"}
        ]}});
        let wf = workflow(&spec);
        let states = &wf["states"];
        assert_eq!(states["waiting"]["reachable"], true);
        assert_eq!(states["canceled"]["reachable"], true);
        assert_eq!(states["orphan"]["reachable"], false);
        // `*` lets a stuck state cancel, so it can finish.
        assert_eq!(states["stuck"]["canFinish"], true);
        assert_eq!(wf["transitions"][1]["actions"], json!(["approve_issue"]));
    }

    #[test]
    fn skipped_issues_outside_the_lookback_are_dropped() {
        let spec = json!({"alerts": {"skippedApproval": {"lookback": "7d"}}});
        let live = json!({"skippedIssues": [
            {"name": "projects/p/issues/1", "approvalStatus": "SKIPPED", "createTime": "2026-12-01T00:00:00Z"},
            {"name": "projects/p/issues/2", "approvalStatus": "SKIPPED", "createTime": "2026-11-01T00:00:00Z"}
        ]});
        let (cutoff, issues) = skipped_issues(&spec, &live, at("2026-12-03T12:00:00Z"));
        assert_eq!(cutoff, "2026-11-26T12:00:00Z");
        assert_eq!(issues.as_array().unwrap().len(), 1);
        assert_eq!(issues[0]["project"], "projects/p");
    }
}
