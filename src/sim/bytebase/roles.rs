//! Built-in roles and their permissions, as Bytebase defines them in Go code
//! (`backend/store/predefined_roles.go`), written out as permission names.
//!
//! Who holds `bb.taskRuns.create` is the heart of the compliance check, so these lists follow
//! the reference (source commit 37339d7): workspaceAdmin, workspaceDBA, projectOwner,
//! projectReleaser and gitopsServiceAgent hold it; projectDeveloper does not (it holds
//! `bb.rollouts.create`). NOTE: older sources lack it on projectOwner; the reference wins.

/// Every permission of workspaceAdmin.
const WORKSPACE_ADMIN: &[&str] = &[
    "bb.auditLogs.export",
    "bb.auditLogs.search",
    "bb.changelogs.get",
    "bb.changelogs.list",
    "bb.databaseCatalogs.get",
    "bb.databaseCatalogs.update",
    "bb.databaseGroups.create",
    "bb.databaseGroups.delete",
    "bb.databaseGroups.get",
    "bb.databaseGroups.list",
    "bb.databaseGroups.update",
    "bb.databases.check",
    "bb.databases.get",
    "bb.databases.getSchema",
    "bb.databases.list",
    "bb.databases.sync",
    "bb.databases.update",
    "bb.groups.create",
    "bb.groups.delete",
    "bb.groups.get",
    "bb.groups.list",
    "bb.groups.update",
    "bb.identityProviders.create",
    "bb.identityProviders.delete",
    "bb.identityProviders.get",
    "bb.identityProviders.update",
    "bb.instanceRoles.get",
    "bb.instanceRoles.list",
    "bb.instances.create",
    "bb.instances.delete",
    "bb.instances.get",
    "bb.instances.list",
    "bb.instances.sync",
    "bb.instances.undelete",
    "bb.instances.update",
    "bb.issueComments.create",
    "bb.issueComments.list",
    "bb.issueComments.update",
    "bb.issues.create",
    "bb.issues.get",
    "bb.issues.list",
    "bb.issues.update",
    "bb.planCheckRuns.get",
    "bb.planCheckRuns.run",
    "bb.plans.create",
    "bb.plans.get",
    "bb.plans.list",
    "bb.plans.update",
    "bb.policies.create",
    "bb.policies.createMaskingExemptionPolicy",
    "bb.policies.createMaskingRulePolicy",
    "bb.policies.delete",
    "bb.policies.deleteMaskingExemptionPolicy",
    "bb.policies.deleteMaskingRulePolicy",
    "bb.policies.get",
    "bb.policies.getMaskingExemptionPolicy",
    "bb.policies.getMaskingRulePolicy",
    "bb.policies.list",
    "bb.policies.update",
    "bb.policies.updateMaskingExemptionPolicy",
    "bb.policies.updateMaskingRulePolicy",
    "bb.projects.create",
    "bb.projects.delete",
    "bb.projects.get",
    "bb.projects.getIamPolicy",
    "bb.projects.list",
    "bb.projects.setIamPolicy",
    "bb.projects.undelete",
    "bb.projects.update",
    "bb.releases.check",
    "bb.releases.create",
    "bb.releases.delete",
    "bb.releases.get",
    "bb.releases.list",
    "bb.releases.undelete",
    "bb.releases.update",
    "bb.reviewConfigs.create",
    "bb.reviewConfigs.delete",
    "bb.reviewConfigs.get",
    "bb.reviewConfigs.list",
    "bb.reviewConfigs.update",
    "bb.revisions.create",
    "bb.revisions.delete",
    "bb.revisions.get",
    "bb.revisions.list",
    "bb.roles.create",
    "bb.roles.delete",
    "bb.roles.get",
    "bb.roles.list",
    "bb.roles.update",
    "bb.rollouts.create",
    "bb.rollouts.get",
    "bb.rollouts.list",
    "bb.settings.get",
    "bb.settings.getEnvironment",
    "bb.settings.getWorkspaceProfile",
    "bb.settings.list",
    "bb.settings.set",
    "bb.settings.setEnvironment",
    "bb.settings.setWorkspaceProfile",
    "bb.sheets.create",
    "bb.sheets.get",
    "bb.sheets.update",
    "bb.sql.admin",
    "bb.sql.ddl",
    "bb.sql.dml",
    "bb.sql.explain",
    "bb.sql.info",
    "bb.sql.select",
    "bb.taskRuns.create",
    "bb.taskRuns.list",
    "bb.users.create",
    "bb.users.delete",
    "bb.users.get",
    "bb.users.list",
    "bb.users.undelete",
    "bb.users.update",
    "bb.users.updateEmail",
    "bb.worksheets.get",
    "bb.worksheets.manage",
    "bb.workspaces.getIamPolicy",
    "bb.workspaces.setIamPolicy",
];

/// What workspaceAdmin holds and workspaceDBA does not.
const ADMIN_ONLY: &[&str] = &[
    "bb.groups.create",
    "bb.groups.delete",
    "bb.groups.update",
    "bb.identityProviders.create",
    "bb.identityProviders.delete",
    "bb.identityProviders.get",
    "bb.identityProviders.update",
    "bb.users.create",
    "bb.users.delete",
    "bb.users.undelete",
    "bb.users.update",
    "bb.users.updateEmail",
    "bb.workspaces.setIamPolicy",
];

const WORKSPACE_MEMBER: &[&str] = &[
    "bb.groups.create",
    "bb.groups.get",
    "bb.groups.list",
    "bb.instanceRoles.get",
    "bb.instanceRoles.list",
    "bb.policies.get",
    "bb.reviewConfigs.get",
    "bb.reviewConfigs.list",
    "bb.roles.get",
    "bb.roles.list",
    "bb.settings.getEnvironment",
    "bb.settings.getWorkspaceProfile",
    "bb.users.get",
    "bb.users.list",
    "bb.workspaces.getIamPolicy",
];

/// Prefixes of workspaceAdmin permissions that projectOwner does not hold, plus single ones.
const NOT_PROJECT_OWNER: &[&str] = &[
    "bb.groups.",
    "bb.identityProviders.",
    "bb.instanceRoles.",
    "bb.instances.",
    "bb.reviewConfigs.",
    "bb.roles.",
    "bb.settings.",
    "bb.sql.admin",
    "bb.worksheets.manage",
    "bb.workspaces.",
    "bb.projects.create",
    "bb.projects.delete",
    "bb.projects.list",
    "bb.projects.undelete",
    "bb.users.create",
    "bb.users.delete",
    "bb.users.undelete",
    "bb.users.update",
];

const PROJECT_DEVELOPER: &[&str] = &[
    "bb.auditLogs.search",
    "bb.changelogs.get",
    "bb.changelogs.list",
    "bb.databaseCatalogs.get",
    "bb.databaseGroups.get",
    "bb.databaseGroups.list",
    "bb.databases.check",
    "bb.databases.get",
    "bb.databases.getSchema",
    "bb.databases.list",
    "bb.databases.sync",
    "bb.issueComments.create",
    "bb.issueComments.list",
    "bb.issueComments.update",
    "bb.issues.create",
    "bb.issues.get",
    "bb.issues.list",
    "bb.issues.update",
    "bb.planCheckRuns.get",
    "bb.planCheckRuns.run",
    "bb.plans.create",
    "bb.plans.get",
    "bb.plans.list",
    "bb.projects.get",
    "bb.projects.getIamPolicy",
    "bb.releases.check",
    "bb.releases.get",
    "bb.releases.list",
    "bb.revisions.get",
    "bb.revisions.list",
    "bb.rollouts.create",
    "bb.rollouts.get",
    "bb.rollouts.list",
    "bb.sheets.create",
    "bb.sheets.get",
    "bb.sheets.update",
    "bb.taskRuns.list",
];

const SQL_EDITOR_USER: &[&str] = &[
    "bb.databaseCatalogs.get",
    "bb.databaseGroups.get",
    "bb.databaseGroups.list",
    "bb.databases.check",
    "bb.databases.get",
    "bb.databases.getSchema",
    "bb.databases.list",
    "bb.databases.sync",
    "bb.projects.get",
    "bb.projects.getIamPolicy",
    "bb.sql.ddl",
    "bb.sql.dml",
    "bb.sql.explain",
    "bb.sql.info",
    "bb.sql.select",
    "bb.worksheets.get",
];

const SQL_EDITOR_READ_USER: &[&str] = &[
    "bb.databaseCatalogs.get",
    "bb.databases.get",
    "bb.databases.getSchema",
    "bb.databases.list",
    "bb.projects.get",
    "bb.sql.explain",
    "bb.sql.info",
    "bb.sql.select",
    "bb.worksheets.get",
];

const PROJECT_RELEASER: &[&str] = &[
    "bb.changelogs.get",
    "bb.databaseCatalogs.get",
    "bb.databaseGroups.get",
    "bb.databaseGroups.list",
    "bb.databases.check",
    "bb.databases.get",
    "bb.databases.getSchema",
    "bb.databases.list",
    "bb.issueComments.create",
    "bb.issueComments.list",
    "bb.issueComments.update",
    "bb.issues.get",
    "bb.issues.list",
    "bb.planCheckRuns.get",
    "bb.planCheckRuns.run",
    "bb.plans.get",
    "bb.plans.list",
    "bb.projects.get",
    "bb.projects.getIamPolicy",
    "bb.releases.get",
    "bb.releases.list",
    "bb.revisions.get",
    "bb.revisions.list",
    "bb.rollouts.create",
    "bb.rollouts.get",
    "bb.rollouts.list",
    "bb.sheets.get",
    "bb.taskRuns.create",
    "bb.taskRuns.list",
];

const GITOPS_SERVICE_AGENT: &[&str] = &[
    "bb.plans.create",
    "bb.plans.get",
    "bb.releases.check",
    "bb.releases.create",
    "bb.releases.get",
    "bb.rollouts.create",
    "bb.rollouts.get",
    "bb.rollouts.list",
    "bb.taskRuns.create",
    "bb.taskRuns.list",
];

const PROJECT_VIEWER: &[&str] = &[
    "bb.databaseCatalogs.get",
    "bb.databaseGroups.get",
    "bb.databaseGroups.list",
    "bb.databases.get",
    "bb.databases.getSchema",
    "bb.databases.list",
    "bb.issueComments.create",
    "bb.issueComments.list",
    "bb.issueComments.update",
    "bb.issues.create",
    "bb.issues.get",
    "bb.projects.get",
    "bb.projects.getIamPolicy",
];

/// A built-in role: id, title, permissions (sorted).
pub struct BuiltIn {
    /// Role id.
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Permissions, sorted.
    pub permissions: Vec<String>,
}

/// The built-in roles in the order `GET /v1/roles` lists them.
pub fn built_in() -> Vec<BuiltIn> {
    let owned = |list: &[&str]| {
        let mut v: Vec<String> = list.iter().map(|p| (*p).to_owned()).collect();
        v.sort();
        v
    };
    let admin = owned(WORKSPACE_ADMIN);
    let dba = admin.iter().filter(|p| !ADMIN_ONLY.contains(&p.as_str())).cloned().collect();
    let owner = admin
        .iter()
        .filter(|p| !NOT_PROJECT_OWNER.iter().any(|x| p.starts_with(x)))
        .cloned()
        .collect();
    vec![
        BuiltIn { id: "workspaceAdmin", title: "Workspace admin", permissions: admin },
        BuiltIn { id: "workspaceDBA", title: "Workspace DBA", permissions: dba },
        BuiltIn {
            id: "workspaceMember",
            title: "Workspace member",
            permissions: owned(WORKSPACE_MEMBER),
        },
        BuiltIn { id: "projectOwner", title: "Project owner", permissions: owner },
        BuiltIn {
            id: "projectDeveloper",
            title: "Project developer",
            permissions: owned(PROJECT_DEVELOPER),
        },
        BuiltIn {
            id: "projectReleaser",
            title: "Project releaser",
            permissions: owned(PROJECT_RELEASER),
        },
        BuiltIn {
            id: "gitopsServiceAgent",
            title: "GitOps Service Agent",
            permissions: owned(GITOPS_SERVICE_AGENT),
        },
        BuiltIn {
            id: "projectViewer",
            title: "Project viewer",
            permissions: owned(PROJECT_VIEWER),
        },
        BuiltIn {
            id: "sqlEditorUser",
            title: "SQL Editor User",
            permissions: owned(SQL_EDITOR_USER),
        },
        BuiltIn {
            id: "sqlEditorReadUser",
            title: "SQL Editor Read User",
            permissions: owned(SQL_EDITOR_READ_USER),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holders(permission: &str) -> Vec<&'static str> {
        built_in()
            .into_iter()
            .filter(|r| r.permissions.iter().any(|p| p == permission))
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn task_run_creators_follow_the_source() {
        assert_eq!(
            holders("bb.taskRuns.create"),
            [
                "workspaceAdmin",
                "workspaceDBA",
                "projectOwner",
                "projectReleaser",
                "gitopsServiceAgent"
            ]
        );
        assert!(holders("bb.rollouts.create").contains(&"projectOwner"));
        assert!(holders("bb.issues.get").contains(&"projectOwner"));
        assert!(!holders("bb.projects.list").contains(&"projectOwner"));
    }
}
