//! decide: the spec's state machine applied to one issue's stored record and observed facts.
//!
//! [`decide`] is pure: no I/O, no clock but the `now` it is given. It is level-triggered: it
//! reads the truth of this pass, so a webhook, a duplicate, a restart or a missed pass changes
//! nothing but when it runs. The first transition (in declared order) whose `from` matches the
//! stored state (`*` = any state that is not final) and whose conditions all hold is the step of
//! this pass; its actions run in order and the state moves to `to` only when all of them are
//! done. The record remembers which actions of an unfinished step are done, so a crash in the
//! middle resumes instead of repeating a comment.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::model::{Action, ActionKind, OnRework, OnTaskFailure, Transition, WorkflowSpec};
use crate::workflow::facts::{Facts, Governance, Memory, Observation};

/// The state machine the runner drives: the spec's transitions, or the default workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Where an issue without a record starts.
    pub initial: String,
    /// States where a flow ends.
    pub finals: BTreeSet<String>,
    /// Transitions in declared order (the first that matches wins).
    pub transitions: Vec<Transition>,
    /// What to do when the creator re-requests after a rework.
    pub on_rework: OnRework,
}

impl Machine {
    /// The machine of a spec's `workflow`: its own transitions when it declares them, else
    /// `default` (the parsed `workflows/default.yaml`: `initial`, `final` and transitions).
    ///
    /// With the default workflow, `onTaskFailure: wait` replaces the `task-failed` transition
    /// (cancel the rest, close unsuccessful) by a wait for a human: a work note, then the flow
    /// resumes when the failed task is retried or skipped. Declared transitions are used as
    /// written.
    pub fn from_spec(workflow: &WorkflowSpec, default: &WorkflowSpec) -> Machine {
        let declared = workflow.transitions.clone();
        let (initial, finals, transitions) = match declared {
            Some(t) => (workflow.initial.clone(), workflow.final_states.clone(), t),
            None => {
                let mut t = default.transitions.clone().unwrap_or_default();
                if workflow.on_task_failure == OnTaskFailure::Wait {
                    t = wait_on_task_failure(t);
                }
                (default.initial.clone(), default.final_states.clone(), t)
            }
        };
        Machine {
            initial,
            finals: finals.into_iter().collect(),
            transitions,
            on_rework: workflow.on_rework,
        }
    }

    /// True when `state` ends a flow.
    pub fn is_final(&self, state: &str) -> bool {
        self.finals.contains(state)
    }
}

/// The default's `task-failed` transition, rewritten for `onTaskFailure: wait`.
fn wait_on_task_failure(transitions: Vec<Transition>) -> Vec<Transition> {
    let mut out = Vec::with_capacity(transitions.len() + 2);
    for t in transitions {
        if t.name.as_deref() != Some("task-failed") {
            out.push(t);
            continue;
        }
        let when = |value: serde_json::Value| {
            serde_json::from_value(serde_json::json!({ "tasks": value })).unwrap_or_default()
        };
        let note = Action {
            kind: ActionKind::UpdateChange,
            args: [(
                "text".to_owned(),
                "A task failed; waiting for a person to retry or skip it in Bytebase.".into(),
            )]
            .into(),
        };
        out.push(Transition {
            name: Some("task-failed".into()),
            from: t.from.clone(),
            to: "task_failed".into(),
            when: when(serde_json::json!(["failed", "canceled"])),
            actions: vec![note],
        });
        out.push(Transition {
            name: Some("task-retried".into()),
            from: "task_failed".into(),
            to: t.from.clone(),
            when: when(serde_json::json!(["running", "not_started"])),
            actions: vec![],
        });
        let close = Action {
            kind: ActionKind::CloseChange,
            args: [("code".to_owned(), "successful_issues".into())].into(),
        };
        out.push(Transition {
            name: Some("task-resolved".into()),
            from: "task_failed".into(),
            to: t.to.clone(),
            when: when(serde_json::json!("done")),
            actions: vec![close],
        });
    }
    out
}

/// A reference to the CHG of an issue, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRef {
    /// 32-hex record id.
    pub sys_id: String,
    /// `CHG…`.
    pub number: String,
    /// The correlation id it was created under.
    pub correlation_id: String,
}

/// The stored workflow record of one issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `projects/{p}/issues/{id}`.
    pub issue: String,
    /// The workflow state.
    pub state: String,
    /// When the issue entered `state`.
    pub since: DateTime<Utc>,
    /// The issue's current CHG.
    #[serde(default)]
    pub change: Option<ChangeRef>,
    /// How many CHGs were opened for this issue before the current one (`onRework: new`).
    #[serde(default)]
    pub generation: u32,
    /// The plan version the CHG was opened or last resubmitted for.
    #[serde(default)]
    pub plan_version: Option<String>,
    /// The transition of the unfinished step, if any.
    #[serde(default)]
    pub step: Option<String>,
    /// Indexes of that step's actions already done.
    #[serde(default)]
    pub done: BTreeSet<usize>,
}

impl Record {
    /// A record for an issue entering the machine.
    pub fn new(issue: &str, initial: &str, now: DateTime<Utc>) -> Record {
        Record {
            issue: issue.to_owned(),
            state: initial.to_owned(),
            since: now,
            change: None,
            generation: 0,
            plan_version: None,
            step: None,
            done: BTreeSet::new(),
        }
    }
}

/// The step of one pass for one issue: a transition and the actions still to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The issue.
    pub issue: String,
    /// The transition's name (`from->to` when it has none).
    pub transition: String,
    /// The state it leaves.
    pub from: String,
    /// The state it enters once every action is done.
    pub to: String,
    /// The actions still to do, with their index in the transition.
    pub actions: Vec<(usize, Action)>,
    /// The facts that made it fire (for the journal and `--dry-run`).
    pub facts: Facts,
}

/// Decides the step of this pass for one issue, or `None` when nothing is to be done.
pub fn decide(
    machine: &Machine,
    governance: &Governance,
    record: Option<&Record>,
    observation: &Observation,
    now: DateTime<Utc>,
) -> Option<Step> {
    let state = record.map_or(machine.initial.as_str(), |r| r.state.as_str());
    if machine.is_final(state) {
        return None;
    }
    let memory = Memory {
        plan_version: record.and_then(|r| r.plan_version.as_deref()),
        since: record.map(|r| r.since),
    };
    let facts = Facts::derive(observation, &memory, governance, now);
    let (index, transition) = machine
        .transitions
        .iter()
        .enumerate()
        .find(|(_, t)| (t.from == state || t.from == "*") && holds(t, &facts))?;
    let name = transition_name(transition, index);
    let done = match record {
        Some(r) if r.step.as_deref() == Some(name.as_str()) => r.done.clone(),
        _ => BTreeSet::new(),
    };
    let actions =
        transition.actions.iter().cloned().enumerate().filter(|(i, _)| !done.contains(i)).collect();
    Some(Step {
        issue: observation.issue.name.clone(),
        transition: name,
        from: state.to_owned(),
        to: transition.to.clone(),
        actions,
        facts,
    })
}

/// The name a transition goes by in logs and the journal.
pub fn transition_name(transition: &Transition, index: usize) -> String {
    transition
        .name
        .clone()
        .unwrap_or_else(|| format!("{}->{}#{index}", transition.from, transition.to))
}

/// True when every condition of the transition holds.
fn holds(transition: &Transition, facts: &Facts) -> bool {
    transition.when.iter().all(|(fact, accepted)| {
        let value = facts.get(*fact);
        accepted.values().iter().any(|v| v == value)
    })
}

#[cfg(test)]
mod tests;
