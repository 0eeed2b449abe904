//! `cabgate-bench`: the benchmark table of `BENCHMARKS.md`.
//!
//! Speed and memory targets live here, never in timed tests. Each measurement runs the real
//! thing: whole `cabgate` processes for lint and `check --snapshot` (this binary re-executes
//! itself as `cabgate`, so one `cargo run --release --bin cabgate-bench` builds all it needs), and
//! the emulators over loopback HTTP for the live read and the runner.
//!
//! Run: `cargo run --release --bin cabgate-bench` (add `--quick` for a smaller workspace).
//! `cabgate-bench --write-synthetic DIR [--quick]` only writes the synthetic workspace
//! (`bench.yaml` and `snapshot.json`), to profile `cabgate check --snapshot` by hand.

mod live;
mod synthetic;

/// The allocator of the `cabgate` binary, since this one re-executes itself as `cabgate`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One row of the table.
struct Row {
    what: String,
    value: String,
    target: String,
}

fn main() {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let rest: Vec<std::ffi::OsString> = args.collect();
    if rest.first().is_some_and(|a| a == "--as-cabgate") {
        let forwarded = std::iter::once(program).chain(rest.into_iter().skip(1));
        std::process::exit(cabgate::cli::main_from(forwarded));
    }
    if rest.first().is_some_and(|a| a == "--write-synthetic") {
        let Some(dir) = rest.get(1) else {
            eprintln!("cabgate-bench: --write-synthetic needs a folder");
            std::process::exit(2);
        };
        let scale = if rest.iter().any(|a| a == "--quick") {
            synthetic::Scale::QUICK
        } else {
            synthetic::Scale::LARGE
        };
        match write_synthetic(Path::new(dir), scale) {
            Ok(size) => println!("wrote bench.yaml and snapshot.json ({size} MB)"),
            Err(error) => {
                eprintln!("cabgate-bench: {error}");
                std::process::exit(3);
            }
        }
        return;
    }
    let quick = rest.iter().any(|a| a == "--quick");
    if let Err(error) = run(quick) {
        eprintln!("cabgate-bench: {error}");
        std::process::exit(3);
    }
}

fn run(quick: bool) -> Result<(), String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile_dir()?;
    let mut rows = Vec::new();

    rows.push(lint_row(repo)?);
    rows.extend(check_snapshot_rows(&work, quick)?);
    rows.push(live_read_row(quick)?);
    rows.push(emulator_row(quick)?);
    rows.extend(runner_rows(quick)?);

    print_table(&rows, quick);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `cabgate lint` of the example spec, whole process, median of 21 runs.
fn lint_row(repo: &Path) -> Result<Row, String> {
    let spec = repo.join("fixtures/specs/example.yaml");
    let mut times = Vec::new();
    for _ in 0..21 {
        let run = run_self(&["lint", path_str(&spec)?, "--format", "json"])?;
        if run.code != 0 {
            return Err(format!("lint of the example exited {}", run.code));
        }
        times.push(run.elapsed);
    }
    Ok(Row {
        what: "lint of fixtures/specs/example.yaml (whole process, median of 21)".into(),
        value: format_ms(median(&mut times)),
        target: "< 30 ms".into(),
    })
}

/// `cabgate check --snapshot` of the synthetic workspace: wall time and peak memory.
fn check_snapshot_rows(work: &Path, quick: bool) -> Result<Vec<Row>, String> {
    let scale = if quick { synthetic::Scale::QUICK } else { synthetic::Scale::LARGE };
    let spec = work.join("bench.yaml");
    let snapshot = work.join("snapshot.json");

    // The workspace is written by a child process. A child started with vfork (as std's
    // `Command` does) carries the parent's peak resident set into its own `ru_maxrss`, so this
    // process must never hold the large workspace itself, or every peak below would be its own.
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut write = Command::new(me);
    write.arg("--write-synthetic").arg(work).stdout(Stdio::null());
    if quick {
        write.arg("--quick");
    }
    let written = write.status().map_err(|e| e.to_string())?;
    if !written.success() {
        return Err(format!("writing the synthetic workspace failed ({written})"));
    }
    let size = std::fs::metadata(&snapshot).map_err(|e| e.to_string())?.len() / 1_000_000;

    let mut times = Vec::new();
    let mut peak_kib = 0;
    for _ in 0..3 {
        let args =
            ["check", path_str(&spec)?, "--snapshot", path_str(&snapshot)?, "--format", "json"];
        let run = run_self(&args)?;
        if run.code > 1 {
            return Err(format!("check --snapshot exited {}", run.code));
        }
        times.push(run.elapsed);
        peak_kib = peak_kib.max(run.max_rss_kib);
    }
    let what = format!(
        "check --snapshot: {} projects, {} bindings, {} environments, {} issues ({} MB)",
        scale.projects, scale.bindings, scale.environments, scale.issues, size
    );
    Ok(vec![
        Row {
            what: format!("{what}, wall time (median of 3)"),
            value: format_ms(median(&mut times)),
            target: "< 1 s".into(),
        },
        Row {
            what: "check --snapshot, peak memory (max RSS of the process)".into(),
            value: format!("{} MiB", peak_kib / 1024),
            target: "-".into(),
        },
    ])
}

/// Writes `bench.yaml` and `snapshot.json` of the synthetic workspace into `dir`; returns the
/// snapshot's size in MB.
fn write_synthetic(dir: &Path, scale: synthetic::Scale) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("bench.yaml"), synthetic::spec_yaml()).map_err(|e| e.to_string())?;
    let document = synthetic::snapshot(scale, chrono::Utc::now());
    let text = serde_json::to_string(&document).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("snapshot.json"), &text).map_err(|e| e.to_string())?;
    Ok(text.len() / 1_000_000)
}

/// The live read of a workspace against the emulator with 20 ms added to every request.
fn live_read_row(quick: bool) -> Result<Row, String> {
    let latency = Duration::from_millis(20);
    let found = live::measure(if quick { 50 } else { 300 }, latency)?;
    Ok(Row {
        what: format!(
            "live read of {} projects, 20 ms latency: {} requests (bound requests × latency / \
             concurrency = {})",
            found.projects,
            found.requests,
            format_ms(found.bound)
        ),
        value: format_ms(found.elapsed),
        target: "near the bound".into(),
    })
}

/// The Bytebase emulator's throughput on list calls, so the other rows measure cabgate.
fn emulator_row(quick: bool) -> Result<Row, String> {
    let projects = if quick { 500 } else { 5_000 };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let found = runtime.block_on(async {
        let world = cabgate::sim::bench::synthetic_world(projects).map_err(|e| e.to_string())?;
        let calls = cabgate::sim::bench::CHECK_CALLS;
        cabgate::sim::bench::list_throughput(world, 8, 20_000, calls)
            .await
            .map_err(|e| e.to_string())
    })?;
    Ok(Row {
        what: format!(
            "Bytebase emulator, {projects}-project world: list requests/s (8 clients, {} requests, \
             {} failed)",
            found.requests, found.failures
        ),
        value: format!("{:.0}/s", found.per_second()),
        target: "≥ 5,000/s".into(),
    })
}

/// The runner at scale: calls per pass and pass time with many issues in flight, and the delay
/// from a CAB approval to `batchRun` with a 1 s poll interval.
fn runner_rows(quick: bool) -> Result<Vec<Row>, String> {
    let issues = if quick { 100 } else { 1_000 };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let found = runtime.block_on(cabgate::workflow::bench::measure(issues))?;
    let steady = found.steady_pass;
    let open = found.open_pass;
    Ok(vec![
        Row {
            what: format!("apply, {issues} issues waiting for the CAB: ServiceNow calls per pass"),
            value: steady.servicenow_calls.to_string(),
            target: "≤ 5".into(),
        },
        Row {
            what: format!("apply, {issues} issues waiting for the CAB: Bytebase calls per pass"),
            value: steady.bytebase_calls.to_string(),
            target: "-".into(),
        },
        Row {
            what: format!("apply, {issues} issues waiting for the CAB: pass wall time"),
            value: format_ms(steady.wall),
            target: "-".into(),
        },
        Row {
            what: format!(
                "apply, opening pass for {issues} issues (one CHG each): {} ServiceNow and {} \
                 Bytebase calls",
                open.servicenow_calls, open.bytebase_calls
            ),
            value: format_ms(open.wall),
            target: "-".into(),
        },
        Row {
            what: "delay from a CAB approval to batchRun, 1 s poll interval".into(),
            value: format_ms(found.approval_to_run),
            target: "≈ poll interval + a pass".into(),
        },
    ])
}

/// What one `cabgate` process took.
struct SelfRun {
    elapsed: Duration,
    code: i32,
    /// The child's own peak resident set (`ru_maxrss` of `wait4`), in KiB.
    max_rss_kib: i64,
}

/// Runs this binary as `cabgate ARGS`, stdout discarded, and reaps it with `wait4` so the peak
/// memory is this child's alone (`RUSAGE_CHILDREN` would report the largest child so far).
fn run_self(args: &[&str]) -> Result<SelfRun, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(me)
        .arg("--as-cabgate")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stderr = child.stderr.take().ok_or("the child has no stderr")?;
    let drain = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut text);
        text
    });
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: wait4 only writes into the status and the struct we hand it, and reaps a child
    // of ours that nothing else waits for (`child` is never waited on after this).
    let (reaped, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::wait4(pid, &mut status, 0, &mut usage), usage)
    };
    let elapsed = start.elapsed();
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let stderr = drain.join().unwrap_or_default();
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    if code > 1 {
        eprintln!("cabgate {}:\n{}", args.join(" "), String::from_utf8_lossy(&stderr));
    }
    Ok(SelfRun { elapsed, code, max_rss_kib: usage.ru_maxrss })
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn format_ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("cabgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn print_table(rows: &[Row], quick: bool) {
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    println!("cabgate benchmarks ({machine}{})", if quick { ", --quick" } else { "" });
    println!();
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.what, row.value, row.target);
    }
}
