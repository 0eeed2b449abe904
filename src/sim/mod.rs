//! Emulators of the Bytebase v1 API and the ServiceNow Table API, served over real HTTP on
//! loopback.
//!
//! Every test of the clients, of `check` and of `apply`, and `cabgate demo`, stands on these, so
//! they follow the references and Bytebase's source, never a guess. A seeded fault schedule makes
//! a failing run replay: the same world, seed and request order give the same faults and the same
//! recorded exchanges.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cabgate::sim::SimError> {
//! let world = cabgate::sim::World::load("fixtures/worlds/basic.yaml")?;
//! let sim = cabgate::sim::start(world, cabgate::sim::Options::default()).await?;
//! println!("{} {}", sim.bytebase_url(), sim.servicenow_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod bytebase;
pub mod clock;
pub mod faults;
pub mod record;
pub mod servicenow;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use faults::{FaultSpec, Server};
pub use record::{Delivery, Exchange, Recorder};

/// Everything both emulators start from: one YAML (or JSON) file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// The Bytebase workspace.
    pub bytebase: bytebase::World,
    /// The ServiceNow instance.
    pub servicenow: servicenow::World,
}

/// Why the emulators could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The world file could not be read.
    #[error("cannot read world file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The world is not valid YAML.
    #[error("{origin}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        /// File name or `<string>`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The world does not describe a valid workspace.
    #[error("{origin}: invalid world: {message}")]
    World {
        /// File name or `<string>`.
        origin: String,
        /// Which field is wrong and why.
        message: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The blocking runtime could not be built.
    #[error("cannot start the emulators' runtime: {0}")]
    Runtime(std::io::Error),
}

impl World {
    /// Loads a world file (YAML or JSON).
    pub fn load(path: impl AsRef<Path>) -> Result<World, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| SimError::Read { path: path.display().to_string(), source })?;
        World::from_yaml(&text, &path.display().to_string())
    }

    /// Parses a world from YAML (JSON is YAML too); `origin` names it in errors. The spec's
    /// loader reads it, so a world gets the same line-and-column errors as a spec.
    pub fn from_yaml(text: &str, origin: &str) -> Result<World, SimError> {
        let parsed = crate::spec::yaml::parse(text);
        let value = match (parsed.value, parsed.problems.into_iter().next()) {
            (_, Some(problem)) if !text.trim().is_empty() => {
                return Err(SimError::Yaml {
                    origin: origin.into(),
                    line: problem.span.line,
                    column: problem.span.column,
                    message: problem.message,
                });
            }
            (Some(value), _) if !value.is_null() => value,
            _ => serde_json::json!({}),
        };
        let world: World = serde_json::from_value(value)
            .map_err(|e| SimError::World { origin: origin.into(), message: e.to_string() })?;
        // A dangling name (a group member, the CAB group, an OAuth user) would make the emulator
        // behave unlike any instance; say so rather than start.
        let problems = world.servicenow.problems();
        if !problems.is_empty() {
            return Err(SimError::World {
                origin: origin.into(),
                message: format!("servicenow: {}", problems.join("; ")),
            });
        }
        Ok(world)
    }
}

/// How to run the emulators.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seed of the fault schedule (and of token signing keys).
    pub seed: u64,
    /// Faults to inject.
    pub faults: FaultSpec,
    /// A fixed delay added to every request.
    pub latency: Duration,
    /// Address to bind (loopback by default).
    pub bind: IpAddr,
    /// Bytebase port; 0 = any free port.
    pub bytebase_port: u16,
    /// ServiceNow port; 0 = any free port.
    pub servicenow_port: u16,
    /// Whether exchanges are recorded (benchmarks turn it off).
    pub record: bool,
    /// The clock; a fresh real-time clock by default.
    pub clock: Clock,
    /// Where the Bytebase emulator posts its TEAMS webhooks, standing in for the Power Automate
    /// flow (e.g. the runner's `/webhook`); overrides the world's `webhookRelay`.
    pub webhook_relay: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            faults: FaultSpec::none(),
            latency: Duration::ZERO,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bytebase_port: 0,
            servicenow_port: 0,
            record: true,
            clock: Clock::new(),
            webhook_relay: None,
        }
    }
}

/// Both emulators, serving until [`Running::shutdown`] or drop.
#[derive(Debug)]
pub struct Running {
    bytebase_url: String,
    servicenow_url: String,
    clock: Clock,
    recorder: Arc<Recorder>,
    emulator: Arc<bytebase::Emulator>,
    /// Dropping or sending on it starts the servers' graceful shutdown.
    stop_tx: Option<tokio::sync::watch::Sender<bool>>,
    /// The two servers.
    servers: Vec<JoinHandle<()>>,
    /// The background-job ticker.
    ticker: Option<JoinHandle<()>>,
}

impl Running {
    /// Base URL of the Bytebase emulator, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn bytebase_url(&self) -> &str {
        &self.bytebase_url
    }

    /// Base URL of the ServiceNow emulator.
    pub fn servicenow_url(&self) -> &str {
        &self.servicenow_url
    }

    /// The shared sim clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Every exchange recorded so far, both servers, in arrival order.
    pub fn requests(&self) -> Vec<Exchange> {
        self.recorder.snapshot()
    }

    /// Forgets the recorded exchanges.
    pub fn reset_requests(&self) {
        self.recorder.reset();
    }

    /// Every webhook post of the Bytebase emulator that has finished (sent, failed, dropped or
    /// not sent), in queueing order. Posts are asynchronous: wait for the count you expect.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.recorder.deliveries()
    }

    /// Runs every queued Bytebase background job now (finding, rollout creation, task runs).
    pub fn step(&self) -> usize {
        self.emulator.step()
    }

    /// Stops both servers: no new connections, idle keep-alive connections closed, requests in
    /// flight finished (for at most a second).
    pub async fn shutdown(mut self) {
        self.stop();
        for server in self.servers.drain(..) {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), server).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Signals the servers and stops the ticker; the servers then end on their own.
    fn stop(&mut self) {
        if let Some(stop) = self.stop_tx.take() {
            let _ = stop.send(true);
        }
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts both emulators on `options.bind`, each on its own port.
pub async fn start(world: World, options: Options) -> Result<Running, SimError> {
    let clock = options.clock.clone();
    let emulator = bytebase::Emulator::new(world.bytebase, clock.clone(), options.seed)
        .map_err(|message| SimError::World { origin: "bytebase".into(), message })?;
    let recorder = Arc::new(Recorder::default());
    let (world_relay, retry) = emulator.webhook_settings();
    let outlet = bytebase::delivery::Outlet::new(
        options.webhook_relay.clone().or(world_relay),
        retry,
        options.faults.clone(),
        options.seed,
        recorder.clone(),
        options.record,
    )
    .map(Arc::new)
    .map_err(|message| SimError::World { origin: "bytebase".into(), message })?;
    let layer = |server| {
        Arc::new(record::LayerState::new(
            server,
            recorder.clone(),
            options.faults.clone(),
            options.seed,
            options.latency,
            options.record,
        ))
    };
    let control = Router::new()
        .route("/_sim/requests", get(list_requests).delete(reset_requests))
        .route("/_sim/requests/count", get(count_requests))
        .route("/_sim/webhooks", get(list_deliveries).delete(reset_deliveries))
        .with_state(recorder.clone());
    let bytebase_app = bytebase::router(emulator.clone())
        .merge(control)
        .layer(axum::middleware::from_fn_with_state(layer(Server::Bytebase), record::layer));
    let servicenow_app = servicenow::router(world.servicenow, clock.clone())
        .layer(axum::middleware::from_fn_with_state(layer(Server::Servicenow), record::layer));

    let (bytebase_listener, bytebase_addr) = bind(options.bind, options.bytebase_port).await?;
    let (servicenow_listener, servicenow_addr) =
        bind(options.bind, options.servicenow_port).await?;
    // Without TCP_NODELAY, small responses wait for the client's delayed ACK (~40 ms each).
    use axum::serve::ListenerExt;
    let nodelay = |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    };
    let bytebase_listener = bytebase_listener.tap_io(nodelay);
    let servicenow_listener = servicenow_listener.tap_io(nodelay);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // A send or the sender's drop both mean stop.
        let _ = rx.changed().await;
    };
    let mut servers = Vec::new();
    let signal = stopped(stop_rx.clone());
    servers.push(tokio::spawn(async move {
        let serve = axum::serve(bytebase_listener, bytebase_app).with_graceful_shutdown(signal);
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the Bytebase emulator stopped");
        }
    }));
    let signal = stopped(stop_rx);
    servers.push(tokio::spawn(async move {
        let serve = axum::serve(servicenow_listener, servicenow_app).with_graceful_shutdown(signal);
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the ServiceNow emulator stopped");
        }
    }));
    emulator.connect_webhooks(outlet, &format!("http://{bytebase_addr}"));
    let ticker = emulator.clone();
    let ticker = Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        loop {
            interval.tick().await;
            ticker.tick();
        }
    }));
    Ok(Running {
        bytebase_url: format!("http://{bytebase_addr}"),
        servicenow_url: format!("http://{servicenow_addr}"),
        clock,
        recorder,
        emulator,
        stop_tx: Some(stop_tx),
        servers,
        ticker,
    })
}

async fn bind(ip: IpAddr, port: u16) -> Result<(tokio::net::TcpListener, SocketAddr), SimError> {
    let addr = SocketAddr::new(ip, port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| SimError::Bind { addr, source })?;
    Ok((listener, local))
}

async fn list_requests(State(recorder): State<Arc<Recorder>>) -> axum::Json<Vec<Exchange>> {
    axum::Json(recorder.snapshot())
}

async fn reset_requests(State(recorder): State<Arc<Recorder>>) -> axum::Json<serde_json::Value> {
    recorder.reset();
    axum::Json(serde_json::json!({}))
}

/// `GET /_sim/webhooks`: the Bytebase emulator's finished webhook posts.
async fn list_deliveries(State(recorder): State<Arc<Recorder>>) -> axum::Json<Vec<Delivery>> {
    axum::Json(recorder.deliveries())
}

async fn reset_deliveries(State(recorder): State<Arc<Recorder>>) -> axum::Json<serde_json::Value> {
    recorder.reset_deliveries();
    axum::Json(serde_json::json!({}))
}

/// `{"total": n, "bytebase": n, "servicenow": n, "byRoute": {"GET /v1/projects": n, …}}`.
async fn count_requests(State(recorder): State<Arc<Recorder>>) -> axum::Json<serde_json::Value> {
    let all = recorder.snapshot();
    let mut by_route = serde_json::Map::new();
    for e in &all {
        let key = format!("{} {}", e.method, e.path);
        let n = by_route.get(&key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        by_route.insert(key, serde_json::Value::from(n + 1));
    }
    let count = |s: Server| all.iter().filter(|e| e.server == s).count();
    axum::Json(serde_json::json!({
        "total": all.len(),
        "bytebase": count(Server::Bytebase),
        "servicenow": count(Server::Servicenow),
        "byRoute": by_route,
    }))
}

/// The emulators on a runtime of their own, for synchronous tests and commands. Derefs to
/// [`Running`]; dropping it stops the servers and the runtime.
#[derive(Debug)]
pub struct BlockingSim {
    running: Running,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::ops::Deref for BlockingSim {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.running
    }
}

impl Drop for BlockingSim {
    fn drop(&mut self) {
        self.running.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// [`start`] on a dedicated two-thread runtime; call it from synchronous code only (not from
/// inside another tokio runtime).
pub fn start_blocking(world: World, options: Options) -> Result<BlockingSim, SimError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cabgate-sim")
        .build()
        .map_err(SimError::Runtime)?;
    let running = runtime.block_on(start(world, options))?;
    Ok(BlockingSim { running, runtime: Some(runtime) })
}
