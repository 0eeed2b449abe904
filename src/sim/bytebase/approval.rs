//! Approval finding and status, as Bytebase computes them (`backend/component/review/*`,
//! `computeApprovalStatus`): source-specific rules first in array order, then fallback rules
//! with only `resource.project_id`; the literal `true` always matches; an empty condition never
//! does; an evaluation error is no match; no match (or no licence) = no template = SKIPPED.

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Program, Value};
use chrono::{DateTime, Utc};

use super::state::{Db, IssueRec, IssueType};
use super::world::Template;

/// Whether an IAM binding condition is false on `request.time` alone (the binding has expired).
/// Conditions on anything else (`resource.*`) stay residual: the binding still grants.
pub fn binding_expired(expression: &str, now: DateTime<Utc>) -> bool {
    if expression.trim().is_empty() {
        return false;
    }
    let Ok(program) = Program::compile(expression) else { return false };
    let mut context = Context::default();
    let request = HashMap::from([("time".to_owned(), Value::Timestamp(now.fixed_offset()))]);
    context.add_variable_from_value("request", request);
    matches!(program.execute(&context), Ok(Value::Bool(false)))
}

/// Whether a CEL expression compiles.
pub fn compiles(expression: &str) -> Result<(), String> {
    Program::compile(expression).map(|_| ()).map_err(|e| e.to_string())
}

/// The variables a CEL program references at top level (`resource`, `request`, …) and the
/// `resource.*` fields it reads, for the save-time check of fallback rules.
pub fn resource_fields(expression: &str) -> Result<Vec<String>, String> {
    let program = Program::compile(expression).map_err(|e| e.to_string())?;
    let refs = program.references();
    let mut out: Vec<String> =
        refs.variables().into_iter().filter(|v| *v != "resource").map(str::to_owned).collect();
    // Field reads are not exposed by the crate; scan the text for `resource.<field>`.
    let mut rest = expression;
    while let Some(at) = rest.find("resource.") {
        let tail = &rest[at + "resource.".len()..];
        let field: String =
            tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.push(format!("resource.{field}"));
        rest = tail;
    }
    Ok(out)
}

/// The rule source of an issue, or None (unspecified: no template, SKIPPED).
pub fn issue_source(db: &Db, issue: &IssueRec) -> Option<&'static str> {
    match issue.kind {
        IssueType::RoleGrant => Some("REQUEST_ROLE"),
        IssueType::AccessGrant => Some("REQUEST_ACCESS"),
        IssueType::DatabaseChange => {
            let plan = db.plans.get(&issue.plan?)?;
            let first = plan.specs.first()?;
            if first.create.is_some() {
                Some("CREATE_DATABASE")
            } else if first.change.is_some() {
                Some("CHANGE_DATABASE")
            } else {
                None
            }
        }
    }
}

type Vars = HashMap<String, HashMap<String, Value>>;

// NOTE: only `resource.*`, `issue.labels` and `risk.level` are bound. The emulator does not
// parse SQL, so `statement.*` (and the per-table expansion) is missing: a rule on it errors and
// never matches, as it would in Bytebase for a statement it cannot classify. `request.*` of
// ROLE_GRANT / ACCESS_GRANT issues is not bound either.

/// One variable map per target of the issue's plan (at least one).
fn target_variables(db: &Db, issue: &IssueRec) -> Vec<Vars> {
    let project_id = Value::String(Arc::new(issue.project.clone()));
    let mut maps = Vec::new();
    let base = |resource: HashMap<String, Value>| {
        let mut vars: Vars = HashMap::from([("resource".to_owned(), resource)]);
        let labels: Vec<Value> =
            issue.labels.iter().map(|l| Value::String(Arc::new(l.clone()))).collect();
        vars.insert("issue".into(), HashMap::from([("labels".to_owned(), labels.into())]));
        if let Some(level) = &issue.risk_level {
            vars.insert("risk".into(), HashMap::from([("level".to_owned(), level.clone().into())]));
        }
        vars
    };
    let plan = issue.plan.and_then(|p| db.plans.get(&p));
    for spec in plan.into_iter().flat_map(|p| &p.specs) {
        if let Some(change) = &spec.change {
            for target in &change.targets {
                let mut resource = HashMap::from([("project_id".to_owned(), project_id.clone())]);
                let (instance, database) = split_database(target);
                resource.insert("instance_id".into(), instance.into());
                resource.insert("database_name".into(), database.into());
                if let Some(d) = db.databases.get(target) {
                    resource.insert("environment_id".into(), d.environment.clone().into());
                    if !d.engine.is_empty() {
                        resource.insert("db_engine".into(), d.engine.clone().into());
                    }
                }
                maps.push(base(resource));
            }
        }
        if let Some(create) = &spec.create {
            let mut resource = HashMap::from([("project_id".to_owned(), project_id.clone())]);
            resource.insert("database_name".into(), create.database.clone().into());
            if !create.environment.is_empty() {
                resource.insert("environment_id".into(), create.environment.clone().into());
            }
            maps.push(base(resource));
        }
    }
    if maps.is_empty() {
        maps.push(base(HashMap::from([("project_id".to_owned(), project_id)])));
    }
    maps
}

/// `instances/{i}/databases/{d}` → (i, d).
pub fn split_database(name: &str) -> (String, String) {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["instances", i, "databases", d] => ((*i).to_owned(), (*d).to_owned()),
        _ => (String::new(), name.to_owned()),
    }
}

fn matches(expression: &str, variables: &[Vars]) -> bool {
    let expression = expression.trim();
    if expression.is_empty() {
        return false;
    }
    if expression == "true" {
        return true;
    }
    let Ok(program) = Program::compile(expression) else { return false };
    variables.iter().any(|vars| {
        let mut context = Context::default();
        for (name, map) in vars {
            context.add_variable_from_value(name.clone(), map.clone());
        }
        matches!(program.execute(&context), Ok(Value::Bool(true)))
    })
}

/// The approval template of an issue, or None (→ SKIPPED): no licence, no source, no match.
pub fn find_template(db: &Db, project: &str, issue_id: u64) -> Option<Template> {
    if !db.approval_licensed() {
        return None;
    }
    let issue = db.issue(project, issue_id)?;
    let source = issue_source(db, issue)?;
    let rules = db.approval.as_ref()?;
    let variables = target_variables(db, issue);
    for rule in rules.iter().filter(|r| r.source == source) {
        if matches(&rule.condition.expression, &variables) {
            return Some(rule.template.clone());
        }
    }
    let project_only: Vars = HashMap::from([(
        "resource".to_owned(),
        HashMap::from([("project_id".to_owned(), Value::from(issue.project.clone()))]),
    )]);
    let fallback = [project_only];
    for rule in rules.iter().filter(|r| r.source.is_empty() || r.source == "SOURCE_UNSPECIFIED") {
        if matches(&rule.condition.expression, &fallback) {
            return Some(rule.template.clone());
        }
    }
    None
}

/// `computeApprovalStatus`.
pub fn approval_status(issue: &IssueRec) -> &'static str {
    if !issue.finding_done {
        return "CHECKING";
    }
    let Some(template) = &issue.template else { return "SKIPPED" };
    if issue.approvers.is_empty() {
        return "PENDING";
    }
    if issue.approvers.iter().any(|a| a.status == "REJECTED") {
        return "REJECTED";
    }
    if issue.approvers.len() >= template.flow.roles.len()
        && issue.approvers.iter().all(|a| a.status == "APPROVED")
    {
        return "APPROVED";
    }
    "PENDING"
}

/// The backend's own gate (`CheckApprovalApproved`): finding done and either no template or
/// every step approved (a zero-role flow counts as approved here).
pub fn gate_approved(issue: &IssueRec) -> bool {
    if !issue.finding_done {
        return false;
    }
    match &issue.template {
        None => true,
        Some(t) => {
            issue.approvers.len() >= t.flow.roles.len()
                && issue.approvers.iter().all(|a| a.status == "APPROVED")
        }
    }
}

/// The role of the next pending step, if the issue waits for one.
pub fn next_role(issue: &IssueRec) -> Option<&str> {
    if !issue.finding_done || issue.approvers.iter().any(|a| a.status == "REJECTED") {
        return None;
    }
    let template = issue.template.as_ref()?;
    template.flow.roles.get(issue.approvers.len()).map(String::as_str)
}

/// Whether `email` holds `role` via project or workspace IAM (groups expanded, expired
/// bindings ignored).
pub fn holds_role(db: &Db, email: &str, role: &str, project: &str, now: DateTime<Utc>) -> bool {
    db.roles_of(email, Some(project), now).contains(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_bindings_are_detected_on_request_time_alone() {
        let now = Utc::now();
        assert!(binding_expired(r#"request.time < timestamp("2000-01-01T00:00:00Z")"#, now));
        assert!(!binding_expired(r#"request.time < timestamp("2999-01-01T00:00:00Z")"#, now));
        assert!(!binding_expired(r#"resource.database == "x""#, now));
        assert!(!binding_expired("", now));
    }

    #[test]
    fn fallback_rules_may_only_read_the_project() {
        assert_eq!(
            resource_fields(r#"resource.project_id == "a""#).unwrap(),
            ["resource.project_id"]
        );
        let fields = resource_fields(r#"resource.environment_id == "prod" && x"#).unwrap();
        assert!(fields.contains(&"resource.environment_id".to_owned()));
        assert!(fields.contains(&"x".to_owned()));
    }
}
