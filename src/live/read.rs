//! Reading the snapshot from Bytebase: the minimum read set of bytebase-api.md §10, in its order.
//!
//! Per-project and per-environment reads run as concurrent tasks; the client's semaphore bounds
//! how many requests are in flight, so a workspace of a thousand projects costs about
//! `requests × latency / concurrency`, not `requests × latency`.

use std::future::Future;

use chrono::{DateTime, Utc};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use tokio::task::JoinSet;

use super::{
    BindingFacts, ConditionFacts, EnvironmentFacts, GroupFacts, GroupMemberFacts, IamPolicyFacts,
    ProjectFacts, RoleFacts, RolloutPolicyFacts, SNAPSHOT_VERSION, SkippedIssue, Snapshot,
    SubscriptionFacts, WebhookFacts,
};
use crate::bytebase::api::{APPROVAL_FEATURE, approval_status_filter};
use crate::bytebase::client::without_credentials;
use crate::bytebase::models::{IamPolicy, Issue, Project, Subscription};
use crate::bytebase::{BytebaseError, Client};
use crate::spec::Spec;

/// Why the snapshot could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LiveError {
    /// A Bytebase call failed (after retries).
    #[error(transparent)]
    Bytebase(#[from] BytebaseError),
    /// A spec field the read depends on cannot be used.
    #[error("{field}: {reason}")]
    Spec {
        /// The spec field, e.g. `bytebase.projects`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A read task ended without a result (it panicked or was cancelled).
    #[error("a concurrent Bytebase read did not finish: {0}")]
    Task(String),
}

/// What to read besides the spec.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The time the snapshot is taken at; the SKIPPED window ends here.
    pub now: DateTime<Utc>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { now: Utc::now() }
    }
}

/// Matches project ids against `bytebase.projects` (ids or globs; `projects/` prefixes allowed).
pub fn governed_matcher(patterns: &[String]) -> Result<GlobSet, LiveError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let id = pattern.strip_prefix("projects/").unwrap_or(pattern);
        let glob = GlobBuilder::new(id).literal_separator(true).build().map_err(|e| {
            LiveError::Spec { field: "bytebase.projects", reason: format!("{pattern:?}: {e}") }
        })?;
        set.add(glob);
    }
    set.build().map_err(|e| LiveError::Spec { field: "bytebase.projects", reason: e.to_string() })
}

/// Reads the live configuration that `spec` governs into one snapshot.
pub async fn read(
    client: &Client,
    spec: &Spec,
    options: &ReadOptions,
) -> Result<Snapshot, LiveError> {
    let governed = governed_matcher(&spec.bytebase.projects)?;
    let lookback =
        crate::spec::parse_duration(&spec.alerts.skipped_approval.lookback).map_err(|e| {
            LiveError::Spec { field: "alerts.skippedApproval.lookback", reason: e.to_string() }
        })?;
    let since = crate::spec::window_start(options.now, lookback);

    // 1–2. Login (lazily, on the first call) and the workspace id, which the IAM read needs.
    let workspace = client.get_workspace().await?.name;
    // 3–10 only depend on the workspace id and the project list, so they overlap: the client's
    // semaphore keeps at most `concurrency` requests in flight, and the whole read costs about
    // three round trips plus `requests × latency / concurrency`.
    let filter = approval_status_filter("SKIPPED", since);
    let (licence, approval_rules, roles, workspace_iam, (projects, skipped), groups, environments) =
        tokio::try_join!(
            read_licence(client),
            async { client.list_approval_rules().await.map_err(LiveError::from) },
            async { client.list_roles().await.map_err(LiveError::from) },
            async { client.get_workspace_iam_policy(&workspace).await.map_err(LiveError::from) },
            read_projects(client, &governed, &filter),
            async { client.list_groups().await.map_err(LiveError::from) },
            read_environments(client),
        )?;
    let (subscription, approval_feature) = licence;
    let mut roles: Vec<RoleFacts> = roles
        .into_iter()
        .map(|r| RoleFacts {
            name: r.name,
            title: r.title,
            kind: or_zero(r.kind, "TYPE_UNSPECIFIED"),
            permissions: sorted(r.permissions),
        })
        .collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    let mut groups: Vec<GroupFacts> = groups
        .into_iter()
        .map(|g| GroupFacts {
            name: g.name,
            email: g.email,
            title: g.title,
            members: sorted(
                g.members
                    .into_iter()
                    .map(|m| GroupMemberFacts {
                        member: m.member,
                        role: or_zero(m.role, "ROLE_UNSPECIFIED"),
                    })
                    .collect(),
            ),
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let mut skipped_issues: Vec<SkippedIssue> = skipped
        .into_iter()
        // The filter is Bytebase's job; this guards against a server that ignores part of it.
        .filter(|i| i.approval_status.as_str() == "SKIPPED")
        .filter(|i| i.create_time.is_none_or(|t| t >= since))
        .map(skipped_issue)
        .collect();
    skipped_issues.sort_by(|a, b| a.name.cmp(&b.name));
    skipped_issues.dedup_by(|a, b| a.name == b.name);
    let workspace_iam_policy = iam_facts(workspace_iam);

    Ok(Snapshot {
        version: SNAPSHOT_VERSION,
        source: without_credentials(client.base_url()),
        taken_at: options.now,
        workspace,
        subscription: SubscriptionFacts {
            plan: or_zero(subscription.plan, "PLAN_TYPE_UNSPECIFIED"),
            trialing: subscription.trialing,
        },
        approval_feature,
        approval_rules: approval_rules
            .into_iter()
            .map(|mut rule| {
                if rule.source.is_empty() {
                    rule.source = "SOURCE_UNSPECIFIED".to_owned();
                }
                rule
            })
            .collect(),
        roles,
        workspace_iam_policy,
        projects,
        groups,
        environments,
        skipped_since: Some(since),
        skipped_issues,
    })
}

/// The plan in force and whether it includes the approval feature: without it every issue is
/// SKIPPED whatever the rules say.
async fn read_licence(client: &Client) -> Result<(Subscription, bool), LiveError> {
    let subscription = client.get_subscription().await?;
    // NOTE: a matrix that does not list the feature is read as "not licensed": the safe answer for
    // a compliance check, since Bytebase gates approval finding on that very entry. A Bytebase
    // without `GET /v1/feature` (404) is judged by its plan: only ENTERPRISE is assumed to have
    // custom approval flows, so a TEAM plan there reads as unlicensed (a finding to look at, never
    // a gap missed).
    let approval_feature = match client.get_feature_matrix().await {
        Ok(matrix) => matrix.allows(APPROVAL_FEATURE, &subscription.plan).unwrap_or(false),
        Err(error) if error.is_not_found() => subscription.plan == "ENTERPRISE",
        Err(error) => return Err(error.into()),
    };
    Ok((subscription, approval_feature))
}

/// 6–7. Every project with its IAM policy, and the SKIPPED issues of the governed ones (both
/// reads per project run together).
async fn read_projects(
    client: &Client,
    governed: &GlobSet,
    filter: &str,
) -> Result<(Vec<ProjectFacts>, Vec<Issue>), LiveError> {
    let mut listed = client.list_projects().await?;
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = listed.iter().map(|p| p.name.clone()).collect();
    let governed_names: Vec<String> =
        listed.iter().filter(|p| governed.is_match(p.id())).map(|p| p.name.clone()).collect();
    let (policies, found) = tokio::try_join!(
        for_each(client, names, |client, project| async move {
            client.get_project_iam_policy(&project).await
        }),
        for_each(client, governed_names, |client, project| {
            let filter = filter.to_owned();
            async move { client.list_issues(&project, &filter).await }
        }),
    )?;
    let projects = listed
        .into_iter()
        .zip(policies)
        .map(|(project, policy)| project_facts(project, policy, governed))
        .collect();
    Ok((projects, found.into_iter().flatten().collect()))
}

/// 9–10. Environments in stage order, each with its rollout policy (a default when none is
/// stored).
async fn read_environments(client: &Client) -> Result<Vec<EnvironmentFacts>, LiveError> {
    let listed = client.list_environments().await?;
    let ids: Vec<String> = listed.iter().map(|e| environment_id(&e.id, &e.name)).collect();
    let policies =
        for_each(
            client,
            ids.clone(),
            |client, id| async move { client.get_rollout_policy(&id).await },
        )
        .await?;
    Ok(listed
        .into_iter()
        .zip(ids)
        .zip(policies)
        .map(|((env, id), policy)| EnvironmentFacts {
            name: if env.name.is_empty() { format!("environments/{id}") } else { env.name },
            id,
            title: env.title,
            rollout_policy: RolloutPolicyFacts {
                automatic: policy.rollout_policy.automatic,
                roles: policy.rollout_policy.roles,
            },
        })
        .collect())
}

/// Runs `read` for every item as concurrent tasks and returns the results in the items' order.
/// The client's semaphore bounds the requests in flight; the first error wins.
async fn for_each<I, T, F, Fut>(
    client: &Client,
    items: Vec<I>,
    read: F,
) -> Result<Vec<T>, LiveError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(Client, I) -> Fut,
    Fut: Future<Output = Result<T, BytebaseError>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let work = read(client.clone(), item);
        tasks.spawn(async move { (index, work.await) });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.map_err(|e| LiveError::Task(e.to_string()))?;
        match result {
            Ok(value) => results[index] = Some(value),
            Err(error) => {
                // Dropping the set aborts the remaining reads: no request outlives the failure.
                tasks.abort_all();
                return Err(error.into());
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| LiveError::Task("a read returned no result".to_owned())))
        .collect()
}

fn project_facts(project: Project, policy: IamPolicy, governed: &GlobSet) -> ProjectFacts {
    let is_governed = governed.is_match(project.id());
    let mut webhooks: Vec<WebhookFacts> = project
        .webhooks
        .into_iter()
        .map(|w| WebhookFacts {
            name: w.name,
            kind: or_zero(w.kind, "TYPE_UNSPECIFIED"),
            title: w.title,
            notification_types: w.notification_types,
        })
        .collect();
    webhooks.sort_by(|a, b| a.name.cmp(&b.name));
    ProjectFacts {
        name: project.name,
        title: project.title,
        state: or_zero(project.state, "STATE_UNSPECIFIED"),
        governed: Some(is_governed),
        require_issue_approval: project.require_issue_approval,
        allow_self_approval: project.allow_self_approval,
        webhooks,
        iam_policy: iam_facts(policy),
    }
}

fn iam_facts(policy: IamPolicy) -> IamPolicyFacts {
    let bindings = policy
        .bindings
        .into_iter()
        .map(|b| BindingFacts {
            role: b.role,
            members: sorted(b.members),
            condition: ConditionFacts { expression: b.condition.expression },
        })
        .collect();
    IamPolicyFacts { bindings: sorted(bindings) }
}

fn skipped_issue(issue: Issue) -> SkippedIssue {
    SkippedIssue {
        project: issue.project().to_owned(),
        title: issue.title,
        kind: or_zero(issue.kind, "TYPE_UNSPECIFIED"),
        status: issue.status.as_str().to_owned(),
        approval_status: issue.approval_status.as_str().to_owned(),
        creator: issue.creator,
        create_time: issue.create_time,
        plan: issue.plan,
        name: issue.name,
    }
}

/// An environment's id from its `id` field, or from its name when Bytebase left the id out.
fn environment_id(id: &str, name: &str) -> String {
    if id.is_empty() {
        name.strip_prefix("environments/").unwrap_or(name).to_owned()
    } else {
        id.to_owned()
    }
}

fn or_zero(value: String, zero: &str) -> String {
    if value.is_empty() { zero.to_owned() } else { value }
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governed_projects_match_ids_and_globs() {
        let set = governed_matcher(&["payments".into(), "ledger-*".into(), "projects/hr".into()])
            .unwrap();
        assert!(set.is_match("payments"));
        assert!(set.is_match("ledger-eu"));
        assert!(set.is_match("hr"));
        assert!(!set.is_match("payments-sandbox"));
        assert!(governed_matcher(&["*".into()]).unwrap().is_match("anything"));
        assert!(governed_matcher(&["[".into()]).is_err());
    }

    #[test]
    fn source_url_drops_credentials() {
        assert_eq!(without_credentials("https://u:p@bb.example/base/"), "https://bb.example/base");
        assert_eq!(without_credentials("https://BB.example/"), "https://bb.example");
        assert_eq!(without_credentials("http://u:p@[::1"), "http://[::1");
        assert_eq!(environment_id("", "environments/prod"), "prod");
    }
}
