//! The engine's properties under seeded fault schedules: emulator faults (5xx, 429, resets,
//! lost responses) and a restart of the runner (dropped and rebuilt from the store) between
//! any two actions. Each case is a small world driven to its end; the sim clock is advanced,
//! nothing sleeps.

use std::collections::BTreeMap;

use cabgate::sim::{self, FaultSpec};
use cabgate::workflow::runner::Stop;
use cabgate::workflow::wiring::restart;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

use super::{Harness, ISSUE, SKIPPED, approve_as_cab, number, world};

/// What the CAB does in a schedule.
#[derive(Debug, Clone, Copy)]
enum Cab {
    Approve,
    Reject,
    Cancel,
}

#[derive(Debug, Clone)]
struct Schedule {
    seed: u64,
    cab: Cab,
    fail_task: bool,
    /// Per pass: `Some(n)` = the runner crashes after n actions and is rebuilt.
    crashes: Vec<Option<usize>>,
    faults: FaultSpec,
}

fn schedules() -> impl Strategy<Value = Schedule> {
    let cab = prop_oneof![Just(Cab::Approve), Just(Cab::Reject), Just(Cab::Cancel)];
    (
        any::<u64>(),
        cab,
        any::<bool>(),
        prop::collection::vec(prop::option::weighted(0.3, 0usize..3), 10),
        (0.0..0.15f64, 0.0..0.1f64, 0.0..0.08f64, 0.0..0.08f64),
    )
        .prop_map(|(seed, cab, fail_task, crashes, (e5, e429, reset, lost))| Schedule {
            seed,
            cab,
            fail_task,
            crashes,
            faults: FaultSpec {
                error_5xx: e5,
                too_many: e429,
                reset,
                lost,
                retry_after_secs: 0,
                // Faults stop after a while, so every flow can finish.
                first: Some(40),
                ..FaultSpec::default()
            },
        })
}

async fn check(s: &Schedule) -> Result<(), TestCaseError> {
    let mut w = world();
    if s.fail_task {
        w.bytebase.timing.task_run_outcome = "FAILED".into();
    }
    w.bytebase.issues.retain(|i| i.project == "payments");
    let options =
        sim::Options { seed: s.seed, faults: s.faults.clone(), ..sim::Options::default() };
    let h = Harness::fast(w, options).await;
    let mut engine = h.engine();
    let mut decided_at: Option<u64> = None;
    let mut idle_passes = 0;

    for (i, crash) in s.crashes.iter().chain(std::iter::repeat_n(&None, 20)).enumerate() {
        let stop = match crash {
            Some(n) => Stop::after(*n),
            None => Stop::default(),
        };
        // Transient failures end a pass early; the next pass retries.
        let idle = matches!(
            engine.pass(&Default::default(), &stop).await,
            Ok(report) if report.finished && report.steps.is_empty()
        );
        idle_passes = if idle { idle_passes + 1 } else { 0 };
        if crash.is_some() {
            engine = restart(engine, &h.state_url(), h.dir.path()).expect("the runner restarts");
        }
        let changes = h.changes().await;
        let active: Vec<_> = changes.iter().filter(|c| c["active"] == "true").collect();
        prop_assert!(active.len() <= 1, "two open CHGs for one issue: {changes:#?}");
        if decided_at.is_none()
            && let Some(change) = changes.first()
            && change["approval"] == "requested"
            && i >= 1
        {
            decided_at = Some(h.sim.requests().len() as u64);
            let chg = number(change);
            match s.cab {
                Cab::Approve => approve_as_cab(&h, change).await,
                Cab::Reject => {
                    let body = json!({ "approver": "dave", "comment": "Not now" });
                    h.sn(&format!("change_request/{chg}/reject"), body).await;
                }
                Cab::Cancel => {
                    h.sn(&format!("change_request/{chg}/cancel"), json!({ "by": "dave" })).await;
                }
            }
        }
        // Settled: the schedule is played out and the last passes found nothing to do.
        if i >= s.crashes.len() && decided_at.is_some() && idle_passes >= 2 {
            break;
        }
    }

    // Never approve or run before an approved CHG, nor at all when the CAB said no.
    for e in h.sim.requests() {
        let gated = e.method == "POST"
            && (e.path.ends_with(":approve") || e.path.contains(":batchRun"))
            && !e.path.starts_with("/_sim/");
        if gated {
            prop_assert!(matches!(s.cab, Cab::Approve), "gated call without approval: {e:?}");
            prop_assert!(decided_at.is_some_and(|at| e.seq >= at), "gated call too early: {e:?}");
        }
    }
    let changes = h.changes().await;
    prop_assert_eq!(changes.len(), 1, "exactly one CHG: {:#?}", changes);
    let issue = engine.bytebase.get_issue(ISSUE).await.expect("the issue");
    match s.cab {
        Cab::Approve => {
            prop_assert_eq!(issue.approval_status.as_str(), "APPROVED");
            prop_assert_eq!(&changes[0]["state"], "3", "closed: {:#?}", changes[0]);
            let code = if s.fail_task { "unsuccessful" } else { "successful" };
            prop_assert_eq!(&changes[0]["close_code"], code);
        }
        Cab::Reject | Cab::Cancel => {
            prop_assert_eq!(issue.approval_status.as_str(), "REJECTED");
        }
    }
    let records: BTreeMap<String, String> = engine
        .store
        .inner()
        .issues()
        .expect("records")
        .into_iter()
        .map(|r| (r.issue, r.state))
        .collect();
    let expected = match s.cab {
        Cab::Approve => "closed",
        Cab::Reject => "sent_back",
        Cab::Cancel => "rejected",
    };
    prop_assert_eq!(records.get(ISSUE).map(String::as_str), Some(expected));

    // The SKIPPED bypass: queued once, delivered once.
    let key = cabgate::alert::alert_key(SKIPPED);
    let deliveries = engine.store.inner().deliveries(&key).expect("deliveries");
    prop_assert_eq!(deliveries.len(), 1);
    prop_assert_eq!(deliveries[0].state, cabgate::store::DeliveryState::Delivered);
    let journal = engine.store.inner().journal(Some(SKIPPED), 100).expect("journal");
    let delivered = journal.iter().filter(|j| j.action == "alert_delivered").count();
    prop_assert_eq!(delivered, 1, "{:#?}", journal);
    Ok(())
}

/// How many schedules run at once: most of a case is waiting on loopback HTTP and SQLite.
const PARALLEL: usize = 4;

/// 200 seeded schedules, generated by proptest's deterministic runner (set
/// `CABGATE_FAULT_SEED` to draw others) and run a few at a time. A failure prints its schedule,
/// which replays: the same seed gives the same faults.
#[test]
fn the_engine_is_safe_and_live_under_faults_and_restarts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let seed: u64 =
        std::env::var("CABGATE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = schedules();
    let all: Vec<Schedule> =
        (0..200).map(|_| strategy.new_tree(&mut runner).expect("a schedule").current()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let failures = runtime.block_on(async move {
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut set = tokio::task::JoinSet::new();
        for schedule in all {
            let permit = permits.clone().acquire_owned().await.expect("a permit");
            set.spawn(async move {
                let result = check(&schedule).await;
                drop(permit);
                result.err().map(|e| format!("{schedule:?}: {e}"))
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = set.join_next().await {
            if let Some(failure) = done.expect("a case ran to its end") {
                failures.push(failure);
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{} schedule(s) failed:\n{}", failures.len(), failures.join("\n"));
}
