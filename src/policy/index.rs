//! Facts computed in Rust before any Rego runs: `input.index`.
//!
//! regorus evaluates a comprehension nested in another over big inputs in quadratic time, and Rego
//! has neither recursion nor CEL. So whatever needs a glob, a CEL evaluation, a graph walk, a time
//! comparison or a join is computed here, once, into maps keyed for O(1) lookups. The policies then
//! make every decision with one linear pass over the live data. The index states facts, never
//! verdicts: which binding conditions are expired, not whether a holder is allowed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, DurationRound, Utc};
use globset::GlobSet;
use serde_json::{Map, Value, json};

use crate::live::{BindingFacts, EnvironmentFacts, SkippedIssue, Snapshot};

/// Builds `input.index` from the normalized spec document and the live snapshot.
pub fn build(spec: &Value, live: Option<&Snapshot>, now: DateTime<Utc>) -> Value {
    let mut index = Map::new();
    index.insert("strings".into(), strings(spec));
    index.insert("workflow".into(), workflow(spec));
    if let Some(live) = live {
        let permission = spec
            .pointer("/lockdown/permission")
            .and_then(Value::as_str)
            .unwrap_or("bb.taskRuns.create");
        let (governed, unmatched_patterns) = match_projects(spec, live);
        let permission_roles = permission_roles(live, permission);
        let groups = groups(live);
        let conditions = conditions(live, now);
        let rollout_roles = rollout_roles(spec, live);
        let asked: BTreeSet<&str> =
            permission_roles.keys().chain(rollout_roles.keys()).map(String::as_str).collect();
        let facts = Facts { live, governed: &governed, groups: &groups, conditions: &conditions };
        index.insert("grants".into(), grants(&facts, &asked));
        let cutoff = lookback_cutoff(spec, now);
        index.insert("skippedIssues".into(), skipped_issues(live, cutoff));
        index.insert("lookbackCutoff".into(), json!(cutoff.to_rfc3339_opts(SECONDS, true)));
        index.insert("governedProjects".into(), json!(governed));
        index.insert("unmatchedProjectPatterns".into(), unmatched_patterns);
        index.insert("permissionRoles".into(), json!(permission_roles));
        index.insert("groups".into(), json!(groups));
        index.insert("conditions".into(), json!(conditions));
        index.insert("environments".into(), environments(live));
        index.insert("specEnvironments".into(), spec_environments(spec));
        index.insert("rolloutRoles".into(), json!(rollout_roles));
    }
    Value::Object(index)
}

const SECONDS: chrono::SecondsFormat = chrono::SecondsFormat::Secs;

/// What the grants are computed from.
struct Facts<'a> {
    live: &'a Snapshot,
    governed: &'a BTreeMap<String, bool>,
    groups: &'a BTreeMap<String, Vec<String>>,
    conditions: &'a BTreeMap<String, Value>,
}

/// `roles/{id}` → every grant of that role that is in force, for the roles a policy asks about
/// (those carrying the lockdown permission and those of governed rollout policies):
/// `{principal, member, role, resource, via}`.
///
/// Workspace bindings count everywhere; project bindings count in governed projects. A binding
/// whose condition has expired at `now` grants nothing (one that holds again later counts, with
/// a note in `via`); a `resource.*` condition does not narrow a grant (Bytebase checks the
/// permission without a resource), so it counts. A `group:` member is expanded into its
/// members, each a grant of its own with the group in `via`; `member` keeps the principal as the
/// binding names it, so a policy can accept a group as a whole. Whether a grant is acceptable is
/// the policies' call (`lockdown.allow`), never the index's.
fn grants(facts: &Facts<'_>, asked: &BTreeSet<&str>) -> Value {
    let mut grants: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let workspace = &facts.live.workspace;
    let mut add = |binding: &BindingFacts, resource: &str| {
        let Some(role) = asked.get(binding.role.as_str()) else { return };
        let condition = facts.conditions.get(&binding.condition.expression);
        if condition.is_some_and(|c| c["expired"] == true) {
            return;
        }
        let note = condition.and_then(|c| match (c["error"].as_str(), c["later"].as_str()) {
            (Some(error), _) => Some(format!("condition {error}")),
            (None, Some(later)) => {
                Some(format!("condition not in force at the check, but at {later}"))
            }
            (None, None) => None,
        });
        let place = format!("{resource}:getIamPolicy");
        for member in &binding.members {
            let expanded = member.starts_with("group:").then(|| facts.groups.get(member));
            let list = grants.entry(role).or_default();
            match expanded.flatten() {
                Some(principals) => {
                    for principal in principals {
                        let via = [role, place.as_str(), member.as_str()];
                        list.push(grant(principal, member, role, resource, &via, &note));
                    }
                }
                None => {
                    let via = [role, place.as_str()];
                    list.push(grant(member, member, role, resource, &via, &note));
                }
            }
        }
    };
    for binding in &facts.live.workspace_iam_policy.bindings {
        add(binding, workspace);
    }
    for project in facts.live.projects.iter().filter(|p| facts.governed.contains_key(&p.name)) {
        for binding in &project.iam_policy.bindings {
            add(binding, &project.name);
        }
    }
    json!(grants)
}

fn grant(
    principal: &str,
    member: &str,
    role: &str,
    resource: &str,
    via: &[&str],
    note: &Option<String>,
) -> Value {
    let mut via: Vec<&str> = via.to_vec();
    via.extend(note.as_deref());
    json!({"principal": principal, "member": member, "role": role, "resource": resource, "via": via})
}

/// The live projects the spec governs (`bytebase.projects`: ids or globs, `*` = all), as
/// `projects/{id}` → true, and the entries that match no live project, as `{pattern, path}` (the
/// entry's JSON Pointer): a typo there governs nothing, and nothing else would say so. Matching
/// is the live read's ([`crate::live::governed_matcher`]); a pattern that is not a glob never
/// gets here, since loading the spec refuses it.
fn match_projects(spec: &Value, live: &Snapshot) -> (BTreeMap<String, bool>, Value) {
    let patterns: Vec<String> = spec
        .pointer("/bytebase/projects")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let set = crate::live::governed_matcher(&patterns).unwrap_or_else(|_| GlobSet::empty());
    let mut matched = vec![false; patterns.len()];
    let mut governed = BTreeMap::new();
    for project in &live.projects {
        let hits = set.matches(project.name.strip_prefix("projects/").unwrap_or(&project.name));
        if !hits.is_empty() {
            governed.insert(project.name.clone(), true);
        }
        for hit in hits {
            matched[hit] = true;
        }
    }
    let unmatched = patterns
        .iter()
        .zip(matched)
        .enumerate()
        .filter(|(_, (_, matched))| !matched)
        .map(|(i, (pattern, _))| json!({"pattern": pattern, "path": format!("/bytebase/projects/{i}")}))
        .collect();
    (governed, Value::Array(unmatched))
}

/// `roles/{id}` → true for every role (built-in or custom) whose permissions include the
/// lockdown permission.
fn permission_roles(live: &Snapshot, permission: &str) -> BTreeMap<String, bool> {
    let holding = live.roles.iter().filter(|r| r.permissions.iter().any(|p| p == permission));
    holding.map(|role| (role.name.clone(), true)).collect()
}

/// `group:{email}` → the principals of its members, in IAM member form, sorted and distinct.
///
/// A group listed twice (the schema does not forbid it) holds the members of every listing: a
/// second, emptier listing must not hide the members of the first.
fn groups(live: &Snapshot) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in &live.groups {
        let email = match group.email.as_str() {
            "" => group.name.strip_prefix("groups/").unwrap_or(&group.name),
            email => email,
        };
        let members = group.members.iter().map(|m| principal(&m.member));
        groups.entry(format!("group:{email}")).or_default().extend(members);
    }
    groups.into_iter().map(|(group, members)| (group, members.into_iter().collect())).collect()
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
/// `{"expired": bool, "residual": bool, "error": string?, "later": string?}`. Keyed by the
/// expression text, since thousands of bindings share a handful of conditions. The later times
/// tried for conditions false at `now` share one budget of evaluations ([`PROBE_BUDGET`]).
fn conditions(live: &Snapshot, now: DateTime<Utc>) -> BTreeMap<String, Value> {
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut budget = PROBE_BUDGET;
    let workspace = live.workspace_iam_policy.bindings.iter();
    let projects = live.projects.iter().flat_map(|p| p.iam_policy.bindings.iter());
    for binding in workspace.chain(projects) {
        let expression = &binding.condition.expression;
        if !seen.contains_key(expression) {
            let fact = condition_fact(expression, now, &mut budget);
            seen.insert(expression.clone(), fact);
        }
    }
    seen
}

/// How many evaluations one check may spend on the later times of conditions false at the check
/// (about a second). A handful of distinct conditions needs a few thousand each; a snapshot with
/// thousands of distinct calendar conditions would otherwise take minutes. A condition left
/// undecided when it runs out is counted, with an `error` saying so.
const PROBE_BUDGET: usize = 1_500_000;

/// Evaluates one IAM condition as Bytebase does for `bb.taskRuns.create`: only `request.time` is
/// known; a condition that still depends on `resource.*` is residual and grants.
///
/// A condition false at `now` has expired only if it stays false: a window that opens later
/// (`request.time > timestamp(…)`) or recurs (`getHours()`, `getDayOfWeek()`) grants again with no
/// change in Bytebase, so such a binding counts, with the first time found in force as `later`.
/// At most `budget` evaluations are spent on later times.
fn condition_fact(expression: &str, now: DateTime<Utc>, budget: &mut usize) -> Value {
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
    let mut at = Evaluator { program: &program, context: cel::Context::default() };
    match at.time(now) {
        Ok(cel::Value::Bool(false)) => match later_in_force(&mut at, text, residual, now, budget) {
            Later::Never => json!({"expired": true, "residual": residual}),
            Later::At(later) => {
                let later = later.to_rfc3339_opts(SECONDS, true);
                json!({"expired": false, "residual": residual, "later": later})
            }
            Later::Undecided => {
                let error = "false at the check, and the check's budget of later times to try \
                             was spent before one was found in force; the binding is counted";
                json!({"expired": false, "residual": residual, "error": error})
            }
        },
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

/// One compiled condition, evaluated at chosen values of `request.time`.
struct Evaluator<'a> {
    program: &'a cel::Program,
    context: cel::Context<'a, 'a>,
}

impl Evaluator<'_> {
    fn time(&mut self, time: DateTime<Utc>) -> Result<cel::Value, cel::ExecutionError> {
        let request = HashMap::from([("time", cel::Value::Timestamp(time.fixed_offset()))]);
        self.context.add_variable_from_value("request", request);
        self.program.execute(&self.context)
    }
}

/// What [`later_in_force`] found.
enum Later {
    Never,
    At(DateTime<Utc>),
    Undecided,
}

/// The first time found after `now` at which a condition false at `now` holds (or is left
/// undecided by `resource.*`, which grants). The times tried, up to the end of CEL's calendar
/// (9999-12-31): each timestamp the expression names and the second after it, and a century on.
/// When it reads a calendar field of `request.time` (`getHours()`, …), also every whole hour of
/// the 8 days after the check and after each of those timestamps (every minute if it reads
/// `getMinutes()` or finer), for 400 days instead of 8 if it reads a field that does not recur
/// weekly (`getDayOfMonth()`, `getMonth()`, `getFullYear()`, …). A window written as an offset
/// from a timestamp (`timestamp(…) + duration(…)`) is only found when it stays open.
fn later_in_force(
    at: &mut Evaluator<'_>,
    text: &str,
    residual: bool,
    now: DateTime<Utc>,
    budget: &mut usize,
) -> Later {
    let end = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999999Z").unwrap();
    let mut points: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    for literal in timestamp_literals(text) {
        points.extend([literal, literal + chrono::Duration::seconds(1)]);
    }
    points.insert(now + chrono::Duration::days(36_525));
    points.retain(|t| *t > now && *t <= end);
    let mut holds = |t: DateTime<Utc>| match at.time(t) {
        Ok(cel::Value::Bool(holds)) => holds,
        Err(_) => residual,
        Ok(_) => false,
    };
    let mut found: Option<DateTime<Utc>> = None;
    let spend = |budget: &mut usize| {
        *budget = budget.checked_sub(1)?;
        Some(())
    };
    for t in &points {
        if spend(budget).is_none() {
            return Later::Undecided;
        }
        if holds(*t) {
            found = Some(*t);
            break;
        }
    }
    if text.contains(".get") {
        let fine = ["getMinutes", "getSeconds", "getMilliseconds"].iter().any(|f| text.contains(f));
        let step = if fine { chrono::Duration::minutes(1) } else { chrono::Duration::hours(1) };
        let weekly = ["getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate"];
        let span = if weekly.iter().any(|f| text.contains(f)) { 400 } else { 8 };
        let span = chrono::Duration::days(span);
        let anchors = std::iter::once(now).chain(points.iter().copied().filter(|t| {
            found.is_none_or(|found| t < &found) && *t < now + chrono::Duration::days(36_525)
        }));
        for anchor in anchors.collect::<BTreeSet<_>>() {
            // Whole steps: a window of hours (in any time zone, all offsets being whole
            // quarters of an hour) contains a whole UTC hour, one of minutes a whole minute.
            let start = anchor.duration_trunc(step).unwrap_or(anchor);
            let mut t = start + step;
            while t <= anchor + span && t <= end && found.is_none_or(|found| t < found) {
                if t > now {
                    if spend(budget).is_none() {
                        return Later::Undecided;
                    }
                    if holds(t) {
                        found = Some(t);
                        break;
                    }
                }
                t += step;
            }
        }
    }
    found.map_or(Later::Never, Later::At)
}

/// The instants of the `timestamp("…")` literals of a CEL expression that parse as RFC 3339.
fn timestamp_literals(text: &str) -> Vec<DateTime<Utc>> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("timestamp(") {
        rest = rest[start + "timestamp(".len()..].trim_start();
        let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
            continue;
        };
        let Some(end) = rest[1..].find(quote) else { break };
        if let Ok(time) = DateTime::parse_from_rfc3339(&rest[1..1 + end]) {
            found.push(time.with_timezone(&Utc));
        }
        rest = &rest[1 + end..];
    }
    found
}

fn first_line(error: &impl std::fmt::Display) -> String {
    error.to_string().lines().next().unwrap_or("").trim().to_owned()
}

/// Live environment id → `{name, automatic, roles}`.
fn environments(live: &Snapshot) -> Value {
    let mut environments = Map::new();
    for env in &live.environments {
        let name = env.name.as_str();
        let id = environment_id(env);
        let policy = &env.rollout_policy;
        let name = if name.is_empty() { format!("environments/{id}") } else { name.to_owned() };
        let fact = json!({"name": name, "automatic": policy.automatic, "roles": policy.roles});
        environments.insert(id.to_owned(), fact);
    }
    Value::Object(environments)
}

/// An environment's id: `id`, or the tail of its name when `id` is empty. [`environments`] and
/// [`rollout_roles`] must agree on it.
fn environment_id(env: &EnvironmentFacts) -> &str {
    match env.id.as_str() {
        "" => env.name.strip_prefix("environments/").unwrap_or(&env.name),
        id => id,
    }
}

/// Spec environment id → true (for the undeclared-environment check).
fn spec_environments(spec: &Value) -> Value {
    let ids = spec.get("environments").and_then(Value::as_object);
    Value::Object(ids.into_iter().flatten().map(|(k, _)| (k.clone(), Value::Bool(true))).collect())
}

/// `roles/{id}` → the ids of the governed environments whose live rollout policy lists the role:
/// the holders of these roles are extra runners there.
fn rollout_roles(spec: &Value, live: &Snapshot) -> BTreeMap<String, BTreeSet<String>> {
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for env in &live.environments {
        let id = environment_id(env);
        let governed = spec
            .pointer(&format!("/environments/{}/governed", pointer_escape(id)))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !governed {
            continue;
        }
        for role in &env.rollout_policy.roles {
            roles.entry(role.clone()).or_default().insert(id.to_owned());
        }
    }
    roles
}

/// The start of the `alerts.skippedApproval.lookback` window ending at `now` (7 days when it
/// does not parse), as the live read computes it ([`crate::spec::window_start`]).
pub fn lookback_cutoff(spec: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
    let lookback = spec
        .pointer("/alerts/skippedApproval/lookback")
        .and_then(Value::as_str)
        .and_then(|l| humantime::parse_duration(l).ok())
        .unwrap_or(std::time::Duration::from_secs(7 * 24 * 3600));
    crate::spec::window_start(now, lookback)
}

/// True when a SKIPPED issue of the snapshot was created at or after `cutoff`. An issue without
/// a creation time is kept: missing a bypass is worse than a stale alert.
pub fn in_window(issue: &SkippedIssue, cutoff: DateTime<Utc>) -> bool {
    issue.create_time.is_none_or(|t| t >= cutoff)
}

/// `projects/{id}` → the SKIPPED issues of that project created since `cutoff`, as
/// `{name, project, title?, creator?}` (an empty title or creator is left out).
fn skipped_issues(live: &Snapshot, cutoff: DateTime<Utc>) -> Value {
    let mut issues: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for issue in &live.skipped_issues {
        if issue.approval_status != "SKIPPED" || !in_window(issue, cutoff) {
            continue;
        }
        let project = match issue.project.as_str() {
            "" => issue.name.split('/').take(2).collect::<Vec<_>>().join("/"),
            project => project.to_owned(),
        };
        let mut fact = json!({"name": issue.name, "project": project});
        for (key, value) in [("title", &issue.title), ("creator", &issue.creator)] {
            if !value.is_empty() {
                fact[key] = Value::String(value.clone());
            }
        }
        issues.entry(project).or_default().push(fact);
    }
    json!(issues)
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

    /// [`condition_fact`] with a whole budget.
    fn fact(expression: &str, now: DateTime<Utc>) -> Value {
        let mut budget = PROBE_BUDGET;
        condition_fact(expression, now, &mut budget)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn expired_time_condition_is_dropped_and_resource_condition_kept() {
        let now = at("2026-12-03T12:00:00Z");
        let past = fact(r#"request.time < timestamp("2026-01-01T00:00:00Z")"#, now);
        assert_eq!(past["expired"], true);
        let future = fact(r#"request.time < timestamp("2027-01-01T00:00:00Z")"#, now);
        assert_eq!(future["expired"], false);
        let scoped = fact(r#"resource.database == "instances/i/databases/d""#, now);
        assert_eq!(scoped, json!({"expired": false, "residual": true}));
        let both = fact(
            r#"request.time < timestamp("2026-01-01T00:00:00Z") && resource.environment_id == "x""#,
            now,
        );
        assert_eq!(both["expired"], true);
        let broken = fact("request.time <", now);
        assert_eq!(broken["expired"], false);
        assert!(broken["error"].as_str().unwrap().contains("not understood"));
        assert_eq!(fact("", now), json!({"expired": false, "residual": false}));
    }

    #[test]
    fn a_window_that_opens_after_the_check_is_not_expired() {
        let now = at("2026-12-03T12:00:00Z"); // a Thursday
        let hours = fact("request.time.getHours() >= 13", now);
        assert_eq!(
            hours,
            json!({"expired": false, "residual": false, "later": "2026-12-03T13:00:00Z"})
        );
        let friday = fact("request.time.getDayOfWeek() == 5", now);
        assert_eq!(friday["later"], "2026-12-04T00:00:00Z");
        let later = fact(r#"request.time > timestamp("2026-12-24T00:00:00+01:00")"#, now);
        assert_eq!(later["later"], "2026-12-23T23:00:01Z");
        let gone = fact("request.time.getFullYear() < 2026", now);
        assert_eq!(gone, json!({"expired": true, "residual": false}));
        assert_eq!(
            timestamp_literals(r#"timestamp( 'nope') || timestamp("2027-01-01T00:00:00Z")"#),
            [at("2027-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn later_times_stop_at_the_budget_and_count_the_binding() {
        let now = at("2026-12-03T12:00:00Z");
        let gone = "request.time.getFullYear() < 2026";
        let mut budget = 10;
        let spent = condition_fact(gone, now, &mut budget);
        assert_eq!(budget, 0);
        assert_eq!(spent["expired"], false);
        assert!(spent["error"].as_str().unwrap().contains("budget"), "{spent}");
        // Within the budget it is found expired, and a window of hours on one day of the month
        // or from a later year is found at a whole hour.
        assert_eq!(fact(gone, now)["expired"], true);
        let monthly = "request.time.getDayOfMonth() == 0 && request.time.getHours() == 2";
        assert_eq!(fact(monthly, now)["later"], "2027-01-01T02:00:00Z");
        let minutes = "request.time.getMinutes() >= 40";
        assert_eq!(fact(minutes, now)["later"], "2026-12-03T12:40:00Z");
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

    /// A snapshot from JSON, with every list the model requires defaulting to empty.
    fn snapshot(parts: Value) -> Snapshot {
        let mut document = json!({
            "version": 1, "source": "s", "takenAt": "2026-12-03T12:00:00Z",
            "workspace": "workspaces/w", "approvalFeature": true, "approvalRules": [],
            "roles": [], "workspaceIamPolicy": {"bindings": []}, "projects": [], "groups": [],
            "environments": [], "skippedIssues": []
        });
        for (key, value) in parts.as_object().unwrap() {
            document[key] = value.clone();
        }
        serde_json::from_value(document).unwrap()
    }

    fn project(name: &str, bindings: Value) -> Value {
        json!({"name": name, "title": name, "state": "ACTIVE", "requireIssueApproval": true,
               "allowSelfApproval": false, "webhooks": [], "iamPolicy": {"bindings": bindings}})
    }

    #[test]
    fn governed_projects_match_ids_and_globs() {
        let spec = json!({"bytebase": {"projects": ["payments", "ledger-*"]}});
        let live = snapshot(json!({"projects": [
            project("projects/payments", json!([])),
            project("projects/ledger-eu", json!([])),
            project("projects/hr", json!([]))
        ]}));
        let (governed, _) = match_projects(&spec, &live);
        assert_eq!(json!(governed), json!({"projects/payments": true, "projects/ledger-eu": true}));
        let (all, _) = match_projects(&json!({"bytebase": {"projects": ["*"]}}), &live);
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn project_patterns_that_match_nothing_are_listed_with_their_place() {
        let spec = json!({"bytebase": {"projects": ["payments", "paymnets", "ledger-*", "hr-*"]}});
        let live = snapshot(json!({"projects": [
            project("projects/payments", json!([])),
            project("projects/ledger-eu", json!([]))
        ]}));
        assert_eq!(
            match_projects(&spec, &live).1,
            json!([
                {"pattern": "paymnets", "path": "/bytebase/projects/1"},
                {"pattern": "hr-*", "path": "/bytebase/projects/3"}
            ])
        );
    }

    #[test]
    fn grants_follow_groups_conditions_and_governed_projects() {
        let spec = json!({
            "bytebase": {"projects": ["pay"]},
            "lockdown": {"permission": "bb.taskRuns.create"},
            "environments": {"prod": {"governed": true}}
        });
        let expired = r#"request.time < timestamp("2026-01-01T00:00:00Z")"#;
        let scoped = r#"resource.environment_id == "test""#;
        let binding = |role: &str, member: &str, condition: &str| json!({"role": role, "members": [member], "condition": {"expression": condition}});
        let live = snapshot(json!({
            "roles": [
                {"name": "roles/admin", "title": "", "type": "BUILT_IN",
                 "permissions": ["bb.taskRuns.create"]},
                {"name": "roles/releaser", "title": "", "type": "CUSTOM", "permissions": []},
                {"name": "roles/viewer", "title": "", "type": "BUILT_IN", "permissions": []}
            ],
            "workspaceIamPolicy": {"bindings": [
                binding("roles/admin", "group:dba@x.example", ""),
                binding("roles/admin", "user:gone@x.example", expired),
                binding("roles/viewer", "user:viewer@x.example", "")
            ]},
            "projects": [
                project("projects/pay", json!([
                    binding("roles/admin", "user:scoped@x.example", scoped),
                    binding("roles/releaser", "group:unknown@x.example", "request.time <")
                ])),
                project("projects/free", json!([binding("roles/admin", "user:free@x.example", "")]))
            ],
            "groups": [{"name": "groups/dba@x.example", "email": "dba@x.example", "title": "",
                        "members": [{"member": "users/bot@service.bytebase.com", "role": "OWNER"}]}],
            "environments": [{"name": "environments/prod", "id": "prod", "title": "",
                              "rolloutPolicy": {"automatic": false, "roles": ["roles/releaser"]}}]
        }));
        let index = build(&spec, Some(&live), at("2026-12-03T12:00:00Z"));
        let grants = &index["grants"];
        // Only the roles a policy asks about: the permission's and the rollout policy's.
        let roles: Vec<&String> = grants.as_object().unwrap().keys().collect();
        assert_eq!(roles, ["roles/admin", "roles/releaser"]);
        assert_eq!(
            grants["roles/admin"],
            json!([
                {"principal": "serviceAccount:bot@service.bytebase.com",
                 "member": "group:dba@x.example", "role": "roles/admin",
                 "resource": "workspaces/w",
                 "via": ["roles/admin", "workspaces/w:getIamPolicy", "group:dba@x.example"]},
                {"principal": "user:scoped@x.example", "member": "user:scoped@x.example",
                 "role": "roles/admin", "resource": "projects/pay",
                 "via": ["roles/admin", "projects/pay:getIamPolicy"]}
            ])
        );
        // A group cabgate cannot expand is a holder itself; a condition it cannot read counts.
        let unknown = &grants["roles/releaser"][0];
        assert_eq!(unknown["principal"], "group:unknown@x.example");
        let via = unknown["via"].as_array().unwrap();
        assert!(via[2].as_str().unwrap().starts_with("condition not understood"), "{via:?}");
        assert_eq!(index["rolloutRoles"], json!({"roles/releaser": ["prod"]}));
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
        let issue = |n: u32, created: Value| {
            json!({"name": format!("projects/p/issues/{n}"), "project": "projects/p",
                   "title": "", "type": "DATABASE_CHANGE", "status": "DONE",
                   "approvalStatus": "SKIPPED", "creator": "users/a@x.example",
                   "createTime": created, "plan": ""})
        };
        let live = snapshot(json!({"skippedIssues": [
            issue(1, json!("2026-12-01T00:00:00Z")),
            issue(2, json!("2026-11-01T00:00:00Z")),
            issue(3, Value::Null)
        ]}));
        let index = build(&spec, Some(&live), at("2026-12-03T12:00:00Z"));
        assert_eq!(index["lookbackCutoff"], "2026-11-26T12:00:00Z");
        // The old one is dropped, the one without a time kept; an empty title is left out.
        assert_eq!(
            index["skippedIssues"],
            json!({"projects/p": [
                {"name": "projects/p/issues/1", "project": "projects/p", "creator": "users/a@x.example"},
                {"name": "projects/p/issues/3", "project": "projects/p", "creator": "users/a@x.example"}
            ]})
        );
    }
}
