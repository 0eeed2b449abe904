//! `cabgate sim`: serves the Bytebase and ServiceNow emulators until SIGINT or SIGTERM, so a user
//! can try a spec (or curl the APIs) without accounts. The first stdout line is
//! `{"bytebase":"http://…","servicenow":"http://…"}`, for scripts to read.

use std::net::IpAddr;
use std::path::PathBuf;

use miette::{IntoDiagnostic, WrapErr};

use crate::cli::{Failure, Outcome, print_stdout};
use crate::finding::Exit;
use crate::sim::{self, FaultSpec, Options, World};

/// Options of `cabgate sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// World file (YAML or JSON) describing both systems; see fixtures/worlds/basic.yaml.
    #[arg(long, value_name = "FILE")]
    pub world: PathBuf,

    /// Seed of the fault schedule: the same seed and request order give the same faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Faults to inject, e.g. `5xx=0.05,500=0.01,429=0.02,reset=0.01,lost=0.01,latency=20ms`
    /// (also `path=GLOB`, `method=POST`, `first=N`, `server=bytebase|servicenow`, and for the
    /// Bytebase webhook posts `dup-webhook=P` (posted twice) and `drop-webhook=P` (never posted)).
    #[arg(long, value_name = "SPEC", default_value = "")]
    pub faults: String,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Port of the Bytebase emulator (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub bytebase_port: u16,

    /// Port of the ServiceNow emulator (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub servicenow_port: u16,

    /// Where Bytebase TEAMS webhook posts go, standing in for the Power Automate flow, e.g. the
    /// runner's `http://127.0.0.1:8080/webhook?secret=…` (overrides the world's `webhookRelay`).
    /// Without one, posts are only recorded (`GET /_sim/webhooks` on the Bytebase emulator).
    #[arg(long, value_name = "URL")]
    pub webhook_relay: Option<String>,
}

/// Runs `cabgate sim`.
pub fn run(args: Args) -> Outcome {
    let faults: FaultSpec = args.faults.parse().map_err(Failure::invalid_error)?;
    let world = World::load(&args.world).map_err(Failure::invalid_error)?;
    let options = Options {
        seed: args.seed,
        faults,
        bind: args.bind,
        bytebase_port: args.bytebase_port,
        servicenow_port: args.servicenow_port,
        webhook_relay: args.webhook_relay,
        ..Options::default()
    };
    let runtime = crate::cli::runtime()?;
    runtime.block_on(async move {
        let running = sim::start(world, options).await.map_err(Failure::runtime_error)?;
        let line = serde_json::json!({
            "bytebase": running.bytebase_url(),
            "servicenow": running.servicenow_url(),
        });
        print_stdout(&format!("{line}\n"))
            .into_diagnostic()
            .wrap_err("cannot write to stdout")
            .map_err(Failure::runtime)?;
        tracing::info!(
            bytebase = running.bytebase_url(),
            servicenow = running.servicenow_url(),
            "emulators up"
        );
        crate::cli::shutdown_signal().await;
        running.shutdown().await;
        Ok(Exit::Ok)
    })
}

impl Failure {
    /// An invalid input (exit 2) from any std error.
    fn invalid_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Failure::invalid(miette::Report::msg(error.to_string()))
    }

    /// A runtime failure (exit 3) from any std error.
    fn runtime_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Failure::runtime(miette::Report::msg(error.to_string()))
    }
}
