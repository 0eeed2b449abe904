//! The Table API: `GET` (list, one), `POST`, `PATCH`/`PUT`, `DELETE` under
//! `/api/now/table/{table}`, `/api/now/v1/table/{table}` and `/api/now/v2/table/{table}`.
//!
//! Versions differ on zero hits: v1 answers 404 `No Record found`, v2 200 with `"result": []`.
//! Lists honour `sysparm_query`, `sysparm_fields`, `sysparm_limit` (default 10000),
//! `sysparm_offset`, `sysparm_display_value`, `sysparm_exclude_reference_link`,
//! `sysparm_no_count` and `sysparm_suppress_pagination_header`, and answer with `X-Total-Count`
//! and a `Link` header (`first`, `prev`, `next`, `last`). The limit is applied before ACL row
//! filtering, so a page can be short while more rows exist.
//!
//! Writes need `Accept` and `Content-Type: application/json` (else 400), take one record per
//! call, ignore unknown and read-only fields silently, truncate short string columns to their
//! `max_length`, and honour `sysparm_input_display_value=true` (labels, display names and
//! date-times in the caller's zone are turned into stored values).
//!
//! NOTE: the text of the 400 answers for bad headers and bodies is this emulator's own wording;
//! only the status and the envelope are the instance's. `X-no-response-body` is not emulated.
//! NOTE: a date-time written in another format than `YYYY-MM-DD HH:MM:SS` is silently dropped
//! (the field keeps its value), and a reference written as a name that matches nothing is stored
//! as typed; both are this emulator's reading of "bad input is ignored", not verified on an
//! instance.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::approvals::{self, Verdict};
use super::auth::{Caller, require_auth};
use super::query::{self, Query};
use super::records::{self, Db, Record, is_sys_id, stamp_insert, stamp_update};
use super::render::{DisplayMode, Locale, View};
use super::schema::{self, Kind, Table};
use super::{ApiError, Instance, Shared, change, journal};

/// Default `sysparm_limit`.
pub const DEFAULT_LIMIT: usize = 10_000;

/// The Table API routes, behind authentication and rate limiting.
pub fn routes(shared: Shared) -> Router<Shared> {
    let mut router = Router::new();
    for prefix in ["/api/now/table", "/api/now/v1/table", "/api/now/v2/table"] {
        router = router.route(&format!("{prefix}/{{table}}"), get(list).post(create)).route(
            &format!("{prefix}/{{table}}/{{sys_id}}"),
            get(read).patch(update).put(update).delete(delete),
        );
    }
    router.layer(middleware::from_fn_with_state(shared, require_auth))
}

/// The answer to a path no resource lives at.
pub async fn unknown_uri() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Requested URI does not represent any resource", None)
}

/// Request parameters, in the order given.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Params {
        let raw = raw.unwrap_or_default();
        Params(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    fn number(&self, name: &str) -> Option<usize> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    /// The query string with `sysparm_offset` and `sysparm_limit` replaced.
    fn with_page(&self, offset: usize, limit: usize) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            if k != "sysparm_offset" && k != "sysparm_limit" {
                out.append_pair(k, v);
            }
        }
        out.append_pair("sysparm_limit", &limit.to_string());
        out.append_pair("sysparm_offset", &offset.to_string());
        out.finish()
    }
}

fn invalid_table(name: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, &format!("Invalid table {name}"), None)
}

fn no_record() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "No Record found",
        Some("Record doesn't exist or ACL restricts the record retrieval"),
    )
}

fn acl_refused(operation: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Operation Failed",
        Some(&format!("ACL Exception {operation} Failed due to security constraints")),
    )
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

fn lookup(name: &str) -> Result<&'static Table, ApiError> {
    schema::table(name).ok_or_else(|| invalid_table(name))
}

fn locale_of(inst: &Instance, user: &str) -> Locale {
    match inst.world.users.iter().find(|u| u.user_name == user) {
        Some(u) => Locale::of(u.time_zone.as_deref(), u.date_format.as_deref()),
        None => Locale::default(),
    }
}

fn view<'a>(
    inst: &'a Instance,
    table: &Table,
    params: &Params,
    base: String,
    user: &str,
) -> View<'a> {
    let fields = params
        .get("sysparm_fields")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
    View {
        mode: DisplayMode::parse(params.get("sysparm_display_value")),
        exclude_link: params.flag("sysparm_exclude_reference_link"),
        fields,
        base,
        locale: locale_of(inst, user),
        hidden: inst.world.acl.hidden_fields.get(table.name).map(Vec::as_slice).unwrap_or(&[]),
        extra_states: &inst.world.extra_states,
    }
}

/// The ACL rule hiding rows of a table from API callers, if the world sets one.
fn hidden_rule(inst: &Instance, table: &Table) -> Option<Query> {
    let encoded = inst.world.acl.hidden_rows.get(table.name)?;
    Some(query::parse(table, encoded)).filter(Query::has_conditions)
}

/// Whether an ACL hides this row from API callers.
fn row_hidden(inst: &Instance, db: &Db, table: &Table, rec: &Record) -> bool {
    hidden_rule(inst, table).is_some_and(|rule| rule.matches(db, table, rec, false))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn list(
    State(inst): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(table): Path<String>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = lookup(&table)?;
    let params = Params::parse(raw.as_deref());
    let base = base_url(&headers);
    let view = view(&inst, table, &params, base.clone(), &caller.user_name);
    let encoded = params.get("sysparm_query").unwrap_or_default();
    let query = query::parse(table, encoded);
    let limit = params.number("sysparm_limit").filter(|l| *l > 0).unwrap_or(DEFAULT_LIMIT);
    let offset = params.number("sysparm_offset").unwrap_or(0);

    let hidden = hidden_rule(&inst, table);
    let db = inst.db();
    let no_rows = inst.world.invalid_query_returns_no_rows;
    let mut rows: Vec<&Record> =
        db.rows(table.name).iter().filter(|r| query.matches(&db, table, r, no_rows)).collect();
    query.sort(&db, table, &mut rows);
    let total = rows.len();
    let result: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .filter(|r| !hidden.as_ref().is_some_and(|rule| rule.matches(&db, table, r, false)))
        .map(|r| Value::Object(view.render(&db, table, r)))
        .collect();
    drop(db);

    if result.is_empty() && !uri.path().starts_with("/api/now/v2/") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "No Record found",
            Some("Records matching query not found. Check query parameter or offset parameter"),
        ));
    }
    let mut response = json_response(StatusCode::OK, json!({ "result": result }));
    let out = response.headers_mut();
    if !params.flag("sysparm_no_count")
        && let Ok(count) = HeaderValue::from_str(&total.to_string())
    {
        out.insert("x-total-count", count);
    }
    if !params.flag("sysparm_suppress_pagination_header") {
        let link = |offset: usize, rel: &str| {
            format!("<{base}{}?{}>;rel=\"{rel}\"", uri.path(), params.with_page(offset, limit))
        };
        let mut links = vec![link(0, "first")];
        if offset > 0 {
            links.push(link(offset.saturating_sub(limit), "prev"));
        }
        if offset + limit < total {
            links.push(link(offset + limit, "next"));
        }
        if !params.flag("sysparm_no_count") {
            links.push(link(total.saturating_sub(1) / limit * limit, "last"));
        }
        if let Ok(value) = HeaderValue::from_str(&links.join(",")) {
            out.insert(header::LINK, value);
        }
    }
    Ok(response)
}

async fn read(
    State(inst): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((table, sys_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = lookup(&table)?;
    let params = Params::parse(raw.as_deref());
    let view = view(&inst, table, &params, base_url(&headers), &caller.user_name);
    let db = inst.db();
    let rec = db.get(table.name, &sys_id).ok_or_else(no_record)?;
    if row_hidden(&inst, &db, table, rec) {
        return Err(no_record());
    }
    let body = json!({ "result": view.render(&db, table, rec) });
    Ok(json_response(StatusCode::OK, body))
}

/// Checks the headers of a write and parses its body as one JSON object.
fn write_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value_of = |name: header::HeaderName| {
        headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase()
    };
    let content_type = value_of(header::CONTENT_TYPE);
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Requested content type is not supported",
            Some("Content-Type must be application/json"),
        ));
    }
    let accept = value_of(header::ACCEPT);
    let accepts_json = accept.split(',').any(|a| {
        let a = a.split(';').next().unwrap_or_default().trim();
        a == "application/json" || a == "*/*" || a == "application/*"
    });
    if !accepts_json {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Requested response content type is not supported",
            Some("Accept must allow application/json"),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            Some("The payload must be one JSON object: the Table API writes one record per call"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            Some("The payload is not valid JSON"),
        )),
    }
}

/// What a write asked for beyond plain field values.
#[derive(Debug, Default)]
struct Input {
    changed: bool,
    journal: Vec<(&'static str, String)>,
    state: Option<String>,
}

/// Writes the body's fields into a row, the way the platform does: unknown, read-only and
/// hidden fields are skipped, journal entries are collected, short string columns truncated.
/// A change request's `state` is not written but returned, for the change model to judge.
#[allow(clippy::too_many_arguments)] // one call site per verb; a struct would only rename these
fn apply_input(
    db: &Db,
    table: &Table,
    rec: &mut Record,
    body: &Map<String, Value>,
    display_input: bool,
    locale: &Locale,
    hidden: &[String],
    state_by_model: bool,
) -> Input {
    let mut input = Input::default();
    for (name, value) in body {
        let Some(field) = table.field(name) else { continue };
        if !field.writable || hidden.iter().any(|h| h == name) {
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Object(o) => match o.get("value") {
                Some(Value::String(s)) => s.clone(),
                _ => continue,
            },
            Value::Array(_) => continue,
        };
        let stored = match field.kind {
            Kind::Journal => {
                input.journal.push((field.name, text));
                continue;
            }
            Kind::Reference { table: target, .. } if display_input && !is_sys_id(&text) => {
                by_display_value(db, target, &text).unwrap_or(text)
            }
            Kind::Choice(choices) if display_input => {
                schema::value_of_label(choices, &text).map(str::to_string).unwrap_or(text)
            }
            Kind::DateTime if text.is_empty() => text,
            Kind::DateTime if display_input => match locale.parse_input(&text) {
                Some(stored) => stored,
                None => continue,
            },
            Kind::DateTime => {
                match chrono::NaiveDateTime::parse_from_str(&text, records::STORED_DATE_TIME) {
                    Ok(_) => text,
                    Err(_) => continue,
                }
            }
            _ => match field.max_len {
                Some(max) if max <= 255 => text.chars().take(max).collect(),
                _ => text,
            },
        };
        if state_by_model && field.name == "state" {
            input.state = Some(stored);
            continue;
        }
        if rec.get(field.name) != Some(&stored) {
            rec.insert(field.name.to_string(), stored);
            input.changed = true;
        }
    }
    input
}

/// Row-level write ACLs: an approval row is written by its approver, or by an admin.
fn may_update(inst: &Instance, db: &Db, table: &Table, rec: &Record, user: &str) -> bool {
    if table.name != "sysapproval_approver" {
        return true;
    }
    let is_approver = db.user_id(user).is_some_and(|id| rec.get("approver") == Some(&id));
    let is_admin = inst.world.users.iter().any(|u| {
        u.user_name == user && u.roles.iter().any(|r| r == "admin" || r == "approval_admin")
    });
    is_approver || is_admin
}

/// The sys_id of the record of `table` whose display value is `display`.
fn by_display_value(db: &Db, table: &str, display: &str) -> Option<String> {
    let target = schema::table(table)?;
    db.find(target.name, target.display, display).map(records::sys_id_of)
}

async fn create(
    State(inst): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(table): Path<String>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let table = lookup(&table)?;
    let fields = write_body(&headers, &body)?;
    if !table.access.create {
        return Err(acl_refused("Insert"));
    }
    let params = Params::parse(raw.as_deref());
    let base = base_url(&headers);
    let view = view(&inst, table, &params, base.clone(), &caller.user_name);
    let now = records::stored(inst.clock.now());
    let user = caller.user_name.as_str();

    let mut db = inst.db();
    let mut rec = Record::new();
    // NOTE: a new change request always starts in New: a `state` in the body is ignored.
    let display_input = params.flag("sysparm_input_display_value");
    let input = apply_input(
        &db,
        table,
        &mut rec,
        &fields,
        display_input,
        &view.locale,
        view.hidden,
        table.name == "change_request",
    );
    let sys_id = match fields.get("sys_id").and_then(Value::as_str) {
        Some(id) if is_sys_id(id) && db.get(table.name, id).is_none() => id.to_string(),
        _ => db.new_sys_id(),
    };
    rec.insert("sys_id".into(), sys_id.clone());
    stamp_insert(&mut rec, user, &now);
    change::defaults_on_insert(&mut db, table.name, &mut rec, user, &now);
    db.push(table.name, rec);
    for (element, value) in &input.journal {
        journal::append(&mut db, table.name, &sys_id, element, value, user, &now);
    }
    let rec = db.get(table.name, &sys_id).ok_or_else(no_record)?;
    let body = json!({ "result": view.render(&db, table, rec) });
    drop(db);
    let mut response = json_response(StatusCode::CREATED, body);
    let prefix = uri.path().trim_end_matches('/');
    if let Ok(location) = HeaderValue::from_str(&format!("{base}{prefix}/{sys_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn update(
    State(inst): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((table, sys_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let table = lookup(&table)?;
    let fields = write_body(&headers, &body)?;
    let params = Params::parse(raw.as_deref());
    let view = view(&inst, table, &params, base_url(&headers), &caller.user_name);
    let now = records::stored(inst.clock.now());
    let user = caller.user_name.as_str();

    let mut db = inst.db();
    let current = db.get(table.name, &sys_id).ok_or_else(no_record)?;
    if row_hidden(&inst, &db, table, current) {
        return Err(no_record());
    }
    if !table.access.update || !may_update(&inst, &db, table, current, user) {
        return Err(acl_refused("Update"));
    }
    let mut rec = current.clone();
    let by_model = matches!(table.name, "change_request" | "sysapproval_approver");
    let display_input = params.flag("sysparm_input_display_value");
    let input = apply_input(
        &db,
        table,
        &mut rec,
        &fields,
        display_input,
        &view.locale,
        view.hidden,
        by_model,
    );
    let mut changed = input.changed || !input.journal.is_empty();
    if let Some(slot) = db.get_mut(table.name, &sys_id) {
        *slot = rec;
    }
    for (element, value) in &input.journal {
        journal::append(&mut db, table.name, &sys_id, element, value, user, &now);
    }
    match (table.name, input.state.as_deref()) {
        ("change_request", Some(to)) => {
            changed |= change::request_state(&mut db, &inst.world, &sys_id, to, user, &now);
        }
        ("sysapproval_approver", Some(to)) => {
            let verdict = match to {
                "approved" => Some(Verdict::Approve),
                "rejected" => Some(Verdict::Reject),
                _ => None,
            };
            // The approver's comment, if any, is journaled above; decide() stamps the row.
            // Any other state, or a row not awaiting a decision, is silently left unchanged.
            if let Some(verdict) = verdict
                && approvals::decide(&mut db, &inst.world, &sys_id, verdict, "", user, &now).is_ok()
            {
                changed = false;
            }
        }
        _ => {}
    }
    if changed && let Some(slot) = db.get_mut(table.name, &sys_id) {
        stamp_update(slot, user, &now);
    }
    let rec = db.get(table.name, &sys_id).ok_or_else(no_record)?;
    let body = json!({ "result": view.render(&db, table, rec) });
    Ok(json_response(StatusCode::OK, body))
}

async fn delete(
    State(inst): State<Shared>,
    Path((table, sys_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let table = lookup(&table)?;
    let mut db = inst.db();
    let rec = db.get(table.name, &sys_id).ok_or_else(no_record)?;
    if row_hidden(&inst, &db, table, rec) {
        return Err(no_record());
    }
    if !table.access.delete {
        return Err(acl_refused("Delete"));
    }
    db.remove(table.name, &sys_id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
