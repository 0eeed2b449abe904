//! The world: the initial state of the emulated instance, as the `servicenow:` section of a
//! world file describes it, and the checks that name what in it is dangling or malformed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{query, records, schema};

/// The initial state of the emulated instance: the `servicenow:` section of a world file.
///
/// Every field is optional; [`World::default`] is an instance with no users at all. Example:
///
/// ```yaml
/// servicenow:
///   seed: 7                          # sys_ids and tokens derive from it, so runs replay
///   users:
///     - { user_name: cabgate, password: s3cret, name: CAB Gate, email: cabgate@acme.example }
///     - { user_name: alice, name: Alice Approver, time_zone: "+02:00",
///         date_format: "%d.%m.%Y %H:%M:%S" }     # display-value mode follows these
///   groups:
///     - { name: Change Advisory Board, members: [alice, bob], manager: alice }
///   cab: { group: Change Advisory Board, rule: any }   # who approves CHGs, and how many must
///   oauth:
///     client_credentials_enabled: false   # glide.oauth.inbound.client.credential.grant_type…
///     clients:
///       - { client_id: abc, client_secret: def, application_user: cabgate }
///   basic_auth: true                 # false: a REST API access policy blocks basic auth
///   rate_limits: [{ user: cabgate, per_hour: 500 }]    # no user: the rule applies to everyone
///   invalid_query_returns_no_rows: false               # glide.invalid_query.returns_no_rows
///   acl:
///     hidden_fields: { change_request: [risk] }         # fields that vanish from every read
///     hidden_rows: { change_request: "category=Secret" } # rows that read as 404 / are skipped
///   extra_states: [{ value: "-6", label: "Peer Review" }] # a custom model's extra states
///   change_requests:                 # existing CHGs: any field, stored values
///     - { short_description: Patch the ledger, assignment_group: Change Advisory Board }
///   incidents: []
/// ```
///
/// In `change_requests` and `incidents`, reference fields may name the record (a user's
/// `user_name`, a group's `name`) instead of its sys_id; numbers and sys_ids are assigned when
/// missing; states are taken as given (no model check). A CHG seeded in Assess or Authorize
/// without an `approval` gets its approval round, as if it had just been moved there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// Seed of the sys_id and token generator.
    pub seed: u64,
    /// `sys_user` rows; those with a password may log in.
    pub users: Vec<User>,
    /// `sys_user_group` rows with their members.
    pub groups: Vec<Group>,
    /// The CAB: which group's members are asked to approve a CHG, and the approval rule.
    pub cab: Option<Cab>,
    /// OAuth application registry and the client-credentials property.
    pub oauth: OAuth,
    /// Whether basic authentication is accepted (default true).
    pub basic_auth: Option<bool>,
    /// Inbound REST rate limit rules (`sys_rate_limit_rules`), per hour.
    pub rate_limits: Vec<RateLimit>,
    /// The `glide.invalid_query.returns_no_rows` property (default false: invalid terms are
    /// dropped and the rest of the query runs).
    pub invalid_query_returns_no_rows: bool,
    /// What ACLs hide from the integration user.
    pub acl: Acl,
    /// States a custom change model adds to `change_request.state`.
    pub extra_states: Vec<ExtraState>,
    /// Existing change requests.
    pub change_requests: Vec<BTreeMap<String, serde_json::Value>>,
    /// Existing incidents.
    pub incidents: Vec<BTreeMap<String, serde_json::Value>>,
}

/// A `sys_user` row.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    /// Login name; `sys_updated_by` and `sys_created_by` hold it.
    pub user_name: String,
    /// Password for basic auth and the OAuth password grant; `None`: cannot log in.
    pub password: Option<String>,
    /// Full name, the display value of a reference to the user.
    pub name: String,
    /// Email address.
    pub email: String,
    /// A fixed sys_id; generated from the seed when absent.
    pub sys_id: Option<String>,
    /// Fixed UTC offset (`+02:00`) for display values; UTC when absent.
    pub time_zone: Option<String>,
    /// chrono format of date-times in display values; `%Y-%m-%d %H:%M:%S` when absent.
    pub date_format: Option<String>,
    /// Whether the user is active (default true); inactive users cannot log in.
    pub active: Option<bool>,
    /// Roles; `admin` and `approval_admin` may decide approvals assigned to someone else.
    pub roles: Vec<String>,
}

/// A `sys_user_group` row.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Group {
    /// Group name, its display value.
    pub name: String,
    /// Description.
    pub description: String,
    /// Members by `user_name` (rows of `sys_user_grmember`).
    pub members: Vec<String>,
    /// Manager by `user_name`.
    pub manager: Option<String>,
    /// A fixed sys_id; generated when absent.
    pub sys_id: Option<String>,
}

/// Who approves a change request when it is moved to Assess.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cab {
    /// The approving group by name; absent: the CHG's `assignment_group`.
    pub group: Option<String>,
    /// How many members must approve.
    pub rule: ApprovalRule,
}

/// A group approval's rule. Any rejection rejects, under both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalRule {
    /// The first approval decides; the other rows become `not_required`.
    #[default]
    Any,
    /// Every member must approve.
    All,
}

/// The OAuth application registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuth {
    /// `glide.oauth.inbound.client.credential.grant_type.enabled` (false by default, as on a
    /// real instance).
    pub client_credentials_enabled: bool,
    /// Registered clients.
    pub clients: Vec<OAuthClient>,
}

/// One OAuth client (an `oauth_entity` row).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthClient {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// The "OAuth Application User" whose identity a client-credentials token carries.
    pub application_user: Option<String>,
    /// Access token lifespan in seconds (default 1800).
    pub access_token_lifespan: Option<i64>,
    /// Refresh token lifespan in seconds (default 8,640,000: 100 days).
    pub refresh_token_lifespan: Option<i64>,
}

/// One inbound REST rate limit rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// The user it applies to; absent: everyone. User rules beat the global one.
    pub user: Option<String>,
    /// Requests allowed per clock hour.
    pub per_hour: u64,
}

/// What ACLs hide from API callers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Acl {
    /// Per table, fields that vanish from reads and ignore writes.
    pub hidden_fields: BTreeMap<String, Vec<String>>,
    /// Per table, an encoded query; matching rows are invisible (404, skipped in lists after
    /// the limit is applied, so pages come back short).
    pub hidden_rows: BTreeMap<String, String>,
}

/// A state a custom change model adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtraState {
    /// Stored value.
    pub value: String,
    /// Label.
    pub label: String,
}

impl World {
    /// Everything in the world that names something missing or malformed, one sentence each,
    /// naming the field (`groups[0].members[2]: no user "bobb"`). The emulator runs with such a
    /// world (the bad names are skipped), so a loader should show these to whoever wrote it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let user_known = |name: &str| self.users.iter().any(|u| u.user_name == name);
        let group_known = |name: &str| self.groups.iter().any(|g| g.name == name);
        for (i, user) in self.users.iter().enumerate() {
            if user.user_name.is_empty() {
                problems.push(format!("users[{i}].user_name: empty"));
            }
            if self.users[..i].iter().any(|u| u.user_name == user.user_name) {
                problems.push(format!("users[{i}].user_name: {:?} appears twice", user.user_name));
            }
            if let Some(tz) = &user.time_zone
                && tz.parse::<chrono::FixedOffset>().is_err()
            {
                problems.push(format!("users[{i}].time_zone: {tz:?} is not an offset like +02:00"));
            }
            if let Some(id) = &user.sys_id
                && !records::is_sys_id(id)
            {
                problems.push(format!("users[{i}].sys_id: {id:?} is not 32 lowercase hex digits"));
            }
        }
        for (i, group) in self.groups.iter().enumerate() {
            for (j, member) in group.members.iter().enumerate() {
                if !user_known(member) {
                    problems.push(format!("groups[{i}].members[{j}]: no user {member:?}"));
                }
            }
            if let Some(manager) = group.manager.as_deref().filter(|m| !user_known(m)) {
                problems.push(format!("groups[{i}].manager: no user {manager:?}"));
            }
            if let Some(id) = group.sys_id.as_deref().filter(|id| !records::is_sys_id(id)) {
                problems.push(format!("groups[{i}].sys_id: {id:?} is not 32 lowercase hex digits"));
            }
        }
        if let Some(group) = self.cab.as_ref().and_then(|c| c.group.as_deref())
            && !group_known(group)
        {
            problems.push(format!("cab.group: no group {group:?}"));
        }
        for (i, client) in self.oauth.clients.iter().enumerate() {
            if let Some(user) = client.application_user.as_deref().filter(|u| !user_known(u)) {
                problems.push(format!("oauth.clients[{i}].application_user: no user {user:?}"));
            }
        }
        for (i, rule) in self.rate_limits.iter().enumerate() {
            if let Some(user) = rule.user.as_deref().filter(|u| !user_known(u)) {
                problems.push(format!("rate_limits[{i}].user: no user {user:?}"));
            }
        }
        for (table, fields) in &self.acl.hidden_fields {
            match schema::table(table) {
                None => problems.push(format!("acl.hidden_fields.{table}: no such table")),
                Some(t) => {
                    for field in fields.iter().filter(|f| t.field(f).is_none()) {
                        problems.push(format!("acl.hidden_fields.{table}: no field {field:?}"));
                    }
                }
            }
        }
        for (table, encoded) in &self.acl.hidden_rows {
            match schema::table(table) {
                None => problems.push(format!("acl.hidden_rows.{table}: no such table")),
                Some(t) => {
                    for term in query::parse(t, encoded).dropped {
                        problems.push(format!("acl.hidden_rows.{table}: invalid term {term:?}"));
                    }
                }
            }
        }
        let seeds = [("change_requests", "change_request", &self.change_requests)];
        let seeds = seeds.into_iter().chain([("incidents", "incident", &self.incidents)]);
        for (key, table, rows) in seeds {
            let Some(t) = schema::table(table) else { continue };
            for (i, row) in rows.iter().enumerate() {
                for field in row.keys().filter(|f| t.field(f).is_none()) {
                    problems.push(format!("{key}[{i}].{field}: no such field in {table}"));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_the_field_and_the_missing_thing() {
        let world: World = serde_json::from_value(serde_json::json!({
            "users": [{ "user_name": "alice", "time_zone": "CET" }],
            "groups": [{ "name": "CAB", "members": ["alice", "bobb"] }],
            "cab": { "group": "Board" },
            "acl": { "hidden_fields": { "change_request": ["risk", "rsik"] },
                     "hidden_rows": { "change_request": "categry=x" } },
            "change_requests": [{ "short_description": "x", "stat": "-5" }]
        }))
        .unwrap();
        assert_eq!(
            world.problems(),
            vec![
                "users[0].time_zone: \"CET\" is not an offset like +02:00",
                "groups[0].members[1]: no user \"bobb\"",
                "cab.group: no group \"Board\"",
                "acl.hidden_fields.change_request: no field \"rsik\"",
                "acl.hidden_rows.change_request: invalid term \"categry=x\"",
                "change_requests[0].stat: no such field in change_request",
            ]
        );
        assert!(World::default().problems().is_empty());
    }
}
