//! The Bytebase calls cabgate makes, one method each, named after the RPC.
//!
//! Resource names go into paths as Bytebase writes them (`projects/p/issues/7`); every method
//! documents its endpoint. The read calls serve `check` and `snapshot` (bytebase-api.md §10), the
//! write calls serve the `apply` engine (§2, §3).

use reqwest::Method;
use serde_json::{Value, json};

use super::client::Client;
use super::error::Result;
use super::models::{
    ApprovalRule, Environment, FeatureMatrix, Group, IamPolicy, Issue, IssueComment, Plan, Policy,
    Project, Role, Rollout, Setting, Subscription, TaskRun, Workspace,
};

/// Largest page Bytebase serves.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The feature whose absence makes every issue SKIPPED.
pub const APPROVAL_FEATURE: &str = "FEATURE_APPROVAL_WORKFLOW";

impl Client {
    fn page_param(&self) -> (&'static str, String) {
        ("pageSize", self.page_size().to_string())
    }

    /// `GET /v1/workspaces/-`: the workspace, whose real id the IAM calls need.
    pub async fn get_workspace(&self) -> Result<Workspace> {
        self.call(Method::GET, "workspaces/-", &[], None).await
    }

    /// `GET /v1/subscription`: the plan in force (FREE when unlicensed or expired).
    pub async fn get_subscription(&self) -> Result<Subscription> {
        self.call(Method::GET, "subscription", &[], None).await
    }

    /// `GET /v1/feature`: which plan has which feature.
    pub async fn get_feature_matrix(&self) -> Result<FeatureMatrix> {
        self.call(Method::GET, "feature", &[], None).await
    }

    /// `GET /v1/settings/{name}`; `None` when no row is stored (404).
    pub async fn get_setting(&self, name: &str) -> Result<Option<Setting>> {
        self.call_optional(Method::GET, &format!("settings/{name}"), &[]).await
    }

    /// The workspace approval rules (`settings/WORKSPACE_APPROVAL`); none stored = no rule.
    pub async fn list_approval_rules(&self) -> Result<Vec<ApprovalRule>> {
        let setting = self.get_setting("WORKSPACE_APPROVAL").await?;
        Ok(setting.and_then(|s| s.value.workspace_approval).map(|a| a.rules).unwrap_or_default())
    }

    /// The environments in stage order (`settings/ENVIRONMENT`).
    pub async fn list_environments(&self) -> Result<Vec<Environment>> {
        let setting = self.get_setting("ENVIRONMENT").await?;
        Ok(setting.and_then(|s| s.value.environment).map(|e| e.environments).unwrap_or_default())
    }

    /// `GET /v1/roles`: custom roles, then built-ins, with their permissions.
    pub async fn list_roles(&self) -> Result<Vec<Role>> {
        // Not paged today; following a token costs nothing if a later version pages it.
        self.list_all("roles", &[], "roles").await
    }

    /// `GET /v1/{workspace}:getIamPolicy`, `workspace` being `workspaces/{id}`.
    pub async fn get_workspace_iam_policy(&self, workspace: &str) -> Result<IamPolicy> {
        self.call(Method::GET, &format!("{workspace}:getIamPolicy"), &[], None).await
    }

    /// `GET /v1/projects` (every page).
    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        self.list_all("projects", &[self.page_param()], "projects").await
    }

    /// `GET /v1/{project}:getIamPolicy`, `project` being `projects/{id}`.
    pub async fn get_project_iam_policy(&self, project: &str) -> Result<IamPolicy> {
        self.call(Method::GET, &format!("{project}:getIamPolicy"), &[], None).await
    }

    /// `GET /v1/groups` (every page).
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        self.list_all("groups", &[self.page_param()], "groups").await
    }

    /// `GET /v1/environments/{id}/policies/rollout_policy` (a default when none is stored).
    pub async fn get_rollout_policy(&self, environment_id: &str) -> Result<Policy> {
        let path = format!("environments/{environment_id}/policies/rollout_policy");
        Ok(self.call_optional(Method::GET, &path, &[]).await?.unwrap_or_default())
    }

    /// `GET /v1/{issue}`.
    pub async fn get_issue(&self, issue: &str) -> Result<Issue> {
        self.call(Method::GET, issue, &[], None).await
    }

    /// `GET /v1/{project}/issues?filter=…` (every page; short and empty pages followed).
    pub async fn list_issues(&self, project: &str, filter: &str) -> Result<Vec<Issue>> {
        let mut query = vec![self.page_param()];
        if !filter.is_empty() {
            query.push(("filter", filter.to_owned()));
        }
        self.list_all(&format!("{project}/issues"), &query, "issues").await
    }

    /// `POST /v1/{project}/issues:search` (`projects/-` = every project the caller can read).
    pub async fn search_issues(&self, project: &str, filter: &str) -> Result<Vec<Issue>> {
        let body = json!({ "filter": filter, "pageSize": self.page_size() });
        self.search_all(&format!("{project}/issues:search"), &body, "issues").await
    }

    /// `POST /v1/{issue}:comment`.
    pub async fn create_issue_comment(&self, issue: &str, comment: &str) -> Result<IssueComment> {
        let body = json!({ "comment": comment });
        self.call(Method::POST, &format!("{issue}:comment"), &[], Some(&body)).await
    }

    /// `GET /v1/{issue}/issueComments` (every page).
    pub async fn list_issue_comments(&self, issue: &str) -> Result<Vec<IssueComment>> {
        self.list_all(&format!("{issue}/issueComments"), &[self.page_param()], "issueComments")
            .await
    }

    /// `POST /v1/{issue}:approve` with a comment. On a SKIPPED issue Bytebase answers 500: check
    /// `approvalStatus` first.
    pub async fn approve_issue(&self, issue: &str, comment: &str) -> Result<Issue> {
        let body = json!({ "comment": comment });
        self.call(Method::POST, &format!("{issue}:approve"), &[], Some(&body)).await
    }

    /// `POST /v1/{issue}:reject` with a comment (the reason, or the rework request).
    pub async fn reject_issue(&self, issue: &str, comment: &str) -> Result<Issue> {
        let body = json!({ "comment": comment });
        self.call(Method::POST, &format!("{issue}:reject"), &[], Some(&body)).await
    }

    /// `GET /v1/{plan}` (`hasRollout` tells whether the rollout exists).
    pub async fn get_plan(&self, plan: &str) -> Result<Plan> {
        self.call(Method::GET, plan, &[], None).await
    }

    /// `GET /v1/{plan}/rollout`; `None` while it does not exist (404).
    pub async fn get_rollout(&self, plan: &str) -> Result<Option<Rollout>> {
        self.call_optional(Method::GET, &format!("{plan}/rollout"), &[]).await
    }

    /// `POST /v1/{plan}/rollout` (idempotent: adds missing tasks only). `target` limits it to one
    /// stage (`environments/{e}`).
    pub async fn create_rollout(&self, plan: &str, target: Option<&str>) -> Result<Rollout> {
        let body = match target {
            Some(target) => json!({ "target": target }),
            None => json!({}),
        };
        self.call(Method::POST, &format!("{plan}/rollout"), &[], Some(&body)).await
    }

    /// `GET /v1/{task}/taskRuns` (not paged); `-` wildcards allowed in the stage and task
    /// segments, e.g. `projects/p/plans/1/rollout/stages/-/tasks/-`.
    pub async fn list_task_runs(&self, task: &str) -> Result<Vec<TaskRun>> {
        self.list_all(&format!("{task}/taskRuns"), &[], "taskRuns").await
    }

    /// `POST /v1/{stage}/tasks:batchRun`: tasks of one stage only.
    pub async fn batch_run_tasks(&self, stage: &str, tasks: &[String]) -> Result<()> {
        let body = json!({ "tasks": tasks });
        let _: Value =
            self.call(Method::POST, &format!("{stage}/tasks:batchRun"), &[], Some(&body)).await?;
        Ok(())
    }

    /// `POST /v1/{stage}/tasks:batchSkip` (NOT_STARTED, FAILED or CANCELED tasks; no approval
    /// check on Bytebase's side). The reason is cut to Bytebase's 1000 characters.
    pub async fn batch_skip_tasks(
        &self,
        stage: &str,
        tasks: &[String],
        reason: &str,
    ) -> Result<()> {
        let reason: String = reason.chars().take(1000).collect();
        let body = json!({ "tasks": tasks, "reason": reason });
        let _: Value =
            self.call(Method::POST, &format!("{stage}/tasks:batchSkip"), &[], Some(&body)).await?;
        Ok(())
    }

    /// `POST /v1/{task}/taskRuns:batchCancel` (`tasks/-` = the whole stage).
    pub async fn batch_cancel_task_runs(&self, task: &str, task_runs: &[String]) -> Result<()> {
        let body = json!({ "taskRuns": task_runs });
        let path = format!("{task}/taskRuns:batchCancel");
        let _: Value = self.call(Method::POST, &path, &[], Some(&body)).await?;
        Ok(())
    }
}

/// The filter string for issues created at or after `since` with approval status `status`.
///
/// Only `&&` joins terms; `approval_status` is applied after the page is read (bytebase-api.md §2).
pub fn approval_status_filter(status: &str, since: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "approval_status == \"{status}\" && create_time >= \"{}\"",
        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_filter_uses_rfc3339_and_only_and() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z").unwrap().to_utc();
        assert_eq!(
            approval_status_filter("SKIPPED", since),
            r#"approval_status == "SKIPPED" && create_time >= "2026-11-26T12:00:00Z""#
        );
    }
}
