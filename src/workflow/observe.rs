//! observe: one level-triggered read of both systems for every governed issue in flight.
//!
//! The number of calls is what bounds a pass, so each read is batched where the API allows it:
//! one search for every OPEN issue of the workspace, one ServiceNow query for every active CHG
//! under the workspace's correlation prefix (plus one `sys_idIN…` query for the few CHGs that
//! left the active set since the last pass). Per-issue reads are only made where the state needs
//! them: the plan when a decision depends on its version or on `hasRollout`, the rollout while
//! tasks run, the issue itself once it is no longer OPEN.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::model::Fact;
use crate::workflow::decide::{Machine, Record};
use crate::workflow::facts::{ChangeView, IssueView, Observation, PlanView};
use crate::workflow::port::{Bytebase, ErrorKind, PortResult, ServiceNow};
use crate::workflow::template::{correlation_id, correlation_prefix};

/// Which projects are governed: ids or globs (`ledger-*`), `*` for all.
#[derive(Debug, Clone)]
pub struct Projects {
    set: globset::GlobSet,
}

impl Projects {
    /// Compiles the spec's project patterns.
    pub fn new(patterns: &[String]) -> Result<Projects, globset::Error> {
        let mut builder = globset::GlobSetBuilder::new();
        for p in patterns {
            builder.add(globset::Glob::new(p)?);
        }
        Ok(Projects { set: builder.build()? })
    }

    /// True when the issue's project is governed.
    pub fn governs(&self, issue: &str) -> bool {
        let project = issue.strip_prefix("projects/").and_then(|r| r.split('/').next());
        project.is_some_and(|p| self.set.is_match(p))
    }
}

/// One issue to decide on: what the pass saw and what the store remembers.
#[derive(Debug, Clone)]
pub struct Item {
    /// The observation.
    pub observation: Observation,
    /// The stored record, if the issue entered the machine.
    pub record: Option<Record>,
}

/// What one pass observed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Governed issues in flight, the ones named by a webhook first.
    pub items: Vec<Item>,
    /// Issues whose read failed this pass (left for the next one), with why.
    pub unreadable: Vec<(String, String)>,
}

/// Reads everything one pass decides on.
#[allow(clippy::too_many_arguments)] // NOTE: each argument is a distinct input of the pass.
pub async fn observe<B: Bytebase, S: ServiceNow>(
    bytebase: &B,
    servicenow: &S,
    machine: &Machine,
    projects: &Projects,
    bytebase_url: &str,
    records: &BTreeMap<String, Record>,
    first: &BTreeSet<String>,
) -> PortResult<Observed> {
    let mut observed = Observed::default();
    let open: Vec<IssueView> =
        bytebase.open_issues().await?.into_iter().filter(|i| projects.governs(&i.name)).collect();
    let mut issues: BTreeMap<String, IssueView> =
        open.into_iter().map(|i| (i.name.clone(), i)).collect();
    for (name, record) in records {
        if machine.is_final(&record.state) || issues.contains_key(name) {
            continue;
        }
        match bytebase.issue(name).await {
            Ok(issue) => {
                issues.insert(name.clone(), issue);
            }
            Err(e) if e.kind != ErrorKind::Fatal => {
                observed.unreadable.push((name.clone(), e.message));
            }
            Err(e) => return Err(e),
        }
    }

    let prefix = correlation_prefix(bytebase_url);
    let mut by_id: BTreeMap<String, ChangeView> = BTreeMap::new();
    let mut by_correlation: BTreeMap<String, String> = BTreeMap::new();
    for change in servicenow.active_changes(&prefix).await? {
        by_correlation.insert(change.correlation_id.clone(), change.sys_id.clone());
        by_id.insert(change.sys_id.clone(), change);
    }
    let missing: Vec<String> = records
        .values()
        .filter(|r| !machine.is_final(&r.state) && issues.contains_key(&r.issue))
        .filter_map(|r| r.change.as_ref())
        .filter(|c| !by_id.contains_key(&c.sys_id))
        .map(|c| c.correlation_id.clone())
        .collect();
    if !missing.is_empty() {
        for change in servicenow.changes_by_correlation(&missing).await? {
            by_id.insert(change.sys_id.clone(), change);
        }
    }

    let mut items = Vec::with_capacity(issues.len());
    for (name, issue) in issues {
        let record = records.get(&name).cloned();
        let change = match record.as_ref().and_then(|r| r.change.as_ref()) {
            Some(c) => by_id.get(&c.sys_id).cloned(),
            None => {
                // A CHG opened by an earlier pass whose record was lost, or by another runner.
                let generation = record.as_ref().map_or(0, |r| r.generation);
                let key = correlation_id(bytebase_url, &name, generation);
                by_correlation.get(&key).and_then(|id| by_id.get(id)).cloned()
            }
        };
        let observation = Observation { issue, plan: None, rollout: None, change };
        items.push(Item { observation, record });
    }

    read_plans_and_rollouts(bytebase, machine, &mut items, &mut observed).await?;
    items.sort_by_key(|i| !first.contains(&i.observation.issue.name));
    observed.items = items;
    Ok(observed)
}

/// What an issue's state needs read beyond the issue and its CHG: the facts its transitions
/// test decide it, so a custom workflow gets what it asks for and nothing more.
fn needs(machine: &Machine, state: &str) -> (bool, bool) {
    let mut plan = false;
    let mut rollout = false;
    let from_here = machine
        .transitions
        .iter()
        .filter(|t| t.from == state || (t.from == "*" && !machine.is_final(state)));
    for fact in from_here.flat_map(|t| t.when.keys()) {
        match fact {
            Fact::IssuePlanChanged | Fact::RolloutExists | Fact::RolloutWaitExpired => plan = true,
            Fact::Tasks => rollout = true,
            _ => {}
        }
    }
    (plan, rollout)
}

/// Reads the plans and rollouts the items' states need: the plans of every unrolled plan in one
/// listing when several are needed, the others one by one.
async fn read_plans_and_rollouts<B: Bytebase>(
    bytebase: &B,
    machine: &Machine,
    items: &mut [Item],
    observed: &mut Observed,
) -> PortResult<()> {
    let state_of =
        |item: &Item| item.record.as_ref().map_or(machine.initial.clone(), |r| r.state.clone());
    let wanted: Vec<(usize, bool, bool)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (plan, rollout) = needs(machine, &state_of(item));
            (i, plan && !item.observation.issue.plan.is_empty(), rollout)
        })
        .filter(|(_, plan, rollout)| *plan || *rollout)
        .collect();
    let plan_count = wanted.iter().filter(|(_, plan, _)| *plan).count();
    let mut listed: BTreeMap<String, PlanView> = BTreeMap::new();
    if plan_count > BULK_PLANS {
        match bytebase.unrolled_plans().await {
            Ok(plans) => listed = plans.into_iter().map(|p| (p.name.clone(), p)).collect(),
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => tracing::debug!(error = %e, "listing plans failed; reading them one by one"),
        }
    }
    for (i, wants_plan, wants_rollout) in wanted {
        let item = &mut items[i];
        match read_one(bytebase, item, wants_plan, wants_rollout, &listed).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => observed.unreadable.push((item.observation.issue.name.clone(), e.message)),
        }
    }
    Ok(())
}

/// Above this many plans to read, one listing is cheaper than one call each.
const BULK_PLANS: usize = 5;

async fn read_one<B: Bytebase>(
    bytebase: &B,
    item: &mut Item,
    wants_plan: bool,
    wants_rollout: bool,
    listed: &BTreeMap<String, PlanView>,
) -> PortResult<()> {
    let obs = &mut item.observation;
    let mut rollout_known = false;
    if wants_plan {
        let plan = match listed.get(&obs.issue.plan) {
            Some(p) => p.clone(),
            None => bytebase.plan(&obs.issue.plan).await?,
        };
        rollout_known = !plan.has_rollout;
        obs.plan = Some(plan);
    }
    if (wants_rollout || obs.plan.as_ref().is_some_and(|p| p.has_rollout)) && !rollout_known {
        obs.rollout = bytebase.rollout(&obs.issue.plan).await?;
    }
    Ok(())
}

/// Reads one issue again right after a step moved it, so the runner can take its next step in
/// the same pass (an approval followed by the rollout, say) instead of a poll interval later.
pub async fn observe_one<B: Bytebase, S: ServiceNow>(
    bytebase: &B,
    servicenow: &S,
    machine: &Machine,
    record: &Record,
) -> PortResult<Observation> {
    let issue = bytebase.issue(&record.issue).await?;
    let change = match &record.change {
        Some(c) => Some(servicenow.change(&c.sys_id).await?),
        None => None,
    };
    let mut item = Item {
        observation: Observation { issue, plan: None, rollout: None, change },
        record: Some(record.clone()),
    };
    let (plan, rollout) = needs(machine, &record.state);
    let wants_plan = plan && !item.observation.issue.plan.is_empty();
    read_one(bytebase, &mut item, wants_plan, rollout, &BTreeMap::new()).await?;
    Ok(item.observation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governed_projects_match_ids_and_globs() {
        let projects = Projects::new(&["payments".into(), "ledger-*".into()]).expect("globs");
        assert!(projects.governs("projects/payments/issues/1"));
        assert!(projects.governs("projects/ledger-eu/issues/2"));
        assert!(!projects.governs("projects/sandbox/issues/3"));
        assert!(!projects.governs("payments/issues/1"), "not a resource name");
    }

    #[test]
    fn only_states_whose_transitions_test_plan_or_tasks_read_them() {
        let machine = Machine::from_spec(&Default::default(), crate::spec::default_workflow());
        assert_eq!(needs(&machine, "new"), (false, false), "a new issue costs no plan read");
        assert_eq!(needs(&machine, "awaiting_cab"), (true, false));
        assert_eq!(needs(&machine, "approved"), (true, false));
        assert_eq!(needs(&machine, "rolling_out"), (false, true));
        assert_eq!(needs(&machine, "closed"), (false, false), "final states read nothing");
    }
}
