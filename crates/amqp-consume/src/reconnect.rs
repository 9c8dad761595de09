//! `--reconnect`: when the connection is lost (node killed or restarted, network cut, missed
//! heartbeats, connection.close from a node shutting down), connect again to any of the
//! addresses, with capped exponential backoff, and go on: declare, bind, qos and consume as
//! first asked. At-least-once: a message whose command was running when the connection died
//! cannot be acknowledged on a new channel (its delivery tag belonged to the old one), so the
//! broker gives it again, marked redelivered. Nothing of a dead connection is joined or closed
//! (`Session::discard`), so it cannot hold the tool.

use crate::runner::{Carry, Failure};
use crate::signals;
use crate::{consume_on, finish, Args, Plan};
use amqp_common::reconnect::{say_lost, say_reconnected, Retry};
use amqp_common::{Address, Addresses, Error, Result, Session};
use crossbeam_channel::{Receiver, Select};
use std::time::{Duration, Instant};

/// Consumes as `crate::run` does, connecting again whenever the connection is lost, for up to
/// `limit` each time.
pub(crate) fn run(
    addresses: &Addresses,
    args: &Args,
    plan: &Plan,
    signal_events: &Receiver<i32>,
    limit: Duration,
) -> Result<()> {
    // The first connection is made as without --reconnect: a broker that cannot be reached at
    // all is reported at once.
    let (mut session, mut index) = addresses.connect_from(0)?;
    let mut carry = Carry::default();
    // Since when no consumer has been running.
    let mut outage: Option<Instant> = None;
    loop {
        carry.consuming = false;
        let outcome = consume_on(
            &mut session,
            args,
            &plan.remaining(carry.done),
            signal_events,
            &mut carry,
        );
        let lost = match outcome {
            Err(Failure::Lost(e)) => e,
            other => return finish(session, other),
        };
        session.discard();
        // A connection lost before its consumer started (during declare) continues the outage
        // of the one before.
        let since = match outage {
            Some(since) if !carry.consuming => since,
            _ => Instant::now(),
        };
        outage = Some(since);
        let requeued = match carry.requeued {
            0 => String::new(),
            n => format!(
                "{n} message(s) whose command was running will come again, marked redelivered \
                 (a delivery cannot be acknowledged on another connection)"
            ),
        };
        say_lost(addresses.get(index), &lost, &requeued);
        let mut children = Children {
            carry: &mut carry,
            plan,
            signal_events,
        };
        if plan.count.is_some_and(|n| children.carry.done >= n) {
            // Every message asked for is done; what is left is to wait for the commands.
            return children.wait_all();
        }
        let retry = Retry::new(index, since, limit, lost);
        (session, index) = children.reconnect(addresses, retry)?;
        carry.awaiting_until = Some(Instant::now() + return_wait(addresses.get(index)));
        say_reconnected(addresses.get(index), since);
    }
}

/// How long the messages a lost connection held may take to come back. A node that died is
/// noticed at once by the others (then a quorum queue elects a new leader, in seconds); a
/// connection cut somewhere between is noticed by the broker only when heartbeats stop, after
/// two intervals; without heartbeats, never, and then a minute is the limit.
fn return_wait(address: &Address) -> Duration {
    match address.endpoint.heartbeat {
        0 => Duration::from_secs(60),
        secs => Duration::from_secs(2 * u64::from(secs) + 5),
    }
}

/// The commands still running while there is no connection, and the signals meanwhile.
struct Children<'a> {
    carry: &'a mut Carry,
    plan: &'a Plan,
    signal_events: &'a Receiver<i32>,
}

impl Children<'_> {
    /// Tries every address, round after round, until one connects or `retry` gives up.
    fn reconnect(&mut self, addresses: &Addresses, mut retry: Retry) -> Result<(Session, usize)> {
        loop {
            // On a thread of its own, so that signals and finished commands are seen meanwhile;
            // past the deadline it is left behind (it ends within --connect-timeout).
            let (tx, rx) = crossbeam_channel::bounded(1);
            let (round, start) = (addresses.clone(), retry.start);
            std::thread::spawn(move || {
                let _ = tx.send(round.connect_from(start));
            });
            let next = match self.wait(&rx, retry.deadline())? {
                Some(Ok(connected)) => return Ok(connected),
                Some(Err(e)) => retry.failed(e),
                None => None,
            };
            let Some(next) = next else {
                return Err(retry.give_up());
            };
            self.wait(&crossbeam_channel::never::<()>(), next)?;
        }
    }

    /// Waits until every command has ended (nothing left to consume for).
    fn wait_all(&mut self) -> Result<()> {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        while !self.carry.children.is_empty() {
            self.wait(&crossbeam_channel::never::<()>(), far)?;
        }
        Ok(())
    }

    /// Waits for `rx` until `until` (None then), reaping commands that end and passing on
    /// SIGTERM / SIGINT. A signal ends the tool as it does while consuming: the commands get
    /// it, are waited for, and the status is 128+signal. So does a failed command whose
    /// message was acknowledged on receipt, under --fail-fast.
    fn wait<T>(&mut self, rx: &Receiver<T>, until: Instant) -> Result<Option<T>> {
        loop {
            let mut sel = Select::new();
            let rx_index = sel.recv(rx);
            sel.recv(self.signal_events);
            let Ok(op) = sel.select_deadline(until) else {
                return Ok(None);
            };
            if op.index() == rx_index {
                return Ok(op.recv(rx).ok());
            }
            let Ok(sig) = op.recv(self.signal_events) else {
                continue;
            };
            if sig == libc::SIGCHLD {
                if let Some(status) = self.reap() {
                    return Err(self.stop(status));
                }
            } else {
                for &pid in self.carry.children.keys() {
                    signals::forward(pid, sig);
                }
                return Err(self.stop(amqp_common::error::signal_status(sig)));
            }
        }
    }

    /// Forgets the commands that ended; Some(status) for a failure that --fail-fast stops at.
    fn reap(&mut self) -> Option<i32> {
        let mut stop = None;
        for (pid, kind) in signals::reap() {
            let Some(orphan) = self.carry.children.remove(&pid) else {
                continue;
            };
            if !orphan && self.plan.fail_fast && !kind.success() {
                stop.get_or_insert(kind.shell_status());
            }
        }
        stop
    }

    /// Waits for every command, then ends the tool with `status`.
    fn stop(&mut self, status: i32) -> Error {
        while !self.carry.children.is_empty() {
            match self.signal_events.recv() {
                Ok(libc::SIGCHLD) => {
                    self.reap();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Error::Status(status)
    }
}
