//! `--reconnect`: when the connection is lost (node killed or restarted, network cut, missed
//! heartbeats, connection.close from a node shutting down), connect again to any of the
//! addresses, with capped exponential backoff, and go on: declare, bind, qos and consume as
//! first asked. At-least-once: a message whose command was running when the connection died
//! cannot be acknowledged on a new channel (its delivery tag belonged to the old one), so the
//! broker gives it again, marked redelivered. Nothing of a dead connection is joined or closed
//! (`Session::discard`), so it cannot hold the tool.

use crate::runner::{Carry, Failure};
use crate::signals::{self, ExitKind};
use crate::{consume_on, finish, Args, Plan};
use amqp_common::{cli::program_name, Address, Addresses, Error, Result, Session};
use crossbeam_channel::{Receiver, Select};
use std::time::{Duration, Instant};

/// How long a lost connection may take to come back before the tool gives up (exit 1), unless
/// --reconnect-timeout says otherwise: a rolling restart of a cluster fits well within it, a
/// broker gone for longer is for the caller (a Deployment restarting the pod) to deal with.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The pause after the first round of attempts on every address fails, doubled after each
/// further round up to `MAX_BACKOFF`. The first round starts at once: when a node dies, the
/// others are usually there.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Consumes as `crate::run` does, connecting again whenever the connection is lost.
pub(crate) fn run(
    addresses: &Addresses,
    args: &Args,
    plan: &Plan,
    signal_events: &Receiver<i32>,
) -> Result<()> {
    let limit = args.reconnect_timeout.unwrap_or(DEFAULT_TIMEOUT);
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
        announce_loss(addresses.get(index), &lost, carry.requeued);
        let mut children = Children {
            carry: &mut carry,
            plan,
            signal_events,
        };
        if plan.count.is_some_and(|n| children.carry.done >= n) {
            // Every message asked for is done; what is left is to wait for the commands.
            return children.wait_all();
        }
        (session, index) = children.reconnect(addresses, index + 1, since, limit, lost)?;
        carry.awaiting_until = Some(Instant::now() + return_wait(addresses.get(index)));
        eprintln!(
            "{}: reconnected to {} after {:.1} s",
            program_name(),
            addresses.get(index).shown,
            since.elapsed().as_secs_f64()
        );
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

fn announce_loss(address: &Address, lost: &Error, requeued: u64) {
    let mut line = format!(
        "{}: connection to {} lost ({}); reconnecting",
        program_name(),
        address.shown,
        lost.to_string().replace(['\n', '\r'], " ")
    );
    if requeued > 0 {
        line.push_str(&format!(
            "; {requeued} message(s) whose command was running will come again, marked \
             redelivered (a delivery cannot be acknowledged on another connection)"
        ));
    }
    eprintln!("{line}");
}

/// The commands still running while there is no connection, and the signals meanwhile.
struct Children<'a> {
    carry: &'a mut Carry,
    plan: &'a Plan,
    signal_events: &'a Receiver<i32>,
}

impl Children<'_> {
    /// Tries every address (starting at `start`), round after round with backoff, until one
    /// connects or `limit` has passed since `since`.
    fn reconnect(
        &mut self,
        addresses: &Addresses,
        start: usize,
        since: Instant,
        limit: Duration,
        mut last: Error,
    ) -> Result<(Session, usize)> {
        let deadline = since + limit;
        let mut backoff = FIRST_BACKOFF;
        loop {
            // On a thread of its own, so that signals and finished commands are seen meanwhile;
            // past the deadline it is left behind (it ends within --connect-timeout).
            let (tx, rx) = crossbeam_channel::bounded(1);
            let round = addresses.clone();
            std::thread::spawn(move || {
                let _ = tx.send(round.connect_from(start));
            });
            match self.wait(&rx, deadline)? {
                Some(Ok(connected)) => return Ok(connected),
                Some(Err(e)) => last = e,
                None => return Err(give_up(limit, last)),
            }
            let next = Instant::now() + backoff;
            if next >= deadline {
                return Err(give_up(limit, last));
            }
            self.wait(&crossbeam_channel::never::<()>(), next)?;
            backoff = (backoff * 2).min(MAX_BACKOFF);
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
                return Err(self.stop(128 + sig));
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
            if !orphan && self.plan.fail_fast && kind != ExitKind::Code(0) {
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

/// The error after the last attempt: why the tool stopped trying, then why each address failed.
fn give_up(limit: Duration, last: Error) -> Error {
    let mut lines = vec![format!(
        "the connection was lost and could not be made again within {} s (see \
         --reconnect-timeout)",
        limit.as_secs_f64()
    )];
    match last {
        Error::Unreachable(why) => lines.extend(why),
        other => lines.push(other.to_string()),
    }
    Error::Unreachable(lines)
}
