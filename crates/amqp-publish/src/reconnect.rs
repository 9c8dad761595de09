//! `--reconnect`: when the connection is lost with messages not yet confirmed (node killed or
//! restarted, network cut, missed heartbeats, connection.close from a node shutting down),
//! connect again to any of the addresses and publish every one of them again, in order, then
//! go on with the input. At-least-once: a message the broker had stored but whose confirm was
//! lost with the connection is published twice; none is lost. Exit 0 only once every message
//! is confirmed.
//!
//! The publisher of one connection (`Publisher`) knows nothing of this: it is wrapped in a
//! sink that keeps a copy of each message until the broker confirms it.

use crate::publisher::{Publisher, Stop};
use crate::{close_after_all, why_gone, Messages, Plan, Sink};
use amqp_common::reconnect::{say_lost, say_reconnected, Retry};
use amqp_common::{Addresses, Error, Result, WireSession};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Copies of the messages published on the current connection that the broker has not
/// confirmed yet, in publishing order.
#[derive(Default)]
struct Unconfirmed {
    bodies: VecDeque<Vec<u8>>,
    /// Messages published on this connection before `bodies[0]`, all confirmed.
    settled: u64,
    /// Messages confirmed, on every connection.
    total: u64,
}

impl Unconfirmed {
    /// The broker has confirmed the first `confirmed` messages published on this connection
    /// (confirms are counted in order).
    fn confirmed(&mut self, confirmed: u64) {
        while self.settled < confirmed && self.bodies.pop_front().is_some() {
            self.settled += 1;
            self.total += 1;
        }
    }

    /// For a new connection: the messages to publish again, first.
    fn take(&mut self) -> VecDeque<Vec<u8>> {
        self.settled = 0;
        std::mem::take(&mut self.bodies)
    }
}

/// The connection's publisher, keeping a copy of each message until it is confirmed.
struct Keeping<'k, 'a> {
    publisher: &'k mut Publisher<'a>,
    unconfirmed: &'k mut Unconfirmed,
}

impl Keeping<'_, '_> {
    fn after(&mut self, result: std::result::Result<(), Stop>) -> std::result::Result<(), Stop> {
        if let Err(Stop::ChannelGone) = result {
            // Confirms that arrived before the connection was lost still count: what they
            // confirm is not published again.
            let _ = self.publisher.take_ready_confirms();
        }
        self.unconfirmed.confirmed(self.publisher.confirmed);
        result
    }
}

impl Sink for Keeping<'_, '_> {
    fn publish(&mut self, body: &[u8]) -> std::result::Result<(), Stop> {
        self.unconfirmed.bodies.push_back(body.to_vec());
        let result = self.publisher.publish(body);
        self.after(result)
    }

    fn flush(&mut self) -> std::result::Result<(), Stop> {
        let result = self.publisher.flush();
        self.after(result)
    }
}

/// Publishes as `crate::publish` does, connecting again whenever the connection is lost, for
/// up to `limit` each time.
pub(crate) fn publish(addresses: &Addresses, plan: &Plan, limit: Duration) -> Result<()> {
    let mut messages = Messages::new(plan);
    let mut unconfirmed = Unconfirmed::default();
    // The first connection is made as without --reconnect: a broker that cannot be reached at
    // all is reported at once.
    let (mut session, mut index) = addresses.open_from(0)?;
    // Since when nothing could be published.
    let mut outage: Option<Instant> = None;
    loop {
        let lost = match publish_on(&session, plan, &mut messages, &mut unconfirmed) {
            Ok(Done::All) => {
                return close_after_all(session, plan);
            }
            Ok(Done::Started(Stop::Failed(e))) => {
                let _ = session.close_connection();
                return Err(e);
            }
            Ok(Done::Started(Stop::ChannelGone)) => {
                outage = None;
                match why_gone(session, plan) {
                    e if e.is_connection_loss() => e,
                    e => return Err(e),
                }
            }
            Err(e) if e.is_connection_loss() => {
                session.discard();
                e
            }
            Err(e) => {
                session.abandon();
                return Err(e);
            }
        };
        let since = *outage.get_or_insert_with(Instant::now);
        let again = match unconfirmed.bodies.len() {
            0 => String::new(),
            n => format!("{n} message(s) not confirmed yet will be published again"),
        };
        say_lost(addresses.get(index), &lost, &again);
        let retry = Retry::new(index, since, limit, lost);
        (session, index) = reconnect(addresses, retry).map_err(|e| match e {
            Error::Unreachable(mut lines) => {
                lines.push(format!(
                    "{} message(s) were confirmed, {} were not",
                    unconfirmed.total,
                    unconfirmed.bodies.len()
                ));
                Error::Unreachable(lines)
            }
            other => other,
        })?;
        say_reconnected(addresses.get(index), since);
    }
}

/// How publishing on one connection ended.
enum Done {
    /// Every message published and confirmed (and none returned, with --mandatory).
    All,
    /// Publishing had started and stopped.
    Started(Stop),
}

/// On one connection: publishes again what is not confirmed, then the rest of the messages,
/// and waits for every confirm. Err when the publisher could not even be set up.
fn publish_on(
    session: &WireSession,
    plan: &Plan,
    messages: &mut Messages<'_>,
    unconfirmed: &mut Unconfirmed,
) -> Result<Done> {
    let mut publisher = Publisher::new(session.wire(), plan)?;
    let again = unconfirmed.take();
    let mut sink = Keeping {
        publisher: &mut publisher,
        unconfirmed,
    };
    let outcome = again
        .iter()
        .try_for_each(|body| sink.publish(body))
        .and_then(|()| messages.feed(&mut sink))
        .and_then(|()| {
            let all = sink.publisher.wait_for_all();
            sink.after(all)
        });
    Ok(match outcome {
        Ok(()) => Done::All,
        Err(stop) => Done::Started(stop),
    })
}

/// Tries every address, round after round, until one connects or `retry` gives up.
fn reconnect(addresses: &Addresses, mut retry: Retry) -> Result<(WireSession, usize)> {
    loop {
        let failed = match addresses.open_from(retry.start) {
            Ok(connected) => return Ok(connected),
            Err(e) => retry.failed(e),
        };
        let Some(next) = failed else {
            return Err(retry.give_up());
        };
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfirmed_keeps_what_is_not_confirmed_in_order() {
        let mut u = Unconfirmed::default();
        for b in ["a", "b", "c"] {
            u.bodies.push_back(b.as_bytes().to_vec());
        }
        u.confirmed(2);
        assert_eq!(u.bodies, [b"c".to_vec()]);
        u.confirmed(2);
        assert_eq!(u.bodies.len(), 1);
        let again = u.take();
        assert_eq!(again, [b"c".to_vec()]);
        // On the new connection "c" is published first, then "d": both unconfirmed.
        u.bodies.push_back(b"c".to_vec());
        u.bodies.push_back(b"d".to_vec());
        u.confirmed(1);
        assert_eq!(u.bodies, [b"d".to_vec()]);
    }
}
