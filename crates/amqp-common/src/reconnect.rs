//! What `--reconnect` is the same for in amqp-consume and amqp-publish: its options, and the
//! rounds of attempts after a lost connection (every address, starting after the lost one,
//! with capped exponential backoff between rounds, until --reconnect-timeout has passed).

use crate::addresses::Address;
use crate::cli::program_name;
use crate::error::{Error, Result};
use crate::options::parse_seconds;
use clap::Args;
use std::time::{Duration, Instant};

/// How long a lost connection may take to come back before the tool gives up (exit 1), unless
/// --reconnect-timeout says otherwise: a rolling restart of a cluster fits well within it, a
/// broker gone for longer is for the caller (a Deployment restarting the pod) to deal with.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The pause after the first round of attempts fails, doubled after each further round up to
/// `MAX_BACKOFF`. The first round starts at once: when a node dies, the others are usually
/// there.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The --reconnect options, flattened into the tools that have them.
#[derive(Args, Debug, Clone, Default)]
pub struct ReconnectArgs {
    /// Survive a lost connection (node killed or restarted, network cut, missed heartbeats):
    /// connect again to any of the --url addresses and go on. At-least-once: what was under
    /// way when the connection was lost is done again (see the tool's description)
    #[arg(long)]
    pub reconnect: bool,

    /// With --reconnect: exit 1 if no connection could be made again within SECS of losing one
    /// (default 300)
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub reconnect_timeout: Option<Duration>,
}

impl ReconnectArgs {
    /// The time allowed to reconnect, or None without --reconnect; --reconnect-timeout alone
    /// is an error.
    pub fn limit(&self) -> Result<Option<Duration>> {
        match (self.reconnect, self.reconnect_timeout) {
            (false, Some(_)) => Err(Error::usage("--reconnect-timeout needs --reconnect")),
            (false, None) => Ok(None),
            (true, limit) => Ok(Some(limit.unwrap_or(DEFAULT_TIMEOUT))),
        }
    }
}

/// The attempts after a lost connection.
pub struct Retry {
    /// The address to start each round at: the one after the address lost.
    pub start: usize,
    deadline: Instant,
    limit: Duration,
    backoff: Duration,
    last: Error,
}

impl Retry {
    /// Attempts for a connection to address `lost_index`, lost with `lost`, without a consumer
    /// or publisher at work since `since`.
    pub fn new(lost_index: usize, since: Instant, limit: Duration, lost: Error) -> Retry {
        Retry {
            start: lost_index + 1,
            deadline: since + limit,
            limit,
            backoff: FIRST_BACKOFF,
            last: lost,
        }
    }

    /// When the tool gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A round failed with `e`: when to start the next one, or None when that would be past
    /// the deadline (then `give_up`).
    pub fn failed(&mut self, e: Error) -> Option<Instant> {
        self.last = e;
        let next = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        (next < self.deadline).then_some(next)
    }

    /// The error to end with: why the tool stopped trying, then why each address failed last.
    pub fn give_up(self) -> Error {
        let mut lines = vec![format!(
            "the connection was lost and could not be made again within {} s (see \
             --reconnect-timeout)",
            self.limit.as_secs_f64()
        )];
        match self.last {
            Error::Unreachable(why) => lines.extend(why),
            other => lines.push(other.to_string()),
        }
        Error::Unreachable(lines)
    }
}

/// Says on stderr that the connection to `address` was lost and why, and that the tool is
/// reconnecting; `more` (if not empty) follows, after "; ".
pub fn say_lost(address: &Address, lost: &Error, more: &str) {
    let mut line = format!(
        "{}: connection to {} lost ({}); reconnecting",
        program_name(),
        address.shown,
        lost.to_string().replace(['\n', '\r'], " ")
    );
    if !more.is_empty() {
        line.push_str("; ");
        line.push_str(more);
    }
    eprintln!("{line}");
}

/// Says on stderr that the tool is connected again, to `address`, `since` the loss.
pub fn say_reconnected(address: &Address, since: Instant) {
    eprintln!(
        "{}: reconnected to {} after {:.1} s",
        program_name(),
        address.shown,
        since.elapsed().as_secs_f64()
    );
}
