//! Several brokers for one tool (the nodes of a cluster): `-u/--url` given more than once, or
//! several URLs in AMQP_URL. They are tried in the order given, each under --connect-timeout,
//! and the first that completes the AMQP handshake is used. With one address everything is
//! exactly as `Endpoint::connect` does it, errors included.

use crate::connect::{Session, WireSession};
use crate::error::{Error, Result};
use crate::options::Endpoint;

/// One broker address: where to connect, and how to name it in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub endpoint: Endpoint,
    /// The URL as given with its password masked, or `host:port` when the address did not
    /// come from a URL.
    pub shown: String,
}

/// The addresses, in the order given; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    list: Vec<Address>,
}

impl Addresses {
    /// Panics on an empty list: the options always give at least the default address.
    pub fn new(list: Vec<Address>) -> Addresses {
        assert!(!list.is_empty(), "an address list is never empty");
        Addresses { list }
    }

    pub fn get(&self, index: usize) -> &Address {
        &self.list[index % self.list.len()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Address> {
        self.list.iter()
    }

    /// Connects to the first address that answers, trying them in order.
    pub fn connect(&self) -> Result<Session> {
        self.connect_from(0).map(|(session, _)| session)
    }

    /// Tries every address once, starting at `start` and wrapping around (a reconnect starts
    /// after the address it lost); returns the session and the index of the address used.
    /// When all fail: the one address's own error, or one line per address.
    pub fn connect_from(&self, start: usize) -> Result<(Session, usize)> {
        self.first_that(start, Endpoint::connect)
    }

    /// `connect`, for a tool that speaks on channel 1 through the wire (`Endpoint::open`).
    pub fn open(&self) -> Result<WireSession> {
        self.open_from(0).map(|(session, _)| session)
    }

    /// `connect_from`, for a tool that speaks on channel 1 through the wire.
    pub fn open_from(&self, start: usize) -> Result<(WireSession, usize)> {
        self.first_that(start, Endpoint::open)
    }

    fn first_that<S>(
        &self,
        start: usize,
        connect: impl Fn(&Endpoint) -> Result<S>,
    ) -> Result<(S, usize)> {
        let n = self.list.len();
        let mut failures = Vec::new();
        for i in (0..n).map(|k| (start + k) % n) {
            let address = &self.list[i];
            match connect(&address.endpoint) {
                Ok(session) => return Ok((session, i)),
                // A local problem (an unreadable --cacert) is the same for every address.
                Err(e @ (Error::Config(_) | Error::Usage(_))) => return Err(e),
                Err(e) if n == 1 => return Err(e),
                Err(e) => failures.push(failure_line(&address.shown, &e)),
            }
        }
        Err(Error::Unreachable(failures))
    }
}

/// "cannot connect to ADDRESS: why", for one address of several.
fn failure_line(shown: &str, e: &Error) -> String {
    match e {
        Error::Connect { reason, .. } => format!("cannot connect to {shown}: {reason}"),
        other => format!("cannot connect to {shown}: {other}"),
    }
}
