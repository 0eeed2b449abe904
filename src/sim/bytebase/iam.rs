//! Workspace, roles, IAM policies and groups (`WorkspaceService`, `RoleService`,
//! `GroupService`, `ProjectService/GetIamPolicy`). Policies are returned as stored: groups are
//! not expanded and expired bindings are not dropped, as in Bytebase; `condition` is always
//! present (`{}` when empty).

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::json::Obj;
use super::state::{Db, PolicyRec, RoleRec};
use super::world::Group;
use super::{Call, list_response, page, page_offset, page_size};

/// `GET /v1/workspaces/{w}` (`-` = the caller's workspace).
pub fn get_workspace(db: &mut Db, _call: &Call, args: &[String]) -> ApiResult {
    if args[0] != "-" && args[0] != db.workspace {
        return Err(ApiError::not_found(format!("workspace {:?} not found", args[0])));
    }
    Ok(Obj::new()
        .str("name", &format!("workspaces/{}", db.workspace))
        .str("title", &db.title)
        .build())
}

/// `GET /v1/workspaces/{w}:getIamPolicy`; `{w}` must be the real id.
pub fn workspace_iam(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    call.require(db, "bb.workspaces.getIamPolicy", None)?;
    if args[0] != db.workspace {
        return Err(ApiError::not_found(format!("workspace {:?} not found", args[0])));
    }
    Ok(policy_json(&db.workspace_iam))
}

/// `GET /v1/projects/{p}:getIamPolicy`.
pub fn project_iam(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let project = db
        .project(&args[0])
        .ok_or_else(|| ApiError::not_found(format!("project {:?} not found", args[0])))?;
    call.require(db, "bb.projects.getIamPolicy", Some(&args[0]))?;
    Ok(policy_json(&project.iam))
}

/// An IAM policy in the API's JSON shape.
///
/// NOTE: `parsedExpr` (the CEL AST Bytebase adds next to a condition) is not produced.
pub fn policy_json(policy: &PolicyRec) -> Value {
    let bindings = policy
        .bindings
        .iter()
        .map(|b| {
            Obj::new()
                .str("role", &b.role)
                .strs("members", &b.members)
                .msg("condition", Obj::new().str("expression", &b.condition).build())
                .build()
        })
        .collect();
    Obj::new().list("bindings", bindings).str("etag", &policy.etag.to_string()).build()
}

fn role_json(role: &RoleRec) -> Value {
    Obj::new()
        .str("name", &format!("roles/{}", role.id))
        .str("title", &role.title)
        .str("description", &role.description)
        .strs("permissions", &role.permissions)
        .enumv("type", if role.custom { "CUSTOM" } else { "BUILT_IN" })
        .build()
}

/// `GET /v1/roles`: custom roles, then built-ins; no paging.
pub fn list_roles(db: &mut Db, call: &Call, _: &[String]) -> ApiResult {
    call.require(db, "bb.roles.list", None)?;
    Ok(Obj::new().list("roles", db.roles.iter().map(role_json).collect()).build())
}

/// `GET /v1/roles/{id}`.
pub fn get_role(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    call.require(db, "bb.roles.get", None)?;
    db.role(&args[0])
        .map(role_json)
        .ok_or_else(|| ApiError::not_found(format!("role {:?} not found", args[0])))
}

fn group_json(group: &Group) -> Value {
    let members = group
        .members
        .iter()
        .map(|m| Obj::new().str("member", &m.member).enumv("role", &m.role).build())
        .collect();
    Obj::new()
        .str("name", &format!("groups/{}", group.email))
        .str("title", &group.title)
        .str("email", &group.email)
        .list("members", members)
        .build()
}

/// `GET /v1/groups` (paged).
pub fn list_groups(db: &mut Db, call: &Call, _: &[String]) -> ApiResult {
    call.require(db, "bb.groups.list", None)?;
    let size = page_size(call)?;
    let offset = page_offset(call.param(&["pageToken", "page_token"]), size)?;
    let (range, next) = page(db.groups.len(), offset, size);
    Ok(list_response("groups", db.groups[range].iter().map(group_json).collect(), next))
}

/// `GET /v1/groups/{email}`.
pub fn get_group(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    call.require(db, "bb.groups.get", None)?;
    db.group_index
        .get(&args[0])
        .map(|i| group_json(&db.groups[*i]))
        .ok_or_else(|| ApiError::not_found(format!("group {:?} not found", args[0])))
}
