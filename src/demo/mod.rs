//! `cabgate demo`: cabgate's whole job against the built-in emulators, narrated for someone who
//! has never seen Bytebase.
//!
//! The demo is also an end-to-end smoke test: every step reads its outcome back from the
//! emulators (the CHG's number, state and approver, the comments on the Bytebase issue, the
//! alert the receiver got) through cabgate's own clients, and fails with the step's name when
//! the outcome is not the expected one. Nothing shown is a canned string.
//!
//! Everything runs in this process on loopback: the Bytebase and ServiceNow emulators
//! ([`crate::sim`]), a webhook receiver for the SKIPPED alert ([`receiver`]), and the runner of
//! `cabgate apply` ([`crate::workflow`]) driven one pass at a time. The world and the spec are
//! compiled in (`fixtures/worlds/demo.yaml`, `fixtures/specs/demo.yaml`), so the demo runs from
//! any directory. Time-dependent steps move the emulators' clock instead of sleeping.
//!
//! NOTE: the demo calls the runner's `pass` itself, one pass per narrated step, so that each
//! step's outcome can be shown before the next; the loop of `cabgate apply` (poll interval,
//! webhook wake-ups, SIGTERM between actions) is not exercised here but in the apply tests.

pub mod receiver;
pub mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::json;

use crate::bytebase::models::{ApprovalStatus, TaskStatus};
use crate::bytebase::{self, ClientConfig, ServiceKey};
use crate::finding::{Report, Severity};
use crate::live::{self, ReadOptions};
use crate::policy;
use crate::servicenow::{self, ClientOptions, SysId};
use crate::sim::{self, World};
use crate::spec::{self, LoadedSpec};
use crate::workflow::port::Store as _;
use crate::workflow::runner::{PassReport, Stop};
use crate::workflow::wiring::{self, Engine};
use receiver::Receiver;
use text::{Text, WIDTH, cut};

/// The demo world, compiled in.
pub const WORLD: &str = include_str!("../../fixtures/worlds/demo.yaml");
/// The demo spec, compiled in; its URL placeholders are replaced at start.
pub const SPEC: &str = include_str!("../../fixtures/specs/demo.yaml");

/// The variable the demo spec names for the bridge's service key.
pub const KEY_ENV: &str = "CABGATE_DEMO_BB_KEY";
/// The bridge's service key in the demo world (a demo value, valid only against the emulator).
pub const DEMO_KEY: &str = "bbs_demo0000cabgate0001";
/// The bridge's service account.
pub const SERVICE_ACCOUNT: &str = "cab-bridge@service.bytebase.com";
const SN_USER_ENV: &str = "CABGATE_DEMO_SN_USER";
const SN_PASSWORD_ENV: &str = "CABGATE_DEMO_SN_PASSWORD";
const ALERT_SECRET_ENV: &str = "CABGATE_DEMO_ALERT_SECRET";
/// The ServiceNow integration user and its password in the demo world (demo values).
const SN_USER: &str = "cabgate";
const SN_PASSWORD: &str = "demo-sn-password";
/// The webhook secret the demo spec names (a demo value).
const ALERT_SECRET: &str = "demo-alert-secret";

/// The issue the CAB approves, the one it rejects, and the one that bypassed approval.
const APPROVED_ISSUE: &str = "projects/payments/issues/101";
const REJECTED_ISSUE: &str = "projects/ledger-eu/issues/301";
const SKIPPED_ISSUE: &str = "projects/payments/issues/102";
/// The CAB members who decide, by ServiceNow user_name.
const APPROVER: &str = "carol";
const REJECTER: &str = "dave";
const APPROVAL_NOTE: &str = "Index is built concurrently, no lock on payments. Approved.";
const REJECTION_REASON: &str =
    "No rollback plan for a 41-million-row backfill in one transaction; please batch it.";
/// The finding codes the demo world is built to raise.
const EXPECTED_CODES: [&str; 3] =
    ["lockdown/unexpected-holder", "lockdown/project-setting", "bypass/skipped-issue"];

/// How the demo runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Bold headings (stdout is a terminal).
    pub color: bool,
}

/// A step that did not happen as expected, or a part of the demo that failed to start.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("demo step \"{step}\" failed: {what}")]
pub struct DemoError {
    /// The step, as its heading names it.
    pub step: String,
    /// What was expected and what happened instead.
    pub what: String,
}

fn fail(step: &str, what: impl std::fmt::Display) -> DemoError {
    DemoError { step: step.to_owned(), what: what.to_string() }
}

fn ensure(ok: bool, step: &str, what: impl FnOnce() -> String) -> Result<(), DemoError> {
    if ok { Ok(()) } else { Err(fail(step, what())) }
}

/// Where the demo writes its output (the CLI prints each section as it is ready).
pub type Emit<'a> = &'a mut dyn FnMut(&str) -> Result<(), DemoError>;

/// What is still running after the narration, for `--keep-running`.
#[derive(Debug)]
pub struct Demo {
    /// The emulators.
    pub sim: sim::Running,
    /// The alert receiver.
    pub receiver: Receiver,
    /// The spec text with the real URLs, to write out for `cabgate check`.
    pub spec_text: String,
}

/// Everything the steps share.
struct Ctx {
    sim: sim::Running,
    receiver: Receiver,
    loaded: LoadedSpec,
    spec_text: String,
    bytebase: bytebase::Client,
    servicenow: servicenow::Client,
    http: reqwest::Client,
    text: Text,
    summary: Vec<[String; 3]>,
    passes: usize,
}

/// Runs the whole demo, emitting each section as it completes. The emulators stay up in the
/// returned [`Demo`] until it is dropped.
pub async fn run(options: Options, emit: Emit<'_>) -> Result<Demo, DemoError> {
    let mut ctx = start(options).await?;
    emit(&ctx.text.take())?;
    lint(&mut ctx)?;
    emit(&ctx.text.take())?;
    check(&mut ctx).await?;
    emit(&ctx.text.take())?;
    let engine = runner(&ctx)?;
    approve_cycle(&mut ctx, &engine).await?;
    emit(&ctx.text.take())?;
    rejection(&mut ctx, &engine).await?;
    emit(&ctx.text.take())?;
    skipped_alert(&mut ctx, &engine).await?;
    emit(&ctx.text.take())?;
    summary(&mut ctx);
    emit(&ctx.text.take())?;
    Ok(Demo { sim: ctx.sim, receiver: ctx.receiver, spec_text: ctx.spec_text })
}

/// The demo spec with the emulators' and the receiver's addresses filled in.
pub fn spec_text(bytebase_url: &str, servicenow_url: &str, alert_url: &str) -> String {
    SPEC.replace("BYTEBASE_URL", bytebase_url)
        .replace("SERVICENOW_URL", servicenow_url)
        .replace("ALERT_URL", alert_url)
}

/// The environment the demo's spec reads its secrets from: demo values, never the process's.
fn demo_env(name: &str) -> Option<String> {
    let value = match name {
        KEY_ENV => DEMO_KEY,
        SN_USER_ENV => SN_USER,
        SN_PASSWORD_ENV => SN_PASSWORD,
        ALERT_SECRET_ENV => ALERT_SECRET,
        _ => return None,
    };
    Some(value.to_owned())
}

async fn start(options: Options) -> Result<Ctx, DemoError> {
    const STEP: &str = "start";
    let world = World::from_yaml(WORLD, "the demo world").map_err(|e| fail(STEP, e))?;
    let sim = sim::start(world, sim::Options::default()).await.map_err(|e| fail(STEP, e))?;
    let receiver = Receiver::start()
        .await
        .map_err(|e| fail(STEP, format!("cannot start the alert receiver: {e}")))?;
    let spec_text = spec_text(sim.bytebase_url(), sim.servicenow_url(), receiver.url());
    let loaded = spec::load_bytes(Path::new("demo.yaml"), spec_text.as_bytes())
        .map_err(|e| fail(STEP, format!("the built-in spec does not load: {e}")))?;
    let config = ClientConfig::new(sim.bytebase_url(), SERVICE_ACCOUNT, ServiceKey::new(DEMO_KEY));
    let bytebase = bytebase::Client::new(config).map_err(|e| fail(STEP, e))?;
    let sn_spec = loaded
        .spec
        .servicenow
        .as_ref()
        .ok_or_else(|| fail(STEP, "the built-in spec has no servicenow section"))?;
    let servicenow = servicenow::Client::from_spec(sn_spec, &demo_env, ClientOptions::default())
        .map_err(|e| fail(STEP, e))?;
    let mut text = Text::new(options.color);
    intro(&mut text, &sim, &receiver);
    Ok(Ctx {
        sim,
        receiver,
        loaded,
        spec_text,
        bytebase,
        servicenow,
        http: reqwest::Client::new(),
        text,
        summary: Vec::new(),
        passes: 0,
    })
}

fn intro(t: &mut Text, sim: &sim::Running, receiver: &Receiver) {
    t.line("cabgate demo");
    t.line("============");
    t.para(
        0,
        "Developers ask for database changes in Bytebase: each request is an \"issue\" with a \
         plan (the SQL and the databases it targets), and once approved Bytebase \"rolls it out\" \
         by running one task per database, environment after environment (dev, staging, prod). \
         Your change advisory board (CAB) approves changes in ServiceNow, as change requests \
         (\"CHGs\"). cabgate makes sure nothing reaches a governed environment (here: prod) \
         without an approved CHG. It checks that Bytebase is configured so that no change can \
         slip past the CAB, and it runs the CHG workflow between the two systems.",
    );
    t.blank();
    t.para(
        0,
        "This demo runs everything on this machine, with built-in emulators of both APIs. The \
         company is \"Acme\": projects payments and ledger-eu hold production data (governed), \
         sandbox does not.",
    );
    t.blank();
    t.line("What you will see:");
    t.line("  1. lint: the spec is checked offline, as CI does on every change to it;");
    t.line("  2. check: the live Bytebase workspace is compared with the spec (drift);");
    t.line("  3. apply: a change goes through the CAB to production, step by step;");
    t.line("  4. apply: a change the CAB rejects, with its reason written back;");
    t.line("  5. apply: a change that bypassed approval raises an alert, once.");
    t.blank();
    t.line(&format!("  Bytebase emulator     {}", sim.bytebase_url()));
    t.line(&format!("  ServiceNow emulator   {}", sim.servicenow_url()));
    t.line(&format!("  alert receiver        {}", receiver.url()));
}

/// Section 1: the spec, offline.
fn lint(ctx: &mut Ctx) -> Result<(), DemoError> {
    const STEP: &str = "1. lint";
    let t = &mut ctx.text;
    t.heading("1. Lint the spec (offline; what CI runs on every change to it)");
    t.para(
        2,
        "The bridge spec is one YAML file: which projects and environments are governed, who may \
         run changes, what the CHG looks like, where alerts go. Lint checks it against its \
         schema and proves its workflow safe: no path approves or runs a change unless the CHG \
         is approved.",
    );
    let options = policy::Options { user_dirs: Vec::new(), now: ctx.sim.clock().now() };
    let evaluation = policy::evaluate(&ctx.loaded, None, &options).map_err(|e| fail(STEP, e))?;
    let report = Report::new("demo.yaml", evaluation.findings);
    for f in &report.findings {
        t.labelled(4, &format!("{} {}: ", f.severity.as_str(), f.code), &f.message);
    }
    let s = report.summary;
    t.blank();
    t.line(&format!(
        "  result: {} error(s), {} warning(s): the spec is valid and its workflow is safe.",
        s.errors, s.warnings
    ));
    ensure(!report.fails_at(Severity::Error), STEP, || {
        format!("the built-in spec has {} lint error(s)", s.errors)
    })?;
    ctx.summary.push(row("lint the spec", "demo.yaml", &format!("{} errors", s.errors)));
    Ok(())
}

/// Section 2: the live configuration against the spec.
async fn check(ctx: &mut Ctx) -> Result<(), DemoError> {
    const STEP: &str = "2. check";
    let now = ctx.sim.clock().now();
    let snapshot = live::read(&ctx.bytebase, &ctx.loaded.spec, &ReadOptions { now })
        .await
        .map_err(|e| fail(STEP, e))?;
    let options = policy::Options { user_dirs: Vec::new(), now: snapshot.taken_at };
    let evaluation =
        policy::evaluate(&ctx.loaded, Some(&snapshot), &options).map_err(|e| fail(STEP, e))?;
    let report = Report::new("demo.yaml", evaluation.findings);
    let t = &mut ctx.text;
    t.heading("2. Check the live Bytebase workspace against the spec (the drift job)");
    t.para(
        2,
        "cabgate reads the workspace's approval rules, roles, group memberships, project \
         settings and rollout policies (read-only) and reports every gap through which a change \
         could reach prod without the CAB. Each finding names where it comes from and the fix.",
    );
    let mut explained = std::collections::BTreeSet::new();
    for f in &report.findings {
        t.blank();
        let waived = if f.waived { " (waived)" } else { "" };
        t.line(&format!("  [{}{waived}] {}", f.severity.as_str(), f.code));
        t.labelled(4, "what: ", &f.message);
        if let Some(resource) = &f.resource {
            t.labelled(4, "where: ", resource);
        }
        if !f.via.is_empty() {
            t.labelled(4, "via: ", &f.via.join(" -> "));
        }
        if explained.insert(f.code.as_str()) {
            t.labelled(4, "why it matters: ", &text::why(&f.code));
        } else {
            t.labelled(4, "why it matters: ", "as above.");
        }
        if let Some(fix) = &f.remediation {
            t.labelled(4, "fix: ", fix);
        }
    }
    let s = report.summary;
    t.blank();
    t.line(&format!(
        "  result: {} error(s), {} warning(s), {} waived; `cabgate check` exits 1 on drift.",
        s.errors, s.warnings, s.waived
    ));
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    for expected in EXPECTED_CODES {
        ensure(codes.contains(&expected), STEP, || {
            format!("expected a {expected} finding in the demo world, got {codes:?}")
        })?;
    }
    let mut distinct = codes.clone();
    distinct.dedup();
    ctx.summary.push(row(
        "check the live workspace",
        "workspace acme",
        &format!("{} errors: {}", s.errors, distinct.join(", ")),
    ));
    Ok(())
}

/// The runner of `cabgate apply`, on the demo's clock and an in-memory state store.
fn runner(ctx: &Ctx) -> Result<Engine, DemoError> {
    let clock = ctx.sim.clock().clone();
    let options = wiring::Options {
        env: Box::new(demo_env),
        clock: Arc::new(move || clock.now()),
        state_url: Some("sqlite::memory:".to_owned()),
        fast_retries: true,
    };
    wiring::connect(&ctx.loaded, &options).map_err(|e| fail("3. apply", e))
}

impl Ctx {
    /// One pass of the runner, its own account indented under the heading.
    async fn pass(&mut self, engine: &Engine, step: &str) -> Result<PassReport, DemoError> {
        self.passes += 1;
        let report = engine
            .pass(&Default::default(), &Stop::default())
            .await
            .map_err(|e| fail(step, format!("the runner's pass {} failed: {e}", self.passes)))?;
        ensure(report.errors.is_empty(), step, || {
            format!("the runner met errors: {}", report.errors.join("; "))
        })?;
        let t = &mut self.text;
        t.line(&format!("    runner pass {}:", self.passes));
        let shown = report.steps.iter().filter(|s| !s.actions.is_empty() || s.completed);
        let mut any = false;
        for s in shown {
            any = true;
            let issue = short(&s.issue);
            t.line(&format!("      {issue}: {} -> {} ({})", s.from, s.to, s.transition));
            for a in &s.actions {
                let kind = serde_json::to_value(a.kind).unwrap_or_default();
                let label = format!("{} {}: ", kind.as_str().unwrap_or_default(), a.outcome);
                t.labelled(8, &label, &one_line(&a.detail));
            }
        }
        if !any {
            t.line("      nothing to do: every governed issue is waiting");
        }
        Ok(report)
    }

    /// The CHG the runner opened for `issue`, from its state store.
    async fn change_of(
        &self,
        engine: &Engine,
        issue: &str,
        step: &str,
    ) -> Result<(String, SysId), DemoError> {
        let records = engine.store.records().await.map_err(|e| fail(step, e))?;
        let record = records
            .into_iter()
            .find(|r| r.issue == issue)
            .ok_or_else(|| fail(step, format!("the runner has no record of {issue}")))?;
        let change = record
            .change
            .ok_or_else(|| fail(step, format!("the runner opened no CHG for {issue}")))?;
        let sys_id = SysId::parse(&change.sys_id).map_err(|e| fail(step, e))?;
        Ok((change.number, sys_id))
    }

    async fn read_change(
        &self,
        sys_id: &SysId,
        step: &str,
    ) -> Result<servicenow::ChangeRequest, DemoError> {
        self.servicenow
            .get_change(sys_id)
            .await
            .map_err(|e| fail(step, e))?
            .ok_or_else(|| fail(step, format!("CHG {sys_id} is not in ServiceNow")))
    }

    async fn read_issue(
        &self,
        issue: &str,
        step: &str,
    ) -> Result<bytebase::models::Issue, DemoError> {
        self.bytebase.get_issue(issue).await.map_err(|e| fail(step, e))
    }

    async fn last_comment(&self, issue: &str, step: &str) -> Result<String, DemoError> {
        let comments = self.bytebase.list_issue_comments(issue).await.map_err(|e| fail(step, e))?;
        Ok(comments.last().map(|c| c.comment.clone()).unwrap_or_default())
    }

    /// Acts as a CAB member through the ServiceNow emulator's control API.
    async fn cab_decides(
        &self,
        number: &str,
        verdict: &str,
        approver: &str,
        comment: &str,
        step: &str,
    ) -> Result<(), DemoError> {
        let url = format!("{}/_sim/change_request/{number}/{verdict}", self.sim.servicenow_url());
        let body = json!({ "approver": approver, "comment": comment });
        let response = self.http.post(&url).json(&body).send().await.map_err(|e| fail(step, e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(fail(
                step,
                format!("ServiceNow refused the CAB's decision ({status}): {text}"),
            ));
        }
        Ok(())
    }
}

/// Section 3: a PENDING issue through the CAB to production.
async fn approve_cycle(ctx: &mut Ctx, engine: &Engine) -> Result<(), DemoError> {
    const STEP: &str = "3. apply";
    ctx.text.heading("3. The CHG workflow: a change the CAB approves");
    ctx.text.para(
        2,
        "`cabgate apply` is the sync runner: each pass it reads both systems, decides what the \
         workflow in the spec says to do next, and does it. Alice asked for an index in payments \
         (issue 101, approval PENDING: Bytebase waits for the CAB approver role, which only the \
         bridge holds).",
    );
    ctx.text.blank();
    ctx.text.line("  a) The runner opens a CHG for every PENDING issue of a governed project.");
    ctx.pass(engine, STEP).await?;
    let (number, sys_id) = ctx.change_of(engine, APPROVED_ISSUE, STEP).await?;
    let change = ctx.read_change(&sys_id, STEP).await?;
    let approvers = ctx.servicenow.approvers(&sys_id).await.map_err(|e| fail(STEP, e))?;
    let asked: Vec<&str> = approvers.iter().map(|a| a.user_name.as_str()).collect();
    let comment = ctx.last_comment(APPROVED_ISSUE, STEP).await?;
    let t = &mut ctx.text;
    t.line("    read back from ServiceNow:");
    t.line(&format!("      {number}  \"{}\"", change.short_description));
    t.line(&format!(
        "      state {}, approval {}, CAB members asked: {}",
        change.state,
        approval_name(&change.approval),
        asked.join(", ")
    ));
    t.labelled(6, "correlation_id: ", &change.correlation_id);
    t.line("    read back from Bytebase (comment on issue 101):");
    t.para(6, &format!("\"{}\"", one_line(&comment)));
    ensure(change.approval == servicenow::Approval::Requested, STEP, || {
        format!(
            "{number} should await the CAB, its approval is {}",
            approval_name(&change.approval)
        )
    })?;
    ensure(comment.contains(&number), STEP, || {
        format!("the comment on issue 101 should name {number}: {comment:?}")
    })?;
    let records = engine.store.records().await.map_err(|e| fail(STEP, e))?;
    ensure(!records.iter().any(|r| r.issue.starts_with("projects/sandbox/")), STEP, || {
        "the ungoverned sandbox project got a CHG".to_owned()
    })?;
    t.para(
        4,
        "Issue 103 is still being analysed by Bytebase (CHECKING) and waits; sandbox is not \
         governed, so its issue 500 gets no CHG.",
    );
    ctx.summary.push(row("CHG opened for a PENDING issue", "payments/101", &number));

    // b) The CAB approves, in ServiceNow.
    ctx.text.blank();
    ctx.text.line("  b) The CAB approves the CHG in ServiceNow.");
    ctx.text.para(
        4,
        "(The demo plays Carol, a member of the Database CAB group, through the ServiceNow \
         emulator's control API: what clicking Approve on the CHG does.)",
    );
    ctx.cab_decides(&number, "approve", APPROVER, APPROVAL_NOTE, STEP).await?;
    let change = ctx.read_change(&sys_id, STEP).await?;
    let approvers = ctx.servicenow.approvers(&sys_id).await.map_err(|e| fail(STEP, e))?;
    let approved: Vec<&servicenow::Approver> =
        approvers.iter().filter(|a| a.state == servicenow::ApproverState::Approved).collect();
    let who = approved.first().map(|a| a.user_name.clone()).unwrap_or_default();
    ctx.text.para(
        4,
        &format!(
            "{who} ({}) approved {number}: \"{}\"",
            approved.first().map(|a| a.email.as_str()).unwrap_or_default(),
            one_line(&approved.first().map(|a| a.comments.clone()).unwrap_or_default())
        ),
    );
    ctx.text.line(&format!(
        "    read back: state {}, approval {}",
        change.state,
        approval_name(&change.approval)
    ));
    ensure(change.approval == servicenow::Approval::Approved && who == APPROVER, STEP, || {
        format!("{number} should be approved by {APPROVER}: {}", approval_name(&change.approval))
    })?;

    // c) The runner approves the issue in Bytebase.
    ctx.text.blank();
    ctx.text.line("  c) The runner sees the approval and approves the issue in Bytebase.");
    ctx.pass(engine, STEP).await?;
    let issue = ctx.read_issue(APPROVED_ISSUE, STEP).await?;
    let comment = ctx.last_comment(APPROVED_ISSUE, STEP).await?;
    let by: Vec<String> = issue.approvers.iter().map(|a| a.principal.clone()).collect();
    ctx.text.line(&format!(
        "    read back from Bytebase: approval {}, approved by {}",
        issue.approval_status,
        by.join(", ")
    ));
    ctx.text.para(6, &format!("\"{}\"", one_line(&comment)));
    ctx.text.para(
        4,
        "Bytebase records the bridge as the approver (it alone holds the CAB approver role); \
         the comment names the CAB member and the CHG, for the audit trail on both sides.",
    );
    ensure(issue.approval_status == ApprovalStatus::Approved, STEP, || {
        format!("issue 101 should be APPROVED, it is {}", issue.approval_status)
    })?;
    ensure(comment.contains(&number) && comment.contains(APPROVER), STEP, || {
        format!("the approval comment should name {number} and {APPROVER}: {comment:?}")
    })?;
    ctx.summary.push(row(
        &format!("CAB approved ({APPROVER})"),
        "payments/101",
        &format!("{number} approved, issue {}", issue.approval_status),
    ));

    rollout(ctx, engine, &number, &sys_id, &issue.plan).await
}

/// Section 3, continued: the rollout appears late, prod runs, the CHG closes.
async fn rollout(
    ctx: &mut Ctx,
    engine: &Engine,
    number: &str,
    sys_id: &SysId,
    plan: &str,
) -> Result<(), DemoError> {
    const STEP: &str = "3. apply (rollout)";
    ctx.text.blank();
    ctx.text.line("  d) The rollout race: Bytebase creates the rollout a little after approving.");
    let has = ctx.bytebase.get_plan(plan).await.map_err(|e| fail(STEP, e))?.has_rollout;
    ctx.text.line(&format!("    plan hasRollout right after the approval: {has}"));
    ctx.pass(engine, STEP).await?;
    ctx.text.para(
        4,
        "The runner waits (up to rolloutWait.timeout, then it creates the rollout itself). The \
         demo moves the emulators' clock two minutes on instead of sleeping.",
    );
    // The emulator runs jobs that fell due before answering the next request.
    ctx.sim.clock().advance(TimeDelta::minutes(2));
    let has = ctx.bytebase.get_plan(plan).await.map_err(|e| fail(STEP, e))?.has_rollout;
    ctx.text.line(&format!("    plan hasRollout two minutes later: {has}"));
    ensure(has, STEP, || "Bytebase created no rollout two minutes after the approval".into())?;

    ctx.text.blank();
    ctx.text.line("  e) Staging ran by itself (automatic); prod runs only with the approved CHG.");
    let mut closed = false;
    for _ in 0..6 {
        ctx.pass(engine, STEP).await?;
        let change = ctx.read_change(sys_id, STEP).await?;
        if change.state.is_final() {
            closed = true;
            break;
        }
        ctx.sim.clock().advance(TimeDelta::seconds(5));
    }
    let rollout = ctx
        .bytebase
        .get_rollout(plan)
        .await
        .map_err(|e| fail(STEP, e))?
        .ok_or_else(|| fail(STEP, "the rollout vanished"))?;
    ctx.text.line("    read back from Bytebase, the rollout's tasks:");
    let mut prod_done = false;
    for stage in &rollout.stages {
        for task in &stage.tasks {
            let env = stage.environment.trim_start_matches("environments/");
            ctx.text.line(&format!(
                "      {env:<8} {:<44} {}",
                short_task(&task.target),
                task.status
            ));
            if env == "prod" && task.status == TaskStatus::Done {
                prod_done = true;
            }
        }
    }
    let change = ctx.read_change(sys_id, STEP).await?;
    ctx.text.line(&format!(
        "    read back from ServiceNow: {number} state {}, close code {}",
        change.state,
        if change.close_code.is_empty() { "(none)" } else { &change.close_code }
    ));
    if !change.close_notes.is_empty() {
        ctx.text.para(6, &format!("close notes: \"{}\"", one_line(&change.close_notes)));
    }
    ensure(prod_done, STEP, || "the prod task did not run to DONE".into())?;
    ensure(closed && change.close_code == "successful", STEP, || {
        format!(
            "{number} should be closed successful, it is {} {}",
            change.state, change.close_code
        )
    })?;
    ctx.summary.push(row(
        "rollout ran, CHG closed",
        "payments/101",
        &format!("{number} closed successful"),
    ));
    Ok(())
}

/// Section 4: the CAB rejects; the issue is rejected with the reason.
async fn rejection(ctx: &mut Ctx, engine: &Engine) -> Result<(), DemoError> {
    const STEP: &str = "4. rejection";
    ctx.text.heading("4. A change the CAB rejects");
    ctx.text.para(
        2,
        "Bob's backfill in ledger-eu (issue 301) got its CHG in the first pass too. A CAB member \
         rejects it with a reason; the runner rejects the Bytebase issue and writes the reason \
         there, so Bob sees why without opening ServiceNow.",
    );
    let (number, _) = ctx.change_of(engine, REJECTED_ISSUE, STEP).await?;
    ctx.cab_decides(&number, "reject", REJECTER, REJECTION_REASON, STEP).await?;
    ctx.text.para(4, &format!("{REJECTER} rejected {number}: \"{REJECTION_REASON}\""));
    ctx.pass(engine, STEP).await?;
    let issue = ctx.read_issue(REJECTED_ISSUE, STEP).await?;
    let comment = ctx.last_comment(REJECTED_ISSUE, STEP).await?;
    ctx.text.line(&format!("    read back from Bytebase: approval {}", issue.approval_status));
    ctx.text.para(6, &format!("\"{}\"", one_line(&comment)));
    ensure(issue.approval_status == ApprovalStatus::Rejected, STEP, || {
        format!("issue 301 should be REJECTED, it is {}", issue.approval_status)
    })?;
    ensure(comment.contains("backfill"), STEP, || {
        format!("the rejection comment should carry the CAB's reason: {comment:?}")
    })?;
    ctx.summary.push(row(
        &format!("CAB rejected ({REJECTER})"),
        "ledger-eu/301",
        &format!("{number} rejected, issue {}", issue.approval_status),
    ));
    Ok(())
}

/// Section 5: the SKIPPED issue's alert, delivered once.
async fn skipped_alert(ctx: &mut Ctx, engine: &Engine) -> Result<(), DemoError> {
    const STEP: &str = "5. SKIPPED alert";
    ctx.text.heading("5. An issue that bypassed approval: the SKIPPED alert");
    ctx.text.para(
        2,
        "Bob's hotfix (issue 102) has no change spec, so no approval rule matched it and Bytebase \
         marked it SKIPPED: no approval needed. cabgate cannot stop that after the fact, but it \
         raises an alert for every SKIPPED issue of a governed project, exactly once, through \
         the sinks of the spec (here a signed webhook to the demo's receiver). The alert sits in \
         a durable outbox until the sink takes it.",
    );
    ctx.pass(engine, STEP).await?;
    let deliveries = ctx.receiver.received();
    let issue = ctx.read_issue(SKIPPED_ISSUE, STEP).await?;
    ctx.text.line(&format!(
        "    issue 102 approval status in Bytebase: {}; runner passes so far: {}",
        issue.approval_status, ctx.passes
    ));
    ctx.text.line(&format!("    deliveries the receiver got: {}", deliveries.len()));
    for d in &deliveries {
        let body: serde_json::Value = serde_json::from_slice(&d.body).unwrap_or_default();
        let facts = &body["facts"];
        let signed = crate::alert::sign(ALERT_SECRET.as_bytes(), &d.body) == d.signature;
        ctx.text.line(&format!(
            "      {} {}  \"{}\"",
            body["type"].as_str().unwrap_or_default(),
            body["issue"].as_str().unwrap_or_default(),
            facts["title"].as_str().unwrap_or_default()
        ));
        ctx.text.line(&format!(
            "      delivery id {}, signature {}",
            d.id,
            if signed { "valid" } else { "INVALID" }
        ));
    }
    let for_issue: Vec<_> = deliveries
        .iter()
        .filter(|d| {
            serde_json::from_slice::<serde_json::Value>(&d.body)
                .is_ok_and(|b| b["issue"] == SKIPPED_ISSUE)
        })
        .collect();
    ensure(issue.approval_status == ApprovalStatus::Skipped, STEP, || {
        format!("issue 102 should be SKIPPED, it is {}", issue.approval_status)
    })?;
    ensure(for_issue.len() == 1, STEP, || {
        format!(
            "expected one alert for issue 102 after {} passes, got {}",
            ctx.passes,
            for_issue.len()
        )
    })?;
    ensure(
        for_issue
            .iter()
            .all(|d| crate::alert::sign(ALERT_SECRET.as_bytes(), &d.body) == d.signature),
        STEP,
        || "the alert's signature does not verify".into(),
    )?;
    ctx.summary.push(row(
        "SKIPPED alert",
        "payments/102",
        &format!("SKIPPED, delivered once in {} passes", ctx.passes),
    ));
    Ok(())
}

fn summary(ctx: &mut Ctx) {
    let t = &mut ctx.text;
    t.heading("Summary");
    let (w0, w1) = (32, 16);
    t.line(&format!("  {:<w0$} {:<w1$} {}", "step", "issue", "result"));
    for [what, issue, result] in &ctx.summary {
        let first = format!("  {:<w0$} {:<w1$} ", cut(what, w0), cut(issue, w1));
        let hang = first.chars().count();
        for (i, line) in text::wrap(result, hang, WIDTH).iter().enumerate() {
            if i == 0 {
                t.line(&format!("{first}{}", &line[hang..]));
            } else {
                t.line(line);
            }
        }
    }
    t.line("  every step above passed: facts were read back from both emulators.");
    t.heading("Where to look next");
    t.labelled(
        2,
        "README.md: ",
        "\"Quick start\", \"The bridge spec\", \"Finding codes\", \"The sync runner\" and \"Trying it \
         against the emulators\".",
    );
    t.labelled(
        2,
        "cabgate demo --keep-running: ",
        "keeps the emulators up after this narration, with a ready-to-paste `cabgate check` \
         command and curl examples.",
    );
    t.labelled(
        2,
        "cabgate sim --world FILE: ",
        "serves the emulators with a world of your own (see fixtures/worlds/demo.yaml), to try \
         your own spec.",
    );
}

fn row(what: &str, issue: &str, result: &str) -> [String; 3] {
    [what.to_owned(), issue.to_owned(), result.to_owned()]
}

/// `projects/payments/issues/101` → `payments/101`.
fn short(issue: &str) -> String {
    let parts: Vec<&str> = issue.split('/').collect();
    match parts.as_slice() {
        ["projects", p, "issues", id] => format!("{p}/{id}"),
        _ => issue.to_owned(),
    }
}

/// `instances/prod-pg/databases/payments` → `prod-pg/payments`.
fn short_task(target: &str) -> String {
    target.trim_start_matches("instances/").replace("/databases/", "/")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn approval_name(approval: &servicenow::Approval) -> String {
    match approval {
        servicenow::Approval::NotRequested => "not requested".into(),
        servicenow::Approval::Requested => "requested".into(),
        servicenow::Approval::Approved => "approved".into(),
        servicenow::Approval::Rejected => "rejected".into(),
        servicenow::Approval::Other(other) => other.clone(),
    }
}

/// What `--keep-running` prints: where the emulators are and how to poke them.
pub fn keep_running_text(demo: &Demo, spec_path: &Path, color: bool) -> String {
    let bb = demo.sim.bytebase_url();
    let sn = demo.sim.servicenow_url();
    let mut t = Text::new(color);
    t.heading("The emulators keep running (Ctrl-C to stop)");
    t.line(&format!("  Bytebase    {bb}"));
    t.line(&format!("  ServiceNow  {sn}"));
    t.line(&format!("  spec        {}", spec_path.display()));
    t.blank();
    t.para(2, "Check the workspace yourself (the key is the demo's, valid only here):");
    // Commands are printed whole (never cut): a pasted command must work.
    t.raw(&format!("  {KEY_ENV}={DEMO_KEY} cabgate check {}", spec_path.display()));
    t.para(2, "(from the source tree: replace `cabgate` with `cargo run --release --`)");
    t.blank();
    t.para(2, "Talk to the APIs directly:");
    t.raw("  # log in to Bytebase as the bridge (answers a token)");
    t.raw(&format!("  curl -s -X POST {bb}/v1/auth/login \\"));
    t.raw(&format!("    -d '{{\"email\":\"{SERVICE_ACCOUNT}\",\"password\":\"{DEMO_KEY}\"}}'"));
    t.raw("  # the CHGs in ServiceNow, as the integration user");
    t.raw(&format!("  curl -s -u {SN_USER}:{SN_PASSWORD} \\"));
    t.raw(&format!(
        "    '{sn}/api/now/v2/table/change_request?sysparm_fields=number,state,approval'"
    ));
    t.raw("  # the CAB's votes (a control endpoint of the emulator, no login)");
    t.raw(&format!("  curl -s {sn}/_sim/table/sysapproval_approver"));
    t.take()
}

/// A private folder for the spec file `--keep-running` writes.
pub fn spec_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cabgate-demo-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_values_are_the_worlds() {
        assert!(WORLD.contains(DEMO_KEY) && WORLD.contains(SERVICE_ACCOUNT));
        assert!(WORLD.contains(SN_PASSWORD) && WORLD.contains(&format!("user_name: {SN_USER}")));
        for var in [KEY_ENV, SN_USER_ENV, SN_PASSWORD_ENV, ALERT_SECRET_ENV] {
            assert!(SPEC.contains(var), "{var}");
        }
    }

    #[test]
    fn the_demo_world_and_spec_load() {
        World::from_yaml(WORLD, "demo").unwrap();
        let text = spec_text("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3/a");
        let loaded = spec::load_bytes(Path::new("demo.yaml"), text.as_bytes()).unwrap();
        assert_eq!(loaded.spec.bytebase.service_key_env, KEY_ENV);
    }

    #[test]
    fn short_names() {
        assert_eq!(short("projects/ledger-eu/issues/301"), "ledger-eu/301");
        assert_eq!(short_task("instances/prod-pg/databases/payments"), "prod-pg/payments");
    }
}
