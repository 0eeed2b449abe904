//! Wiring of `cabgate apply`: the spec, the clients, the store and the runner put together, and
//! the command's modes (one pass, the loop, the dry run, the listener).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::alert::{DeliveryOptions, Outbox};
use crate::bytebase::{self, ClientConfig, ServiceKey};
use crate::cli::apply::{Args, finish, render_plan, render_report, webhook_secret};
use crate::cli::{Failure, Outcome};
use crate::servicenow::{self, ClientOptions};
use crate::spec::{LoadedSpec, SpecError};
use crate::workflow::adapt::{ServiceNowPort, StorePort};
use crate::workflow::listen::{Wake, router};
use crate::workflow::metrics::Metrics;
use crate::workflow::port::{ErrorKind, Store as _};
use crate::workflow::runner::{Clock, Runner, Settings, Stop, system_clock};

/// The runner over the real clients and store.
pub type Engine = Runner<bytebase::Client, ServiceNowPort, StorePort>;

/// Why the runner could not be put together.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WiringError {
    /// The spec's workflow settings do not work.
    #[error(transparent)]
    Settings(#[from] crate::workflow::runner::SettingsError),
    /// A variable the spec names is not set.
    #[error("environment variable {0} is not set (named by the spec)")]
    MissingEnv(String),
    /// The Bytebase client could not be set up.
    #[error(transparent)]
    Bytebase(#[from] bytebase::BytebaseError),
    /// The ServiceNow client could not be set up.
    #[error(transparent)]
    ServiceNow(#[from] servicenow::Error),
    /// The state store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The alert sinks could not be set up.
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
}

/// Reads an environment variable (the process environment, or a map in tests).
pub type Env = Box<dyn Fn(&str) -> Option<String>>;

/// What the runner is built from besides the spec.
pub struct Options {
    /// Reads an environment variable (the process environment, or a map in tests).
    pub env: Env,
    /// The clock.
    pub clock: Clock,
    /// The state store's URL, overriding the spec's (tests use a temporary file).
    pub state_url: Option<String>,
    /// Millisecond retry waits (tests against the emulators' injected faults).
    pub fast_retries: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env: Box::new(|k| std::env::var(k).ok()),
            clock: system_clock(),
            state_url: None,
            fast_retries: false,
        }
    }
}

/// Builds the runner for a loaded spec.
pub fn connect(loaded: &LoadedSpec, options: &Options) -> Result<Engine, WiringError> {
    let spec = &loaded.spec;
    let settings = Settings::from_spec(spec, crate::spec::default_workflow())?;
    let key_env = &spec.bytebase.service_key_env;
    let key = (options.env)(key_env)
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| WiringError::MissingEnv(key_env.clone()))?;
    let mut config =
        ClientConfig::new(&spec.bytebase.url, &spec.bytebase.service_account, ServiceKey::new(key));
    let mut sn_options = ClientOptions { page_size: 1000, ..ClientOptions::default() };
    let mut delivery = DeliveryOptions::default();
    if options.fast_retries {
        config.retry = bytebase::retry::RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        };
        sn_options.retry = servicenow::retry::RetryPolicy {
            // Tests: a 429's `Retry-After` (whole seconds) is cut to milliseconds.
            rate_limit_cap: Duration::from_millis(20),
            ..servicenow::retry::RetryPolicy::fast()
        };
        delivery.base_delay = Duration::ZERO;
        delivery.max_delay = Duration::ZERO;
    }
    let bytebase = bytebase::Client::new(config)?;
    let sn_spec =
        spec.servicenow.as_ref().ok_or(crate::workflow::runner::SettingsError::NoServiceNow)?;
    // One page holds a thousand CHGs (above), so one list call covers a large workspace.
    let sn = servicenow::Client::from_spec(sn_spec, options.env.as_ref(), sn_options)?;
    let dir = loaded.path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let url = options.state_url.clone().unwrap_or_else(|| spec.state.url.clone());
    let store = crate::store::open(&url, &dir)?;
    let outbox = Outbox::from_spec(
        &spec.alerts.skipped_approval,
        options.env.as_ref(),
        Some(sn.clone()),
        delivery,
    )?;
    let actor = format!("serviceAccount:{}", spec.bytebase.service_account);
    let store =
        StorePort::new(store, outbox, &spec.alerts.skipped_approval, &actor, options.clock.clone());
    Ok(Runner {
        bytebase,
        servicenow: ServiceNowPort::new(sn),
        store,
        settings,
        metrics: Arc::new(Metrics::default()),
        clock: options.clock.clone(),
    })
}

/// The runner after a crash: the same clients (connections and tokens are not workflow state),
/// everything else rebuilt from the store at `state_url`, reopened.
pub fn restart(engine: Engine, state_url: &str, spec_dir: &Path) -> Result<Engine, WiringError> {
    let store = crate::store::open(state_url, spec_dir)?;
    let Runner { bytebase, servicenow, store: old, settings, clock, .. } = engine;
    let store = old.reopen(store);
    drop(old);
    Ok(Runner {
        bytebase,
        servicenow: ServiceNowPort::new(servicenow.client),
        store,
        settings,
        metrics: Arc::new(Metrics::default()),
        clock,
    })
}

/// Runs `cabgate apply` with its arguments.
pub async fn apply(args: Args) -> Outcome {
    let loaded = match crate::spec::load(&args.spec) {
        Ok(loaded) => loaded,
        Err(SpecError::Invalid(invalid)) => {
            for f in &invalid.findings {
                tracing::error!(code = %f.code, "{}", f.message);
            }
            return Err(Failure::invalid(miette::miette!(
                "the spec {} is invalid ({} problem(s)); run `cabgate lint` for details",
                invalid.path.display(),
                invalid.findings.len()
            )));
        }
        Err(e) => return Err(Failure::invalid(e)),
    };
    if args.dry_run {
        return dry_run(&loaded, &args).await;
    }
    let engine = connect(&loaded, &Options::default()).map_err(invalid_or_runtime)?;
    if args.once {
        let stop = Stop::default();
        return match engine.pass(&Default::default(), &stop).await {
            Ok(report) => {
                let failed = !report.errors.is_empty();
                finish(&render_report(&report, args.format), failed)
            }
            Err(e) => Err(Failure::runtime(miette::miette!("{e}"))),
        };
    }
    run_loop(engine, &args).await
}

fn invalid_or_runtime(e: WiringError) -> Failure {
    match e {
        WiringError::Settings(_) | WiringError::MissingEnv(_) | WiringError::Alert(_) => {
            Failure::invalid(e)
        }
        _ => Failure::runtime(e),
    }
}

/// `--dry-run`: observe and decide, print, write nothing. The store is read from a private copy
/// of its file, so not even a schema migration touches the real one.
async fn dry_run(loaded: &LoadedSpec, args: &Args) -> Outcome {
    let copy = std::env::temp_dir().join(format!("cabgate-dry-run-{}.db", std::process::id()));
    let state_url = private_copy(loaded, &copy);
    let options = Options { state_url: Some(state_url), ..Options::default() };
    let engine = connect(loaded, &options).map_err(invalid_or_runtime)?;
    let records = engine.store.records().await;
    let result = match records {
        Ok(records) => {
            let records = records.into_iter().map(|r| (r.issue.clone(), r)).collect();
            engine.plan(&records).await
        }
        Err(e) => Err(e),
    };
    drop(engine);
    let _ = std::fs::remove_file(&copy);
    match result {
        Ok(planned) => finish(&render_plan(&planned, args.format), false),
        Err(e) => Err(Failure::runtime(miette::miette!("{e}"))),
    }
}

/// The URL of a private copy of the spec's SQLite store (or an in-memory one when the store does
/// not exist yet, or is not a local file).
fn private_copy(loaded: &LoadedSpec, copy: &Path) -> String {
    let dir = loaded.path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let Some(path) = loaded.spec.state.url.strip_prefix("sqlite://") else {
        return "sqlite::memory:".to_owned();
    };
    let path = Path::new(path);
    let path = if path.is_absolute() { path.to_path_buf() } else { dir.join(path) };
    if path.is_file() && std::fs::copy(&path, copy).is_ok() {
        format!("sqlite://{}", copy.display())
    } else {
        "sqlite::memory:".to_owned()
    }
}

async fn run_loop(engine: Engine, args: &Args) -> Outcome {
    let engine = Arc::new(engine);
    let wake = Arc::new(Wake::default());
    let stop = Arc::new(Stop::default());
    if let Some(addr) = args.listen {
        let secret = webhook_secret(&args.webhook_secret_env);
        if secret.is_none() {
            tracing::warn!(var = %args.webhook_secret_env, "no webhook secret: /webhook answers 403");
        }
        let app = router(wake.clone(), engine.metrics.clone(), secret);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::runtime(miette::miette!("cannot listen on {addr}: {e}")))?;
        tracing::info!(%addr, "listening for webhooks, /healthz and /metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the listener stopped");
            }
        });
    }
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        crate::cli::shutdown_signal().await;
        tracing::info!("stopping after the action in flight");
        signal_stop.request();
    });
    match engine.run_loop(wake, stop).await {
        Ok(()) => Ok(crate::finding::Exit::Ok),
        Err(e) if e.kind == ErrorKind::Fatal => Err(Failure::runtime(miette::miette!("{e}"))),
        Err(e) => Err(Failure::runtime(miette::miette!("{e}"))),
    }
}
