//! Unit and property tests of the pure `decide`, over the default workflow.

use chrono::{TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::spec::model::ActionKind;
use crate::workflow::facts::{
    ApproverView, ChangeView, IssueView, PlanView, RolloutView, StageView, TaskView,
};

/// The default workflow, read from `workflows/default.yaml`.
pub(crate) fn default_spec() -> WorkflowSpec {
    crate::spec::default_workflow().clone()
}

fn machine() -> Machine {
    Machine::from_spec(&WorkflowSpec::default(), &default_spec())
}

fn governance() -> Governance {
    Governance {
        governed: ["prod".to_owned()].into(),
        require_window: Default::default(),
        rollout_timeout: TimeDelta::minutes(10),
    }
}

fn issue(approval: &str, status: &str) -> IssueView {
    IssueView {
        name: "projects/pay/issues/7".into(),
        title: "Add index".into(),
        description: "d".into(),
        creator: "users/dev@acme.example".into(),
        status: status.into(),
        approval_status: approval.into(),
        plan: "projects/pay/plans/7".into(),
        create_time: None,
    }
}

fn change(state: &str, approval: &str) -> ChangeView {
    ChangeView {
        sys_id: "0".repeat(32),
        number: "CHG0010001".into(),
        correlation_id: "bytebase:x:pay/7".into(),
        state: state.into(),
        approval: approval.into(),
        start: None,
        end: None,
        approvers: vec![ApproverView {
            approver: "cab.lead".into(),
            state: approval.into(),
            comment: String::new(),
        }],
    }
}

fn plan(version: &str, has_rollout: bool) -> PlanView {
    PlanView { name: "projects/pay/plans/7".into(), version: version.into(), has_rollout }
}

fn rollout(statuses: &[&str]) -> RolloutView {
    RolloutView {
        name: "projects/pay/plans/7/rollout".into(),
        stages: vec![StageView {
            name: "projects/pay/plans/7/rollout/stages/prod".into(),
            environment: "prod".into(),
            tasks: statuses
                .iter()
                .map(|s| TaskView { name: "t".into(), status: (*s).into() })
                .collect(),
        }],
    }
}

fn record(state: &str) -> Record {
    let mut r = Record::new("projects/pay/issues/7", state, Utc::now());
    r.plan_version = Some("v1".into());
    r
}

fn kinds(step: &Step) -> Vec<ActionKind> {
    step.actions.iter().map(|(_, a)| a.kind).collect()
}

#[test]
fn a_pending_issue_without_a_record_opens_a_change() {
    let obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: None,
    };
    let step = decide(&machine(), &governance(), None, &obs, Utc::now()).expect("a step");
    assert_eq!(step.transition, "open-change");
    assert_eq!((step.from.as_str(), step.to.as_str()), ("new", "awaiting_cab"));
    assert_eq!(kinds(&step), [ActionKind::CreateChange, ActionKind::Comment]);
}

#[test]
fn waiting_for_the_cab_does_nothing() {
    let obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: Some(change("assess", "requested")),
    };
    assert!(
        decide(&machine(), &governance(), Some(&record("awaiting_cab")), &obs, Utc::now())
            .is_none()
    );
}

#[test]
fn an_approved_change_approves_the_issue() {
    let obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: Some(change("scheduled", "approved")),
    };
    let step = decide(&machine(), &governance(), Some(&record("awaiting_cab")), &obs, Utc::now())
        .expect("a step");
    assert_eq!(kinds(&step), [ActionKind::ApproveIssue]);
    assert_eq!(step.to, "approved");
}

#[test]
fn a_required_window_that_is_closed_holds_the_approval() {
    let mut g = governance();
    g.require_window.insert("prod".into());
    let mut c = change("scheduled", "approved");
    c.start = Some(Utc::now() + TimeDelta::hours(1));
    c.end = Some(Utc::now() + TimeDelta::hours(2));
    let obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: Some(c),
    };
    let r = record("awaiting_cab");
    assert!(decide(&machine(), &g, Some(&r), &obs, Utc::now()).is_none());
    let later = Utc::now() + TimeDelta::minutes(90);
    assert!(decide(&machine(), &g, Some(&r), &obs, later).is_some());
}

#[test]
fn the_rollout_wait_falls_back_to_create_rollout_after_the_timeout() {
    let obs = Observation {
        issue: issue("APPROVED", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: Some(change("scheduled", "approved")),
    };
    let r = record("approved");
    assert!(decide(&machine(), &governance(), Some(&r), &obs, r.since).is_none());
    let late = r.since + TimeDelta::minutes(11);
    let step = decide(&machine(), &governance(), Some(&r), &obs, late).expect("a step");
    assert_eq!(
        kinds(&step),
        [ActionKind::CreateRollout, ActionKind::UpdateChange, ActionKind::RunTasks]
    );
}

#[test]
fn a_resumed_step_skips_the_actions_already_done() {
    let obs = Observation {
        issue: issue("APPROVED", "DONE"),
        plan: Some(plan("v1", true)),
        rollout: Some(rollout(&["NOT_STARTED"])),
        change: Some(change("scheduled", "approved")),
    };
    let mut r = record("approved");
    r.step = Some("rollout-ready".into());
    r.done.insert(0);
    let step = decide(&machine(), &governance(), Some(&r), &obs, Utc::now()).expect("a step");
    assert_eq!(kinds(&step), [ActionKind::RunTasks]);
    assert_eq!(step.actions[0].0, 1);
}

#[test]
fn a_failed_task_cancels_and_closes_unsuccessful_by_default() {
    let obs = Observation {
        issue: issue("APPROVED", "DONE"),
        plan: Some(plan("v1", true)),
        rollout: Some(rollout(&["DONE", "FAILED", "NOT_STARTED"])),
        change: Some(change("implement", "approved")),
    };
    let step = decide(&machine(), &governance(), Some(&record("rolling_out")), &obs, Utc::now())
        .expect("a step");
    assert_eq!(kinds(&step), [ActionKind::CancelTaskRuns, ActionKind::CloseChange]);
    assert_eq!(step.to, "closed");
}

#[test]
fn on_task_failure_wait_writes_a_note_and_waits_for_a_person() {
    let workflow = WorkflowSpec { on_task_failure: OnTaskFailure::Wait, ..Default::default() };
    let m = Machine::from_spec(&workflow, &default_spec());
    let mut obs = Observation {
        issue: issue("APPROVED", "DONE"),
        plan: Some(plan("v1", true)),
        rollout: Some(rollout(&["FAILED"])),
        change: Some(change("implement", "approved")),
    };
    let step =
        decide(&m, &governance(), Some(&record("rolling_out")), &obs, Utc::now()).expect("a step");
    assert_eq!(kinds(&step), [ActionKind::UpdateChange]);
    assert_eq!(step.to, "task_failed");
    obs.rollout = Some(rollout(&["SKIPPED"]));
    let step =
        decide(&m, &governance(), Some(&record("task_failed")), &obs, Utc::now()).expect("a step");
    assert_eq!(step.to, "closed");
}

#[test]
fn a_rejected_change_rejects_and_a_new_plan_goes_back_to_the_cab() {
    let mut obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: Some(change("new", "rejected")),
    };
    let step = decide(&machine(), &governance(), Some(&record("awaiting_cab")), &obs, Utc::now())
        .expect("a step");
    assert_eq!(kinds(&step), [ActionKind::RejectIssue]);
    assert_eq!(step.to, "sent_back");
    obs.issue.approval_status = "REJECTED".into();
    assert!(
        decide(&machine(), &governance(), Some(&record("sent_back")), &obs, Utc::now()).is_none()
    );
    obs.issue.approval_status = "PENDING".into();
    obs.plan = Some(plan("v2", false));
    let step = decide(&machine(), &governance(), Some(&record("sent_back")), &obs, Utc::now())
        .expect("a step");
    assert_eq!(step.transition, "rework-requested");
    assert_eq!(step.to, "awaiting_cab");
}

#[test]
fn a_canceled_issue_cancels_the_change_and_a_canceled_change_rejects_the_issue() {
    let obs = Observation {
        issue: issue("PENDING", "CANCELED"),
        plan: None,
        rollout: None,
        change: Some(change("assess", "requested")),
    };
    let step = decide(&machine(), &governance(), Some(&record("awaiting_cab")), &obs, Utc::now())
        .expect("a step");
    assert_eq!((step.transition.as_str(), step.to.as_str()), ("issue-canceled", "canceled"));
    let obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: None,
        rollout: None,
        change: Some(change("canceled", "requested")),
    };
    let step = decide(&machine(), &governance(), Some(&record("awaiting_cab")), &obs, Utc::now())
        .expect("a step");
    assert_eq!((step.transition.as_str(), step.to.as_str()), ("change-canceled", "rejected"));
}

#[test]
fn an_unknown_change_state_parks_the_issue() {
    let obs = Observation {
        issue: issue("PENDING", "OPEN"),
        plan: Some(plan("v1", false)),
        rollout: None,
        change: Some(change("-42", "requested")),
    };
    assert!(
        decide(&machine(), &governance(), Some(&record("awaiting_cab")), &obs, Utc::now())
            .is_none()
    );
}

#[test]
fn the_default_workflow_is_safe_and_live() {
    let m = machine();
    let gated = [ActionKind::ApproveIssue, ActionKind::CreateRollout, ActionKind::RunTasks];
    for t in &m.transitions {
        if t.actions.iter().any(|a| gated.contains(&a.kind)) {
            let approval = t.when.get(&crate::spec::model::Fact::ChangeApproval);
            assert_eq!(
                approval.map(|v| v.values()),
                Some(vec!["approved".to_owned()]),
                "{:?} must require exactly an approved CHG",
                t.name
            );
        }
    }
    // Every state is reachable from `initial` and reaches a final state.
    let states: BTreeSet<&str> =
        m.transitions.iter().flat_map(|t| [t.from.as_str(), t.to.as_str()]).collect();
    let edges = |s: &str| -> Vec<String> {
        m.transitions
            .iter()
            .filter(|t| t.from == s || (t.from == "*" && !m.is_final(s)))
            .map(|t| t.to.clone())
            .collect()
    };
    let reach = |start: &str| {
        let mut seen = BTreeSet::from([start.to_owned()]);
        let mut todo = vec![start.to_owned()];
        while let Some(s) = todo.pop() {
            for n in edges(&s) {
                if seen.insert(n.clone()) {
                    todo.push(n);
                }
            }
        }
        seen
    };
    let from_initial = reach(&m.initial);
    for s in states.iter().filter(|s| **s != "*") {
        assert!(from_initial.contains(*s), "{s} is unreachable");
        assert!(reach(s).iter().any(|r| m.is_final(r)), "{s} cannot finish");
    }
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    let approval = prop::sample::select(vec!["CHECKING", "PENDING", "APPROVED", "REJECTED"]);
    let status = prop::sample::select(vec!["OPEN", "DONE", "CANCELED"]);
    let chg_state = prop::sample::select(vec![
        "new",
        "assess",
        "authorize",
        "scheduled",
        "implement",
        "review",
        "closed",
        "canceled",
        "-9",
    ]);
    let chg_approval =
        prop::sample::select(vec!["not_requested", "requested", "approved", "rejected"]);
    let task = prop::sample::select(vec![
        "NOT_STARTED",
        "PENDING",
        "RUNNING",
        "DONE",
        "FAILED",
        "CANCELED",
        "SKIPPED",
    ]);
    (
        approval,
        status,
        prop::option::of((chg_state, chg_approval, any::<Option<bool>>())),
        prop::option::of(prop::collection::vec(task, 0..4)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, s, c, tasks, v2, has_rollout)| Observation {
            issue: issue(a, s),
            plan: Some(plan(if v2 { "v2" } else { "v1" }, has_rollout || tasks.is_some())),
            rollout: tasks.map(|t| rollout(&t)),
            change: c.map(|(st, ap, window)| {
                let mut c = change(st, ap);
                if let Some(open) = window {
                    let now = Utc::now();
                    let shift = if open { TimeDelta::hours(-1) } else { TimeDelta::hours(1) };
                    c.start = Some(now + shift);
                    c.end = Some(now + shift + TimeDelta::hours(3));
                }
                c
            }),
        })
}

fn arb_state() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "new",
        "awaiting_cab",
        "approved",
        "rolling_out",
        "sent_back",
        "closed",
        "rejected",
        "canceled",
    ])
    .prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the state and the facts, approving, creating a rollout or running tasks is only
    /// ever decided while the CHG is approved (and inside its window when one is required).
    #[test]
    fn gated_actions_need_an_approved_change(
        state in arb_state(),
        obs in arb_observation(),
        window in any::<bool>(),
        minutes in 0i64..30,
    ) {
        let mut g = governance();
        if window {
            g.require_window.insert("prod".into());
        }
        let now = Utc::now() + TimeDelta::minutes(minutes);
        let r = record(&state);
        if let Some(step) = decide(&machine(), &g, Some(&r), &obs, now) {
            let gated = step.actions.iter().any(|(_, a)| matches!(
                a.kind,
                ActionKind::ApproveIssue | ActionKind::CreateRollout | ActionKind::RunTasks
            ));
            if gated {
                let c = obs.change.as_ref().expect("a gated action needs a CHG");
                prop_assert_eq!(c.approval.as_str(), "approved");
                prop_assert_ne!(step.facts.get(crate::spec::model::Fact::ChangeWindow), "closed");
            }
            prop_assert!(!machine().is_final(&step.from));
        }
    }

    /// decide is a function: the same inputs give the same step.
    #[test]
    fn decide_is_deterministic(state in arb_state(), obs in arb_observation()) {
        let now = Utc::now();
        let r = record(&state);
        let a = decide(&machine(), &governance(), Some(&r), &obs, now);
        let b = decide(&machine(), &governance(), Some(&r), &obs, now);
        prop_assert_eq!(a, b);
    }

    /// A final state never moves, and only `new` opens a CHG.
    #[test]
    fn only_new_issues_open_changes(state in arb_state(), obs in arb_observation()) {
        let r = record(&state);
        if let Some(step) = decide(&machine(), &governance(), Some(&r), &obs, Utc::now()) {
            if step.actions.iter().any(|(_, a)| a.kind == ActionKind::CreateChange) {
                prop_assert_eq!(step.from.as_str(), "new");
            }
        }
    }
}
