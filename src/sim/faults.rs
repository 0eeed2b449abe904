//! Seeded fault injection for both emulators.
//!
//! A client is only as good as its behaviour when the server misbehaves, so every request can be
//! delayed, refused with a 5xx or a 429 carrying `Retry-After`, cut off before the handler runs
//! (a reset), or cut off after the handler applied its write (a lost response, the case that
//! makes idempotency matter). The decision for a request depends only on the seed, the server
//! and the request's position in that server's arrival order, so a failing run replays with the
//! same seed.

use std::str::FromStr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which emulator a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// The Bytebase v1 emulator.
    Bytebase,
    /// The ServiceNow Table API emulator.
    Servicenow,
}

/// Which faults to inject, with what probability, and on which requests.
///
/// The text form, for `--faults`, is a comma-separated list of `key=value`:
/// `5xx=0.05,429=0.02,reset=0.01,lost=0.01,latency=20ms,path=/v1/projects*,method=POST,first=100,
/// server=bytebase`. Probabilities are per request and checked in the order 5xx, 500, 429, reset,
/// lost; `latency` adds a uniform random delay up to that duration to every eligible request.
/// `5xx` answers 503 (a server that is briefly away), `500` answers 500 (a server that fails).
///
/// Two keys act on the Bytebase emulator's webhook posts instead of requests:
/// `dup-webhook=P` posts the same body twice, `drop-webhook=P` never posts it (checked in that
/// order, per queued post, seeded by the post's queueing number). `path`, `method`, `first` and
/// `server` do not apply to them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// Probability of a 5xx (503 Unavailable) instead of the handler.
    pub error_5xx: f64,
    /// Probability of a 500 (Internal) instead of the handler.
    pub error_500: f64,
    /// Probability of a 429 with `Retry-After` instead of the handler.
    pub too_many: f64,
    /// Probability of closing the connection before the handler runs.
    pub reset: f64,
    /// Probability of running the handler, then closing the connection without the response.
    pub lost: f64,
    /// Upper bound of a random extra delay per request.
    pub latency: Duration,
    /// `Retry-After` seconds sent with a 429.
    pub retry_after_secs: u64,
    /// Only paths matching one of these globs (`*` = any run of characters) are eligible;
    /// empty = every path. Control endpoints (`/_sim/…`) are never eligible.
    pub paths: Vec<String>,
    /// Only these methods are eligible (upper case); empty = every method.
    pub methods: Vec<String>,
    /// Only the first N eligible requests of each server may fault; `None` = no limit.
    pub first: Option<u64>,
    /// Only this server; `None` = both.
    pub server: Option<Server>,
    /// Probability that a webhook post is sent twice.
    pub dup_webhook: f64,
    /// Probability that a webhook post is never sent.
    pub drop_webhook: f64,
}

/// What happens to one webhook post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFault {
    /// The same body is posted twice, one copy after the other.
    Duplicate,
    /// Nothing is posted.
    Drop,
}

impl WebhookFault {
    /// The short name used in recordings and in `--faults`.
    pub fn name(self) -> &'static str {
        match self {
            WebhookFault::Duplicate => "dup-webhook",
            WebhookFault::Drop => "drop-webhook",
        }
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A 503 with an error body; the handler does not run.
    Unavailable,
    /// A 500 with an error body; the handler does not run.
    Internal,
    /// A 429 with `Retry-After`; the handler does not run.
    TooManyRequests,
    /// The connection is closed before the handler runs.
    Reset,
    /// The handler runs, then the connection is closed before the response is complete.
    Lost,
}

impl Fault {
    /// The short name used in recordings and in `--faults`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Unavailable => "5xx",
            Fault::Internal => "500",
            Fault::TooManyRequests => "429",
            Fault::Reset => "reset",
            Fault::Lost => "lost",
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Extra delay before anything else happens.
    pub delay: Duration,
    /// The fault, if any.
    pub fault: Option<Fault>,
}

/// A `--faults` string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault spec `{item}`: {reason}")]
pub struct FaultSpecError {
    /// The offending `key=value` item.
    pub item: String,
    /// Why it is wrong.
    pub reason: String,
}

impl FaultSpec {
    /// No faults at all.
    pub fn none() -> Self {
        FaultSpec::default()
    }

    /// Whether this spec can inject anything.
    pub fn is_active(&self) -> bool {
        self.error_5xx > 0.0
            || self.error_500 > 0.0
            || self.too_many > 0.0
            || self.reset > 0.0
            || self.lost > 0.0
            || !self.latency.is_zero()
    }

    /// Whether a request is eligible, before the `first` limit.
    pub fn matches(&self, server: Server, method: &str, path: &str) -> bool {
        if path.starts_with("/_sim/") || path == "/_sim" {
            return false;
        }
        if self.server.is_some_and(|s| s != server) {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        self.paths.is_empty() || self.paths.iter().any(|glob| glob_match(glob, path))
    }

    /// The fault for the `index`-th webhook post (0-based) the Bytebase emulator queued.
    ///
    /// Pure, and independent of the request decisions: adding webhook keys to a spec does not
    /// change which requests fault.
    pub fn decide_webhook(&self, seed: u64, index: u64) -> Option<WebhookFault> {
        if self.dup_webhook <= 0.0 && self.drop_webhook <= 0.0 {
            return None;
        }
        let salt = 0x7765_6268_6f6f_6b73;
        let mut rng =
            SmallRng::seed_from_u64(seed ^ salt ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let roll: f64 = rng.random();
        if roll < self.dup_webhook {
            Some(WebhookFault::Duplicate)
        } else if roll < self.dup_webhook + self.drop_webhook {
            Some(WebhookFault::Drop)
        } else {
            None
        }
    }

    /// The decision for the `index`-th eligible request (0-based) of `server`.
    ///
    /// Pure: the same seed, server and index always give the same decision.
    pub fn decide(&self, seed: u64, server: Server, index: u64) -> Decision {
        if !self.is_active() || self.first.is_some_and(|n| index >= n) {
            return Decision::default();
        }
        let server_salt = match server {
            Server::Bytebase => 0x6279_7465_6261_7365,
            Server::Servicenow => 0x736e_6f77_0000_0001,
        };
        let mut rng =
            SmallRng::seed_from_u64(seed ^ server_salt ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let delay = if self.latency.is_zero() {
            Duration::ZERO
        } else {
            let max = u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(rng.random_range(0..=max))
        };
        let roll: f64 = rng.random();
        let mut edge = 0.0;
        let mut fault = None;
        for (p, f) in [
            (self.error_5xx, Fault::Unavailable),
            (self.error_500, Fault::Internal),
            (self.too_many, Fault::TooManyRequests),
            (self.reset, Fault::Reset),
            (self.lost, Fault::Lost),
        ] {
            edge += p;
            if roll < edge {
                fault = Some(f);
                break;
            }
        }
        Decision { delay, fault }
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec { retry_after_secs: 1, ..FaultSpec::default() };
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let err = |reason: &str| FaultSpecError { item: item.into(), reason: reason.into() };
            let (key, value) = item.split_once('=').ok_or_else(|| err("expected key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            let probability = || -> Result<f64, FaultSpecError> {
                let p: f64 = value.parse().map_err(|_| err("expected a probability"))?;
                if (0.0..=1.0).contains(&p) { Ok(p) } else { Err(err("must be within 0..=1")) }
            };
            match key {
                "5xx" => spec.error_5xx = probability()?,
                "500" => spec.error_500 = probability()?,
                "429" => spec.too_many = probability()?,
                "reset" => spec.reset = probability()?,
                "lost" => spec.lost = probability()?,
                "dup-webhook" => spec.dup_webhook = probability()?,
                "drop-webhook" => spec.drop_webhook = probability()?,
                "latency" => {
                    spec.latency = humantime::parse_duration(value)
                        .map_err(|_| err("expected a duration such as 20ms"))?;
                }
                "retry-after" => {
                    spec.retry_after_secs =
                        value.parse().map_err(|_| err("expected whole seconds"))?;
                }
                "path" => spec.paths.extend(value.split('|').map(str::to_owned)),
                "method" => {
                    spec.methods.extend(value.split('|').map(|m| m.to_ascii_uppercase()));
                }
                "first" => spec.first = Some(value.parse().map_err(|_| err("expected a count"))?),
                "server" => {
                    spec.server = Some(match value {
                        "bytebase" => Server::Bytebase,
                        "servicenow" => Server::Servicenow,
                        _ => return Err(err("expected bytebase or servicenow")),
                    });
                }
                _ => return Err(err("unknown key")),
            }
        }
        let total = spec.error_5xx + spec.error_500 + spec.too_many + spec.reset + spec.lost;
        if total > 1.0 {
            return Err(FaultSpecError {
                item: text.into(),
                reason: "probabilities add up to more than 1".into(),
            });
        }
        if spec.dup_webhook + spec.drop_webhook > 1.0 {
            return Err(FaultSpecError {
                item: text.into(),
                reason: "webhook probabilities add up to more than 1".into(),
            });
        }
        Ok(spec)
    }
}

/// `*` matches any run of characters (including `/`); everything else literally.
fn glob_match(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_short_form() {
        let spec: FaultSpec =
            "5xx=0.05,429=0.02,reset=0.01,lost=0.01,latency=20ms,path=/v1/projects*,first=10"
                .parse()
                .unwrap();
        assert_eq!(spec.error_5xx, 0.05);
        assert_eq!(spec.latency, Duration::from_millis(20));
        assert_eq!(spec.first, Some(10));
        assert!(spec.matches(Server::Bytebase, "GET", "/v1/projects/p1"));
        assert!(!spec.matches(Server::Bytebase, "GET", "/v1/roles"));
        assert!(!spec.matches(Server::Bytebase, "GET", "/_sim/requests"));
    }

    #[test]
    fn a_500_is_its_own_fault_beside_the_503() {
        let spec: FaultSpec = "500=1,path=/v1/roles".parse().unwrap();
        assert_eq!(spec.error_500, 1.0);
        assert_eq!(spec.error_5xx, 0.0);
        assert_eq!(spec.decide(0, Server::Bytebase, 0).fault, Some(Fault::Internal));
        assert_eq!(Fault::Internal.name(), "500");
        assert!("500=0.6,5xx=0.6".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn rejects_bad_items() {
        assert!("5xx=2".parse::<FaultSpec>().is_err());
        assert!("bogus=1".parse::<FaultSpec>().is_err());
        assert!("5xx".parse::<FaultSpec>().is_err());
        assert!("5xx=0.6,429=0.6".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn decisions_replay_for_a_seed() {
        let spec: FaultSpec = "5xx=0.3,reset=0.2,latency=5ms".parse().unwrap();
        let run =
            |seed| (0..200).map(|i| spec.decide(seed, Server::Bytebase, i)).collect::<Vec<_>>();
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let faults = run(7).iter().filter(|d| d.fault.is_some()).count();
        assert!((60..=140).contains(&faults), "{faults} faults of 200");
    }

    #[test]
    fn first_limits_the_faulty_requests() {
        let spec: FaultSpec = "5xx=1,first=3".parse().unwrap();
        let faults: Vec<_> = (0..5).map(|i| spec.decide(1, Server::Bytebase, i).fault).collect();
        assert_eq!(
            faults,
            [Some(Fault::Unavailable); 3].into_iter().chain([None, None]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn webhook_faults_replay_for_a_seed_and_leave_requests_alone() {
        let spec: FaultSpec = "dup-webhook=0.5,drop-webhook=0.2".parse().unwrap();
        let run = |seed| (0..200).map(|i| spec.decide_webhook(seed, i)).collect::<Vec<_>>();
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let dups = run(3).iter().filter(|f| **f == Some(WebhookFault::Duplicate)).count();
        assert!((70..=130).contains(&dups), "{dups} duplicates of 200");
        assert!(!spec.is_active(), "no request fault");
        let always: FaultSpec = "dup-webhook=1".parse().unwrap();
        assert!((0..20).all(|i| always.decide_webhook(9, i) == Some(WebhookFault::Duplicate)));
        assert!("dup-webhook=0.7,drop-webhook=0.7".parse::<FaultSpec>().is_err());
        assert_eq!(FaultSpec::none().decide_webhook(1, 0), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("/v1/*:approve", "/v1/projects/p/issues/1:approve"));
        assert!(!glob_match("/v1/*:approve", "/v1/projects/p/issues/1:reject"));
        assert!(glob_match("*", "/x"));
    }
}
