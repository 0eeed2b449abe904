//! The runner: one pass = observe → decide → act for every governed issue, then the SKIPPED
//! alerts; the loop repeats it every `pollInterval`, earlier when a webhook wakes it.
//!
//! Crash safety comes from the record: after every action the record notes it done, and the
//! state moves only once every action of the step is done. A runner rebuilt from the store after
//! a crash between any two actions decides again from fresh facts and resumes; actions already
//! done are not repeated, and the one in flight at the crash is idempotent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::spec::Spec;
use crate::spec::model::{ActionKind, WorkflowSpec};
use crate::workflow::act::{ActSettings, Outcome, Target};
use crate::workflow::decide::{Machine, Record, Step, decide};
use crate::workflow::facts::{Governance, Observation};
use crate::workflow::listen::Wake;
use crate::workflow::metrics::Metrics;
use crate::workflow::observe::{Projects, observe, observe_one};
use crate::workflow::port::{
    ApiError, Bytebase, ErrorKind, JournalEntry, PortResult, ServiceNow, SkippedAlert, Store,
};
use crate::workflow::template::{Context, change_fields, correlation_id};

/// The spec could not be turned into runner settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A duration field does not parse.
    #[error("workflow field `{field}`: `{value}` is not a duration such as 30s, 10m or 7d")]
    Duration {
        /// The spec field.
        field: &'static str,
        /// What it says.
        value: String,
    },
    /// A project pattern is not a valid glob.
    #[error("bytebase.projects: {0}")]
    Projects(#[from] globset::Error),
    /// `apply` needs the ServiceNow side.
    #[error("the spec has no `servicenow` section; `apply` needs one")]
    NoServiceNow,
}

/// Everything a runner needs from the spec.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The state machine.
    pub machine: Machine,
    /// Governed projects.
    pub projects: Projects,
    /// What actions need.
    pub act: ActSettings,
    /// How far back to look for SKIPPED issues.
    pub lookback: Duration,
    /// Time between passes.
    pub poll_interval: Duration,
    /// The Bytebase service account (the actor in the journal).
    pub service_account: String,
}

impl Settings {
    /// Settings from a spec; `default` is the default workflow.
    pub fn from_spec(spec: &Spec, default: &WorkflowSpec) -> Result<Settings, SettingsError> {
        let duration = |field: &'static str, value: &str| {
            humantime::parse_duration(value)
                .map_err(|_| SettingsError::Duration { field, value: value.to_owned() })
        };
        let wf = &spec.workflow;
        let poll_interval = duration("pollInterval", &wf.poll_interval)?;
        let rollout_timeout = duration("rolloutWait.timeout", &wf.rollout_wait.timeout)?;
        let lookback =
            duration("alerts.skippedApproval.lookback", &spec.alerts.skipped_approval.lookback)?;
        let governed_envs: Vec<_> = spec.environments.iter().filter(|(_, e)| e.governed).collect();
        let governance = Governance {
            governed: governed_envs.iter().map(|(id, _)| (*id).to_owned()).collect(),
            require_window: governed_envs
                .iter()
                .filter(|(_, e)| e.change.as_ref().is_some_and(|c| c.require_window))
                .map(|(id, _)| (*id).to_owned())
                .collect(),
            rollout_timeout: to_delta(rollout_timeout),
        };
        let assignment_group = governed_envs
            .iter()
            .filter_map(|(_, e)| e.change.as_ref().and_then(|c| c.assignment_group.clone()))
            .next();
        let instance_url = spec
            .servicenow
            .as_ref()
            .map(|s| s.instance.clone())
            .ok_or(SettingsError::NoServiceNow)?;
        Ok(Settings {
            machine: Machine::from_spec(wf, default),
            projects: Projects::new(&spec.bytebase.projects)?,
            act: ActSettings {
                bytebase_url: spec.bytebase.url.clone(),
                instance_url,
                template: wf.change.clone(),
                assignment_group,
                fallback_create: wf.rollout_wait.fallback_create,
                on_rework: wf.on_rework,
                governance,
            },
            lookback,
            poll_interval,
            service_account: spec.bytebase.service_account.clone(),
        })
    }
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// How many further steps one issue may take in the pass that moved it (each after a fresh
/// read of that issue): enough for approve → roll out, bounded so one issue cannot hold a pass.
const FOLLOW_UPS: usize = 2;

/// Where the runner's time comes from (the emulators' movable clock in tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// What one action of a pass did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReport {
    /// Its kind.
    pub kind: ActionKind,
    /// `done`, `skipped`, `blocked` or `failed`.
    pub outcome: String,
    /// What happened.
    pub detail: String,
}

/// What one pass did for one issue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// The issue.
    pub issue: String,
    /// The transition.
    pub transition: String,
    /// From state.
    pub from: String,
    /// To state.
    pub to: String,
    /// True when every action was done and the state moved.
    pub completed: bool,
    /// Each action tried.
    pub actions: Vec<ActionReport>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// Governed issues observed.
    pub issues: usize,
    /// Steps taken.
    pub steps: Vec<StepReport>,
    /// SKIPPED issues put in the outbox for the first time.
    pub new_alerts: usize,
    /// Alerts still waiting for a sink.
    pub outbox: u64,
    /// API errors met by actions (the issue is retried next pass).
    pub errors: Vec<String>,
    /// False when the pass stopped early (shutdown, or an action budget in tests).
    pub finished: bool,
}

/// When a pass must stop between two actions.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    budget: std::sync::Mutex<Option<usize>>,
}

impl Stop {
    /// Stops after `actions` more actions (tests simulate a crash between two actions).
    pub fn after(actions: usize) -> Stop {
        Stop { requested: AtomicBool::new(false), budget: std::sync::Mutex::new(Some(actions)) }
    }

    /// Asks the pass to stop after the action in flight (SIGTERM, SIGINT).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// True once a stop was requested.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Takes one action from the budget; false when the pass must stop instead.
    fn take(&self) -> bool {
        if self.requested() {
            return false;
        }
        let Ok(mut budget) = self.budget.lock() else { return false };
        match budget.as_mut() {
            None => true,
            Some(0) => {
                self.requested.store(true, Ordering::SeqCst);
                false
            }
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

/// The runner: the two APIs, the store, the settings.
pub struct Runner<B, S, St> {
    /// Bytebase.
    pub bytebase: B,
    /// ServiceNow.
    pub servicenow: S,
    /// The state store.
    pub store: St,
    /// From the spec.
    pub settings: Settings,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Now.
    pub clock: Clock,
}

/// One step `--dry-run` would take, with the payloads it would send.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The decided step.
    pub step: Step,
    /// What each action would send.
    pub payloads: Vec<serde_json::Value>,
}

impl<B: Bytebase, S: ServiceNow, St: Store> Runner<B, S, St> {
    async fn observe(
        &self,
        records: &BTreeMap<String, Record>,
        first: &BTreeSet<String>,
    ) -> PortResult<crate::workflow::observe::Observed> {
        observe(
            &self.bytebase,
            &self.servicenow,
            &self.settings.machine,
            &self.settings.projects,
            &self.settings.act.bytebase_url,
            records,
            first,
        )
        .await
    }

    /// The next step for one issue, under the spec's machine: the one place a pass, a dry run
    /// and a follow-up step within a pass decide, so they can never disagree.
    fn decide(
        &self,
        record: Option<&Record>,
        observation: &Observation,
        now: DateTime<Utc>,
    ) -> Option<Step> {
        decide(&self.settings.machine, &self.settings.act.governance, record, observation, now)
    }

    async fn records(&self) -> PortResult<BTreeMap<String, Record>> {
        Ok(self.store.records().await?.into_iter().map(|r| (r.issue.clone(), r)).collect())
    }

    /// Decides what a pass would do and renders the payloads, changing nothing anywhere: no
    /// write to either API and none to the store.
    pub async fn plan(&self, records: &BTreeMap<String, Record>) -> PortResult<Vec<Planned>> {
        let now = (self.clock)();
        let observed = self.observe(records, &BTreeSet::new()).await?;
        let mut planned = Vec::new();
        for item in &observed.items {
            let Some(step) = self.decide(item.record.as_ref(), &item.observation, now) else {
                continue;
            };
            let payloads =
                step.actions.iter().map(|(_, action)| self.payload(item, action)).collect();
            planned.push(Planned { step, payloads });
        }
        Ok(planned)
    }

    fn payload(
        &self,
        item: &crate::workflow::observe::Item,
        action: &crate::spec::model::Action,
    ) -> serde_json::Value {
        let issue = &item.observation.issue;
        let ctx = Context::for_issue(issue, &self.settings.act.bytebase_url);
        match action.kind {
            ActionKind::CreateChange => {
                let generation = item.record.as_ref().map_or(0, |r| r.generation);
                let correlation =
                    correlation_id(&self.settings.act.bytebase_url, &issue.name, generation);
                let mut fields = change_fields(&self.settings.act.template, &ctx);
                fields.insert("correlation_id".into(), correlation);
                serde_json::json!({ "action": "create_change", "change_request": fields })
            }
            _ => serde_json::json!({ "action": action.kind, "args": action.args }),
        }
    }

    /// Runs one pass. Errors of single actions are reported and the issue is retried next pass;
    /// an error reading the world, or a fatal one, ends the pass with `Err`.
    pub async fn pass(&self, first: &BTreeSet<String>, stop: &Stop) -> PortResult<PassReport> {
        let started = Instant::now();
        let result = self.pass_inner(first, stop).await;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.metrics.pass(ms, result.as_ref().is_ok_and(|r| r.errors.is_empty()));
        if let Err(e) = &result {
            self.metrics.api_error(e.api.as_str());
        }
        result
    }

    async fn pass_inner(&self, first: &BTreeSet<String>, stop: &Stop) -> PortResult<PassReport> {
        let now = (self.clock)();
        let records = self.records().await?;
        let observed = self.observe(&records, first).await?;
        for (issue, why) in &observed.unreadable {
            tracing::warn!(%issue, %why, "could not read the issue this pass");
        }
        let mut report = PassReport { issues: observed.items.len(), ..PassReport::default() };
        let mut pending = 0;
        for item in &observed.items {
            if item.observation.change.as_ref().is_some_and(|c| c.approval == "requested") {
                pending += 1;
            }
            let Some(step) = self.decide(item.record.as_ref(), &item.observation, now) else {
                continue;
            };
            let mut record = item.record.clone().unwrap_or_else(|| {
                Record::new(&item.observation.issue.name, &self.settings.machine.initial, now)
            });
            let mut step = step;
            let mut observation = item.observation.clone();
            for follow_up in 0..=FOLLOW_UPS {
                let step_report = self.act(&step, &observation, &mut record, now, stop).await?;
                let completed = step_report.completed && step.from != step.to;
                report.errors.extend(
                    step_report
                        .actions
                        .iter()
                        .filter(|a| a.outcome == "failed")
                        .map(|a| format!("{}: {}: {}", step.issue, a.kind_name(), a.detail)),
                );
                report.steps.push(step_report);
                if stop.requested() {
                    return Ok(report);
                }
                if !completed || follow_up == FOLLOW_UPS {
                    break;
                }
                // The issue moved: read it again and take its next step now if it has one.
                let machine = &self.settings.machine;
                observation =
                    match observe_one(&self.bytebase, &self.servicenow, machine, &record).await {
                        Ok(o) => o,
                        Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
                        Err(_) => break,
                    };
                match self.decide(Some(&record), &observation, now) {
                    Some(next) => step = next,
                    None => break,
                }
            }
        }
        self.metrics.set_pending_changes(pending);
        let (new_alerts, outbox) = self.alerts(now).await?;
        report.new_alerts = new_alerts;
        report.outbox = outbox;
        report.finished = true;
        Ok(report)
    }

    /// Hands every SKIPPED issue of a governed project to the outbox (once per issue) and
    /// delivers what the outbox holds.
    async fn alerts(&self, now: DateTime<Utc>) -> PortResult<(usize, u64)> {
        let since = crate::spec::window_start(now, self.settings.lookback);
        let mut new = 0;
        for issue in self.bytebase.skipped_issues(since).await? {
            if !self.settings.projects.governs(&issue.name) {
                continue;
            }
            let alert = SkippedAlert {
                url: Context::for_issue(&issue, &self.settings.act.bytebase_url)
                    .render("{{ issue.url }}"),
                issue: issue.name,
                title: issue.title,
                creator: issue.creator,
                create_time: issue.create_time,
            };
            if self.store.enqueue_alert(&alert).await? {
                new += 1;
            }
        }
        let outbox = self.store.deliver_alerts().await?;
        self.metrics.set_outbox_depth(outbox);
        Ok((new, outbox))
    }

    /// Carries out a step: each action, the record saved after each, the state moved at the end.
    async fn act(
        &self,
        step: &Step,
        observation: &Observation,
        record: &mut Record,
        now: DateTime<Utc>,
        stop: &Stop,
    ) -> PortResult<StepReport> {
        let mut report = StepReport {
            issue: step.issue.clone(),
            transition: step.transition.clone(),
            from: step.from.clone(),
            to: step.to.clone(),
            completed: false,
            actions: Vec::new(),
        };
        for (index, action) in &step.actions {
            if !stop.take() {
                return Ok(report);
            }
            let mut target = Target {
                bytebase: &self.bytebase,
                servicenow: &self.servicenow,
                settings: &self.settings.act,
                observation,
                record,
                now,
            };
            let kind = serde_json::to_value(action.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let result = target.run(action).await;
            let (outcome, detail, go_on) = match &result {
                Ok(o @ (Outcome::Done(_) | Outcome::Skipped(_))) => {
                    (o.label(), o.detail().to_owned(), true)
                }
                Ok(o @ Outcome::Blocked(_)) => (o.label(), o.detail().to_owned(), false),
                Err(e) => ("failed", e.to_string(), false),
            };
            self.metrics.action(&kind, outcome);
            report.actions.push(ActionReport {
                kind: action.kind,
                outcome: outcome.to_owned(),
                detail: detail.clone(),
            });
            if outcome == "blocked" {
                tracing::info!(issue = %step.issue, action = %kind, why = %detail, "blocked");
            } else {
                self.journal(step, record, &kind, outcome, &detail, now).await?;
            }
            if let Err(e) = result {
                self.metrics.api_error(e.api.as_str());
                tracing::warn!(issue = %step.issue, action = %kind, error = %e, "action failed");
                if e.kind == ErrorKind::Fatal {
                    return Err(e);
                }
            }
            if !go_on {
                return Ok(report);
            }
            record.step = Some(step.transition.clone());
            record.done.insert(*index);
            self.store.save(record).await?;
        }
        if record.state != step.to {
            record.since = now;
        }
        record.state = step.to.clone();
        record.step = None;
        record.done.clear();
        self.store.save(record).await?;
        report.completed = true;
        tracing::info!(issue = %step.issue, transition = %step.transition, to = %step.to, "moved");
        Ok(report)
    }

    async fn journal(
        &self,
        step: &Step,
        record: &Record,
        action: &str,
        outcome: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let entry = JournalEntry {
            at: now,
            actor: self.settings.service_account.clone(),
            issue: step.issue.clone(),
            change: record.change.as_ref().map(|c| format!("{} ({})", c.number, c.sys_id)),
            transition: step.transition.clone(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            detail: detail.to_owned(),
        };
        self.store.journal(&entry).await
    }

    /// Passes every `pollInterval` (earlier when woken) until `stop` is requested; the action in
    /// flight when it is requested finishes first.
    pub async fn run_loop(&self, wake: Arc<Wake>, stop: Arc<Stop>) -> Result<(), ApiError> {
        loop {
            let first = wake.take();
            match self.pass(&first, &stop).await {
                Ok(report) => tracing::info!(
                    issues = report.issues,
                    steps = report.steps.len(),
                    alerts = report.new_alerts,
                    "pass done"
                ),
                Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
                Err(e) => tracing::warn!(error = %e, "pass failed; retrying at the next interval"),
            }
            if stop.requested() {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = wake.notified() => {}
                () = wait_for(&stop) => return Ok(()),
            }
        }
    }
}

async fn wait_for(stop: &Stop) {
    while !stop.requested() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl ActionReport {
    fn kind_name(&self) -> String {
        serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}
