//! The emulated workspace in memory: records, indexes and the IAM resolution every handler uses.
//!
//! Lookups go through `HashMap` indexes (projects, roles, groups, users, plans) so a world with
//! thousands of projects still answers list calls at thousands per second.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::roles;
use super::world::{self, ApprovalRule, RolloutPolicy, Template};

/// Issue type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// DATABASE_CHANGE.
    DatabaseChange,
    /// ROLE_GRANT.
    RoleGrant,
    /// ACCESS_GRANT.
    AccessGrant,
}

impl IssueType {
    /// The enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueType::DatabaseChange => "DATABASE_CHANGE",
            IssueType::RoleGrant => "ROLE_GRANT",
            IssueType::AccessGrant => "ACCESS_GRANT",
        }
    }

    /// Parses the enum name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "DATABASE_CHANGE" => Some(IssueType::DatabaseChange),
            "ROLE_GRANT" => Some(IssueType::RoleGrant),
            "ACCESS_GRANT" => Some(IssueType::AccessGrant),
            _ => None,
        }
    }
}

/// A user or service account.
#[derive(Debug, Clone)]
pub struct UserRec {
    /// Email.
    pub email: String,
    /// Display name.
    pub title: String,
    /// Human password.
    pub password: Option<String>,
    /// Service-account key.
    pub service_key: Option<String>,
}

impl UserRec {
    /// Whether this is a service account.
    pub fn is_service_account(&self) -> bool {
        self.service_key.is_some() || self.email.ends_with("service.bytebase.com")
    }

    /// The IAM member string for this principal.
    pub fn member(&self) -> String {
        if self.is_service_account() {
            format!("serviceAccount:{}", self.email)
        } else {
            format!("user:{}", self.email)
        }
    }
}

/// A role with its permission set.
#[derive(Debug, Clone)]
pub struct RoleRec {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Sorted permissions.
    pub permissions: Vec<String>,
    /// The same, for lookups.
    pub permission_set: HashSet<String>,
    /// Custom (true) or built-in.
    pub custom: bool,
}

/// An IAM policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyRec {
    /// Bindings.
    pub bindings: Vec<world::Binding>,
    /// Bumped on every change.
    pub etag: u64,
}

/// A project.
#[derive(Debug, Clone)]
pub struct ProjectRec {
    /// World settings.
    pub config: world::Project,
    /// IAM policy.
    pub iam: PolicyRec,
}

/// An approval step given.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproverRec {
    /// APPROVED or REJECTED.
    pub status: &'static str,
    /// Email.
    pub principal: String,
}

/// A comment on an issue.
#[derive(Debug, Clone)]
pub struct CommentRec {
    /// Numeric id.
    pub id: u64,
    /// Text.
    pub comment: String,
    /// Email of the author.
    pub creator: String,
    /// Creation time.
    pub create_time: DateTime<Utc>,
    /// For approval events: APPROVED, REJECTED or PENDING (re-requested).
    pub approval: Option<&'static str>,
}

/// An issue.
#[derive(Debug, Clone)]
pub struct IssueRec {
    /// Project id.
    pub project: String,
    /// Numeric id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Type.
    pub kind: IssueType,
    /// OPEN, DONE, CANCELED.
    pub status: &'static str,
    /// Creator email.
    pub creator: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
    /// Plan id.
    pub plan: Option<u64>,
    /// Labels.
    pub labels: Vec<String>,
    /// LOW, MODERATE, HIGH.
    pub risk_level: Option<String>,
    /// Draft.
    pub draft: bool,
    /// Whether approval finding has finished.
    pub finding_done: bool,
    /// The template found (None = SKIPPED once finding is done).
    pub template: Option<Template>,
    /// Steps given.
    pub approvers: Vec<ApproverRec>,
    /// Comments.
    pub comments: Vec<CommentRec>,
}

/// Plan-check state of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanCheck {
    /// No run.
    None,
    /// Running: finding waits.
    Running,
    /// Done without error.
    Done,
    /// Done with an error: automatic rollout creation gives up.
    Error,
    /// The run failed.
    Failed,
}

/// A plan spec.
#[derive(Debug, Clone)]
pub struct SpecRec {
    /// Spec id.
    pub id: String,
    /// Change config.
    pub change: Option<world::ChangeConfig>,
    /// Create config.
    pub create: Option<world::CreateConfig>,
}

/// A plan.
#[derive(Debug, Clone)]
pub struct PlanRec {
    /// Project id.
    pub project: String,
    /// Numeric id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Specs.
    pub specs: Vec<SpecRec>,
    /// Creator email.
    pub creator: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
    /// Linked issue id.
    pub issue: Option<u64>,
    /// Plan check.
    pub plan_check: PlanCheck,
    /// The rollout, once created.
    pub rollout: Option<RolloutRec>,
    /// PIPELINE_FAILED was posted for this plan since its last batchRun.
    pub failure_notified: bool,
}

/// A rollout.
#[derive(Debug, Clone)]
pub struct RolloutRec {
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
    /// Stages in environment order.
    pub stages: Vec<StageRec>,
}

/// A stage (one environment).
#[derive(Debug, Clone)]
pub struct StageRec {
    /// Environment id (`-` = none).
    pub env: String,
    /// Tasks.
    pub tasks: Vec<TaskRec>,
}

/// A task.
#[derive(Debug, Clone)]
pub struct TaskRec {
    /// Numeric id within the rollout.
    pub id: u64,
    /// Spec id.
    pub spec_id: String,
    /// Target database (or instance for a create).
    pub target: String,
    /// DATABASE_MIGRATE or DATABASE_CREATE.
    pub kind: &'static str,
    /// Skipped, with the reason.
    pub skipped: Option<String>,
    /// Runs, oldest first.
    pub runs: Vec<TaskRunRec>,
    /// Updated.
    pub update_time: DateTime<Utc>,
}

impl TaskRec {
    /// Task status from the latest run (AVAILABLE → PENDING).
    pub fn status(&self) -> &'static str {
        if self.skipped.is_some() {
            return "SKIPPED";
        }
        match self.runs.last().map(|r| r.status) {
            None => "NOT_STARTED",
            Some("AVAILABLE") => "PENDING",
            Some(status) => status,
        }
    }
}

/// A task run.
#[derive(Debug, Clone)]
pub struct TaskRunRec {
    /// Numeric id.
    pub id: u64,
    /// Creator email.
    pub creator: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
    /// PENDING, RUNNING, DONE, FAILED, CANCELED, AVAILABLE.
    pub status: &'static str,
    /// Detail.
    pub detail: String,
    /// Started.
    pub start_time: Option<DateTime<Utc>>,
    /// Scheduled run time.
    pub run_time: Option<DateTime<Utc>>,
}

/// Background work.
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// Finish approval finding for an issue.
    Finding {
        /// Project id.
        project: String,
        /// Issue id.
        issue: u64,
    },
    /// Try to create the rollout of a plan (the RolloutCreator).
    CreateRollout {
        /// Plan id.
        plan: u64,
    },
    /// Move a task run one step (PENDING → RUNNING → DONE/FAILED).
    AdvanceTaskRun {
        /// Plan id.
        plan: u64,
        /// Task run id.
        run: u64,
    },
}

/// A queued job; `due` None = manual (only `/_sim/step` runs it).
#[derive(Debug, Clone)]
pub struct Job {
    /// Order of queueing.
    pub seq: u64,
    /// When it becomes due on the sim clock.
    pub due: Option<DateTime<Utc>>,
    /// What to do.
    pub kind: JobKind,
}

/// Pacing of background work.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Finding delay; None = manual.
    pub finding: Option<TimeDelta>,
    /// Rollout creation delay.
    pub rollout: Option<TimeDelta>,
    /// Task run step delay.
    pub task_run: Option<TimeDelta>,
    /// Automatic task runs end FAILED.
    pub task_runs_fail: bool,
    /// Real-time wait before retrying a failed webhook post.
    pub webhook_retry: std::time::Duration,
}

/// The whole emulated workspace.
#[derive(Debug)]
pub struct Db {
    /// Workspace id.
    pub workspace: String,
    /// Workspace title.
    pub title: String,
    /// FREE, TEAM or ENTERPRISE.
    pub plan: String,
    /// Users by email.
    pub users: HashMap<String, UserRec>,
    /// Roles: custom first, then built-in.
    pub roles: Vec<RoleRec>,
    /// Role index by id.
    pub role_index: HashMap<String, usize>,
    /// Workspace IAM.
    pub workspace_iam: PolicyRec,
    /// Groups in order.
    pub groups: Vec<world::Group>,
    /// Group index by email.
    pub group_index: HashMap<String, usize>,
    /// Groups each user belongs to (user email → group emails).
    pub memberships: HashMap<String, Vec<String>>,
    /// Environments in order.
    pub environments: Vec<world::Environment>,
    /// Stored rollout policies by environment id.
    pub rollout_policies: HashMap<String, RolloutPolicy>,
    /// Approval rules; None = no setting row.
    pub approval: Option<Vec<ApprovalRule>>,
    /// Projects in order.
    pub projects: Vec<ProjectRec>,
    /// Project index by id.
    pub project_index: HashMap<String, usize>,
    /// Databases by name.
    pub databases: HashMap<String, world::Database>,
    /// Issues per project, by id.
    pub issues: HashMap<String, BTreeMap<u64, IssueRec>>,
    /// Plans by id.
    pub plans: HashMap<u64, PlanRec>,
    /// Next ids.
    pub next_issue: u64,
    /// Next plan id.
    pub next_plan: u64,
    /// Next task run id.
    pub next_task_run: u64,
    /// Next comment id.
    pub next_comment: u64,
    /// Next job sequence.
    pub next_job: u64,
    /// Queued jobs.
    pub jobs: Vec<Job>,
    /// Pacing.
    pub timing: Timing,
    /// Failed logins per email.
    pub login_failures: HashMap<String, Vec<DateTime<Utc>>>,
    /// Token signing key.
    pub secret: Vec<u8>,
    /// Webhook posts queued by the change under way, handed to the outlet when it ends.
    pub outbox: Vec<super::webhook::Outgoing>,
    /// The external URL webhook bodies link to (set at start when the world names none).
    pub external_url: String,
    /// The world's webhook relay, if any.
    pub webhook_relay: Option<String>,
}

/// Parses a timing value: a duration, or `manual`.
fn delay(field: &str, text: &str) -> Result<Option<TimeDelta>, String> {
    if text.trim() == "manual" {
        return Ok(None);
    }
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("timing.{field}: `{text}` is not a duration or `manual` ({e})"))?;
    TimeDelta::from_std(d).map(Some).map_err(|_| format!("timing.{field}: too long"))
}

impl Db {
    /// Builds the workspace of a world, checking references; `now` stamps undated records.
    pub fn from_world(world: world::World, now: DateTime<Utc>, seed: u64) -> Result<Db, String> {
        if !["FREE", "TEAM", "ENTERPRISE"].contains(&world.plan.as_str()) {
            return Err(format!("plan: `{}` is not FREE, TEAM or ENTERPRISE", world.plan));
        }
        let timing = Timing {
            finding: delay("finding", &world.timing.finding)?,
            rollout: delay("rollout", &world.timing.rollout)?,
            task_run: delay("taskRun", &world.timing.task_run)?,
            task_runs_fail: match world.timing.task_run_outcome.as_str() {
                "DONE" => false,
                "FAILED" => true,
                other => {
                    return Err(format!("timing.taskRunOutcome: `{other}` is not DONE/FAILED"));
                }
            },
            webhook_retry: humantime::parse_duration(world.timing.webhook_retry.trim()).map_err(
                |e| {
                    format!(
                        "timing.webhookRetry: `{}` is not a duration ({e})",
                        world.timing.webhook_retry
                    )
                },
            )?,
        };
        let mut db = Db {
            workspace: world.workspace.clone(),
            title: world.title.clone(),
            plan: world.plan.clone(),
            users: HashMap::new(),
            roles: Vec::new(),
            role_index: HashMap::new(),
            workspace_iam: PolicyRec { bindings: world.workspace_iam.clone(), etag: 1 },
            groups: world.groups.clone(),
            group_index: HashMap::new(),
            memberships: HashMap::new(),
            environments: world.environments.clone(),
            rollout_policies: HashMap::new(),
            approval: match world.approval_rules.clone() {
                None => Some(vec![ApprovalRule {
                    source: String::new(),
                    condition: world::Condition { expression: "true".into(), ..Default::default() },
                    template: Template {
                        title: "Fallback Rule".into(),
                        description: "Require project owner approval for all issues".into(),
                        flow: world::Flow { roles: vec!["roles/projectOwner".into()] },
                    },
                }]),
                Some(rules) => rules,
            },
            projects: Vec::new(),
            project_index: HashMap::new(),
            databases: HashMap::new(),
            issues: HashMap::new(),
            plans: HashMap::new(),
            next_issue: 100,
            next_plan: 100,
            next_task_run: 1,
            next_comment: 1,
            next_job: 0,
            jobs: Vec::new(),
            timing,
            login_failures: HashMap::new(),
            secret: format!("cabgate-sim-{seed}-{}", world.workspace).into_bytes(),
            outbox: Vec::new(),
            external_url: world.external_url.trim_end_matches('/').to_owned(),
            webhook_relay: world.webhook_relay.clone(),
        };
        for user in &world.users {
            if user.email.is_empty() {
                return Err("users: a user without an email".into());
            }
            db.users.insert(
                user.email.clone(),
                UserRec {
                    email: user.email.clone(),
                    title: user.title.clone(),
                    password: user.password.clone(),
                    service_key: user.service_key.clone(),
                },
            );
        }
        for role in &world.roles {
            if roles::built_in().iter().any(|b| b.id == role.id) {
                return Err(format!("roles: `{}` is a built-in role", role.id));
            }
            let mut permissions = role.permissions.clone();
            permissions.sort();
            db.push_role(RoleRec {
                id: role.id.clone(),
                title: role.title.clone(),
                description: role.description.clone(),
                permission_set: permissions.iter().cloned().collect(),
                permissions,
                custom: true,
            });
        }
        for b in roles::built_in() {
            db.push_role(RoleRec {
                id: b.id.into(),
                title: b.title.into(),
                description: String::new(),
                permission_set: b.permissions.iter().cloned().collect(),
                permissions: b.permissions,
                custom: false,
            });
        }
        for (i, group) in db.groups.iter().enumerate() {
            db.group_index.insert(group.email.clone(), i);
            for m in &group.members {
                let email = m.member.strip_prefix("users/").unwrap_or(&m.member).to_owned();
                db.memberships.entry(email).or_default().push(group.email.clone());
            }
        }
        for env in &world.environments {
            if let Some(policy) = &env.rollout_policy {
                db.rollout_policies.insert(env.id.clone(), policy.clone());
            }
        }
        for d in &world.databases {
            if !world.environments.iter().any(|e| e.id == d.environment) {
                return Err(format!(
                    "databases: `{}` is in unknown environment `{}`",
                    d.name, d.environment
                ));
            }
            db.databases.insert(d.name.clone(), d.clone());
        }
        let mut projects = Vec::new();
        if world.default_project && !world.projects.iter().any(|p| p.id == "default") {
            projects.push(world::Project {
                id: "default".into(),
                title: "Default Project".into(),
                ..Default::default()
            });
        }
        projects.extend(world.projects.iter().cloned());
        for project in projects {
            if db.project_index.contains_key(&project.id) {
                return Err(format!("projects: `{}` appears twice", project.id));
            }
            for hook in &project.webhooks {
                let at = format!("projects: `{}` webhook `{}`", project.id, hook.id);
                if hook.id.is_empty() {
                    return Err(format!("projects: `{}`: a webhook without an id", project.id));
                }
                // `:addWebhook` refuses a URL off the type's allowlist; so does a world.
                if !hook.url.is_empty() {
                    super::webhook::check_url(&hook.kind, &hook.url)
                        .map_err(|e| format!("{at}: {e}"))?;
                }
                if let Some(bad) = hook
                    .notification_types
                    .iter()
                    .find(|t| !super::webhook::EVENTS.contains(&t.as_str()))
                {
                    return Err(format!("{at}: unknown notification type `{bad}`"));
                }
            }
            db.project_index.insert(project.id.clone(), db.projects.len());
            let iam = PolicyRec { bindings: project.iam.clone(), etag: 1 };
            db.projects.push(ProjectRec { config: project, iam });
        }
        for issue in world.issues {
            db.seed_issue(issue, now)?;
        }
        // Seeding is the world as it stands, not events.
        db.outbox.clear();
        Ok(db)
    }

    fn push_role(&mut self, role: RoleRec) {
        self.role_index.insert(role.id.clone(), self.roles.len());
        self.roles.push(role);
    }

    /// The project with this id.
    pub fn project(&self, id: &str) -> Option<&ProjectRec> {
        self.project_index.get(id).map(|i| &self.projects[*i])
    }

    /// The role with this name (`roles/{id}`) or id.
    pub fn role(&self, name: &str) -> Option<&RoleRec> {
        let id = name.strip_prefix("roles/").unwrap_or(name);
        self.role_index.get(id).map(|i| &self.roles[*i])
    }

    /// Whether the licence has FEATURE_APPROVAL_WORKFLOW.
    pub fn approval_licensed(&self) -> bool {
        self.plan == "ENTERPRISE"
    }

    /// Queues a job `after` from `now` (None = manual).
    pub fn queue(&mut self, now: DateTime<Utc>, after: Option<TimeDelta>, kind: JobKind) {
        self.next_job += 1;
        let job = Job { seq: self.next_job, due: after.map(|d| now + d), kind };
        self.jobs.push(job);
    }

    /// The issue `project/id`.
    pub fn issue(&self, project: &str, id: u64) -> Option<&IssueRec> {
        self.issues.get(project).and_then(|m| m.get(&id))
    }

    /// The issue `project/id`, mutable.
    pub fn issue_mut(&mut self, project: &str, id: u64) -> Option<&mut IssueRec> {
        self.issues.get_mut(project).and_then(|m| m.get_mut(&id))
    }

    /// The IAM member strings that stand for `email`: the principal itself, its groups, and
    /// `allUsers`.
    pub fn member_keys(&self, email: &str) -> Vec<String> {
        let mut keys = vec!["allUsers".to_owned()];
        match self.users.get(email) {
            Some(user) => keys.push(user.member()),
            None => keys.push(format!("user:{email}")),
        }
        for group in self.memberships.get(email).into_iter().flatten() {
            keys.push(format!("group:{group}"));
        }
        keys
    }

    /// The roles `email` holds on the workspace, plus on `project` if given; expired bindings
    /// are ignored, residual (`resource.*`) conditions still grant.
    pub fn roles_of(
        &self,
        email: &str,
        project: Option<&str>,
        now: DateTime<Utc>,
    ) -> HashSet<String> {
        let keys = self.member_keys(email);
        let mut held = HashSet::new();
        let project = project.and_then(|p| self.project(p));
        let policies = std::iter::once(&self.workspace_iam).chain(project.map(|p| &p.iam));
        for policy in policies {
            for binding in &policy.bindings {
                if binding.members.iter().any(|m| keys.contains(m))
                    && !super::approval::binding_expired(&binding.condition, now)
                {
                    held.insert(binding.role.clone());
                }
            }
        }
        held
    }

    /// Whether `email` holds `permission` on the workspace (and `project`, if given).
    pub fn has_permission(
        &self,
        email: &str,
        permission: &str,
        project: Option<&str>,
        now: DateTime<Utc>,
    ) -> bool {
        self.roles_of(email, project, now)
            .iter()
            .filter_map(|r| self.role(r))
            .any(|r| r.permission_set.contains(permission))
    }

    fn seed_issue(&mut self, issue: world::Issue, now: DateTime<Utc>) -> Result<(), String> {
        let at = |what: &str| format!("issues ({} #{}): {what}", issue.project, issue.id);
        if self.project(&issue.project).is_none() {
            return Err(at("unknown project"));
        }
        let kind = match issue.kind.as_deref() {
            None => IssueType::DatabaseChange,
            Some(t) => IssueType::parse(t).ok_or_else(|| at(&format!("unknown type `{t}`")))?,
        };
        let status = match issue.status.as_deref().unwrap_or("OPEN") {
            "OPEN" => "OPEN",
            "DONE" => "DONE",
            "CANCELED" => "CANCELED",
            other => return Err(at(&format!("unknown status `{other}`"))),
        };
        let create_time = match &issue.create_time {
            None => now,
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map_err(|e| at(&format!("createTime `{t}`: {e}")))?
                .with_timezone(&Utc),
        };
        let plan_check = match issue.plan_check.as_deref().unwrap_or("DONE") {
            "DONE" => PlanCheck::Done,
            "RUNNING" => PlanCheck::Running,
            "FAILED" => PlanCheck::Failed,
            "ERROR" => PlanCheck::Error,
            "NONE" => PlanCheck::None,
            other => return Err(at(&format!("unknown planCheck `{other}`"))),
        };
        let id = if issue.id == 0 { self.next_issue } else { issue.id };
        if self.issue(&issue.project, id).is_some() {
            return Err(at("duplicate id"));
        }
        self.next_issue = self.next_issue.max(id + 1);
        let mut approvers = Vec::new();
        for a in &issue.approvers {
            let status = match a.status.as_str() {
                "APPROVED" => "APPROVED",
                "REJECTED" => "REJECTED",
                other => return Err(at(&format!("approver status `{other}`"))),
            };
            approvers.push(ApproverRec { status, principal: a.principal.clone() });
        }
        let draft = NewIssue {
            project: issue.project.clone(),
            title: issue.title.clone(),
            description: issue.description.clone(),
            kind,
            creator: issue.creator.clone(),
            labels: issue.labels.clone(),
            risk_level: issue.risk_level.clone(),
            draft: issue.draft,
            specs: issue.specs.clone(),
            plan_check,
        };
        let (id, plan_id) = self.insert_issue(draft, Some(id), create_time)?;
        let finding_done = issue.finding_done.unwrap_or(true);
        let template = if finding_done {
            super::approval::find_template(self, &issue.project, id)
        } else {
            None
        };
        let record = self.issue_mut(&issue.project, id).ok_or_else(|| at("vanished"))?;
        record.status = status;
        record.approvers = approvers;
        record.finding_done = finding_done;
        record.template = template;
        if !finding_done {
            // Seeded as still CHECKING: only `POST /_sim/step` finishes it.
            let project = issue.project.clone();
            self.queue(now, None, JobKind::Finding { project, issue: id });
        }
        if issue.has_rollout {
            super::rollout::create_rollout_now(self, plan_id, now, None);
            if let Some(record) = self.issue_mut(&issue.project, id) {
                record.status = status;
            }
        }
        Ok(())
    }

    /// Creates an issue and its plan; returns (issue id, plan id). Finding is left to the caller.
    pub fn insert_issue(
        &mut self,
        new: NewIssue,
        id: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), String> {
        if self.project(&new.project).is_none() {
            return Err(format!("project `{}` not found", new.project));
        }
        let id = id.unwrap_or(self.next_issue);
        self.next_issue = self.next_issue.max(id + 1);
        let plan_id = self.next_plan;
        self.next_plan += 1;
        let specs = new
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| SpecRec {
                id: if s.id.is_empty() { format!("spec-{}", i + 1) } else { s.id.clone() },
                change: s.change_database_config.clone(),
                create: s.create_database_config.clone(),
            })
            .collect();
        self.plans.insert(
            plan_id,
            PlanRec {
                project: new.project.clone(),
                id: plan_id,
                title: new.title.clone(),
                description: new.description.clone(),
                specs,
                creator: new.creator.clone(),
                create_time: now,
                update_time: now,
                issue: Some(id),
                plan_check: new.plan_check,
                rollout: None,
                failure_notified: false,
            },
        );
        let issue = IssueRec {
            project: new.project.clone(),
            id,
            title: new.title,
            description: new.description,
            kind: new.kind,
            status: "OPEN",
            creator: new.creator,
            create_time: now,
            update_time: now,
            plan: Some(plan_id),
            labels: new.labels,
            risk_level: new.risk_level,
            draft: new.draft,
            finding_done: false,
            template: None,
            approvers: Vec::new(),
            comments: Vec::new(),
        };
        self.issues.entry(new.project).or_default().insert(id, issue);
        Ok((id, plan_id))
    }
}

/// What creating an issue needs.
#[derive(Debug, Clone)]
pub struct NewIssue {
    /// Project id.
    pub project: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Type.
    pub kind: IssueType,
    /// Creator email.
    pub creator: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Risk level.
    pub risk_level: Option<String>,
    /// Draft.
    pub draft: bool,
    /// Plan specs.
    pub specs: Vec<world::Spec>,
    /// Plan check state.
    pub plan_check: PlanCheck,
}
