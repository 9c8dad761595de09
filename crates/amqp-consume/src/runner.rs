//! The delivery loop: one event loop over deliveries, signals (SIGCHLD included) and timers, so
//! that a command running does not stop the tool from noticing a signal, a lost connection or a
//! cancelled consumer. amiquip's I/O thread keeps heartbeats going meanwhile.

use crate::signals::{self, ExitKind};
use crate::{env, OnFailure, Plan};
use amiquip::{
    Channel, ConnectionBlockedNotification, Consumer, ConsumerMessage, ConsumerOptions, Delivery,
};
use amqp_common::wire::frames::basic_ack;
use amqp_common::wire::WireControl;
use amqp_common::Error;
use crossbeam_channel::{Receiver, RecvError, Select};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long without a delivery before --exit-when-empty asks the broker whether the queue is
/// empty.
const EMPTY_POLL: Duration = Duration::from_millis(200);

/// SIGCHLD is the normal wake-up for a finished command; this is only a safety net.
const REAP_FALLBACK: Duration = Duration::from_secs(1);

/// Why the loop failed.
pub enum Failure {
    /// The connection or channel is unusable: drop it without the closing handshake.
    Fatal(Error),
    /// A local failure (the command cannot be started): close cleanly, then report it.
    AfterClose(Error),
    /// The connection was lost while consuming went on (not while stopping for a signal,
    /// --fail-fast or a command that cannot start): drop it; `Carry` holds what a new
    /// connection goes on with.
    Lost(Error),
}

type Step<T = ()> = Result<T, Failure>;

/// A failed operation: `Lost` when the connection is gone, else `Fatal`.
fn fatal(context: impl Into<String>, e: amiquip::Error) -> Failure {
    failure(Error::amqp(context, e))
}

pub fn failure(e: Error) -> Failure {
    if e.is_connection_loss() {
        Failure::Lost(e)
    } else {
        Failure::Fatal(e)
    }
}

/// What outlives a connection, for --reconnect. Without it the loop starts from the default.
#[derive(Debug, Default)]
pub struct Carry {
    /// Commands still running from earlier connections, by pid: true when their message went
    /// back to the broker with the connection (it comes again, marked redelivered, so their
    /// result is ignored), false when it was acknowledged on receipt (-A). They keep their job
    /// slot and get the signals passed on.
    pub children: HashMap<i32, bool>,
    /// Messages done, counted against --count, on earlier connections.
    pub done: u64,
    /// Messages of running commands that went back to the broker with the last connection.
    pub requeued: u64,
    /// Time already spent without a delivery, for --idle-timeout (the clock stops while there
    /// is no connection).
    pub idle: Duration,
    /// The consumer was started on this connection.
    pub consuming: bool,
    /// Messages the lost connections held (received, not settled): the broker gives them again
    /// once it has noticed the loss, which for a quorum queue waits for a new leader. Until
    /// that many redelivered messages have come, or `awaiting_until`, neither an empty queue
    /// (--exit-when-empty) nor a quiet one (--idle-timeout) ends the tool: they are not done.
    pub awaiting: u64,
    pub awaiting_until: Option<Instant>,
}

/// Runs the consumer until the plan says to stop; returns the exit status. `carry` comes from
/// the connection before (--reconnect), and is filled for the next one when this one is lost.
pub fn run(
    channel: &Channel,
    wire: &WireControl,
    queue: &str,
    plan: &Plan,
    signal_events: &Receiver<i32>,
    alive: &Receiver<ConnectionBlockedNotification>,
    carry: &mut Carry,
) -> Step<i32> {
    let consume_context = || format!("cannot consume from queue '{queue}'");
    if plan.count == Some(0) {
        // Nothing will be processed, so nothing is taken off the queue (the C tool consumes and
        // gives the prefetched messages back marked redelivered); the queue must still exist.
        channel
            .queue_declare_passive(queue)
            .map_err(|e| fatal(consume_context(), e))?;
        return Ok(0);
    }
    if plan.prefetch > 0 {
        channel
            .qos(0, plan.prefetch, false)
            .map_err(|e| fatal("cannot set the prefetch count", e))?;
    }
    let mut channel_limit = None;
    if let Some(n) = plan.count {
        if n > 65535 && plan.prefetch == 0 {
            // Without a limit the broker would push more than --count messages. Per consumer:
            // a quorum queue refuses to be consumed under a channel-wide limit (540).
            channel
                .qos(0, u16::MAX, false)
                .map_err(|e| fatal("cannot set the prefetch count", e))?;
            channel_limit = Some(u16::MAX);
        }
    }
    signals::arm();
    let consumer = channel
        .basic_consume(
            queue,
            ConsumerOptions {
                no_ack: plan.no_ack_wire,
                ..ConsumerOptions::default()
            },
        )
        .map_err(|e| fatal(consume_context(), e))?;
    carry.consuming = true;
    let deliveries = consumer.receiver().clone();
    let now = Instant::now();
    let running = carry
        .children
        .drain()
        .map(|(pid, orphan)| {
            let job = Job {
                delivery: None,
                orphan,
            };
            (pid, job)
        })
        .collect();
    let mut runner = Runner {
        channel,
        wire,
        consumer,
        queue,
        plan,
        accepting: true,
        draining: true,
        rx_done: false,
        arrived: 0,
        cancel_due: false,
        received: 0,
        settled: 0,
        channel_limit,
        running,
        pending: VecDeque::new(),
        exit: None,
        idle_since: now.checked_sub(carry.idle).unwrap_or(now),
        empty_check_at: now,
        awaiting: carry.awaiting,
        awaiting_until: carry.awaiting_until,
    };
    let result = runner.run(&deliveries, signal_events, alive);
    match result {
        Err(Failure::Lost(e)) if runner.exit.is_some() => {
            // Stopping anyway (signal, --fail-fast): nothing to reconnect for.
            Err(Failure::Fatal(e))
        }
        Err(Failure::Lost(e)) => {
            // Received by amiquip but not yet by the loop: held by the broker for us too.
            let unread = deliveries
                .try_iter()
                .filter(|m| matches!(m, ConsumerMessage::Delivery(_)))
                .count();
            runner.hand_over(carry, unread as u64);
            Err(Failure::Lost(e))
        }
        other => other,
    }
}

/// A command that is running, with the message it is working on (`None` when that message was
/// acknowledged on receipt, or went with a lost connection).
struct Job {
    delivery: Option<Delivery>,
    /// Started on a connection since lost, with a message that the broker gives again: its
    /// result is not acted on.
    orphan: bool,
}

enum Exit {
    Status(i32),
    Error(Error),
}

enum Stop {
    /// --count reached, queue empty, idle: finish the messages already received.
    Done,
    Signal(i32),
    FailFast(i32),
    Error(Error),
}

// One value per loop turn, moved at once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Event {
    Consumer(Result<ConsumerMessage, RecvError>),
    Signal(i32),
    Timer,
}

struct Runner<'a> {
    channel: &'a Channel,
    /// For the acks, written at once rather than queued for amiquip's I/O thread (a thread
    /// hand-off per message fewer).
    wire: &'a WireControl,
    consumer: Consumer<'a>,
    queue: &'a str,
    plan: &'a Plan,
    /// The consumer is not cancelled.
    accepting: bool,
    /// After the cancel, messages already received are still processed (else they are left
    /// unacknowledged).
    draining: bool,
    /// The broker confirmed the cancel (or the connection is gone): no more deliveries.
    rx_done: bool,
    /// Deliveries that arrived while the consumer was on, started or waiting for a job slot.
    arrived: u64,
    /// --count messages have arrived and the prefetch limit is full, so the broker sends no
    /// more until a settle: the consumer is cancelled just before the next one (or once
    /// nothing runs), not before. Until then a quorum queue on a node that dies gives our
    /// messages back at once; those of a cancelled consumer wait for that node (RabbitMQ 3.10).
    cancel_due: bool,
    /// Deliveries taken up (started, or dropped once stopping).
    received: u64,
    settled: u64,
    /// The prefetch limit the loop set beyond the plan's, if any: per consumer at the start
    /// (a --count above 65535), channel-wide (basic.qos global) once `settle` lowers it.
    channel_limit: Option<u16>,
    running: HashMap<i32, Job>,
    /// Deliveries received while every job slot was busy, started in order as slots free up.
    /// The consumer channel is read even then, so that a lost connection is noticed while
    /// commands run (the broker's prefetch limit bounds how many wait here).
    pending: VecDeque<Delivery>,
    exit: Option<Exit>,
    idle_since: Instant,
    empty_check_at: Instant,
    /// See `Carry::awaiting`.
    awaiting: u64,
    awaiting_until: Option<Instant>,
}

impl Runner<'_> {
    /// The connection is lost: what the next one goes on with. `unread` deliveries were still
    /// on their way to the loop.
    fn hand_over(&mut self, carry: &mut Carry, unread: u64) {
        let unsettled = self
            .running
            .values()
            .filter(|job| job.delivery.is_some())
            .count() as u64;
        carry.done += self.received.saturating_sub(unsettled);
        carry.requeued = unsettled;
        carry.awaiting = self.awaiting + unsettled + self.pending.len() as u64 + unread;
        carry.awaiting_until = None;
        carry.idle = if self.running.is_empty() {
            self.idle_since.elapsed()
        } else {
            Duration::ZERO
        };
        carry.children = self
            .running
            .drain()
            .map(|(pid, job)| (pid, job.orphan || job.delivery.is_some()))
            .collect();
    }

    fn run(
        &mut self,
        deliveries: &Receiver<ConsumerMessage>,
        signal_events: &Receiver<i32>,
        alive: &Receiver<ConnectionBlockedNotification>,
    ) -> Step<i32> {
        loop {
            self.start_pending()?;
            if self.running.is_empty() && self.pending.is_empty() {
                // Everything in hand is done (or held): nothing left to wait for.
                self.cancel_if_due()?;
            }
            // Wait for the broker's cancel-ok to reach the consumer channel before dropping it:
            // amiquip's I/O thread dies if it finds that channel dropped.
            if !self.accepting && self.running.is_empty() && self.pending.is_empty() && self.rx_done
            {
                break;
            }
            // Room for another command: what the --exit-when-empty check waits for.
            let take = !self.rx_done
                && (!(self.accepting || self.draining)
                    || (self.running.len() < self.plan.jobs && self.pending.is_empty()));
            let event = {
                let mut sel = Select::new();
                let rx_index = (!self.rx_done).then(|| sel.recv(deliveries));
                let sig_index = sel.recv(signal_events);
                // After the consumer is cancelled, or while every job slot is busy, this is what
                // tells that the broker is gone (closed socket, missed heartbeats).
                let alive_index = sel.recv(alive);
                let selected = match self.next_timeout(take) {
                    Some(t) => sel.select_timeout(t).ok(),
                    None => Some(sel.select()),
                };
                match selected {
                    None => Event::Timer,
                    Some(op) if Some(op.index()) == rx_index => {
                        Event::Consumer(op.recv(deliveries))
                    }
                    Some(op) if op.index() == alive_index => match op.recv(alive) {
                        Ok(_) => Event::Timer,
                        Err(_) => Event::Consumer(closing_reason(deliveries)),
                    },
                    Some(op) => {
                        debug_assert_eq!(op.index(), sig_index);
                        match op.recv(signal_events) {
                            Ok(sig) => Event::Signal(sig),
                            // The signal thread never ends; treat it as a tick if it did.
                            Err(_) => Event::Timer,
                        }
                    }
                }
            };
            match event {
                Event::Consumer(msg) => self.on_consumer_message(msg)?,
                Event::Signal(sig) => self.on_signal(sig)?,
                Event::Timer => self.on_timer(take)?,
            }
        }
        match self.exit.take() {
            None => Ok(0),
            Some(Exit::Status(code)) => Ok(code),
            Some(Exit::Error(e)) => Err(Failure::AfterClose(e)),
        }
    }

    /// Messages of a lost connection have not all come back yet (see `Carry::awaiting`): the
    /// until when, if so.
    fn holding_on(&self, now: Instant) -> Option<Instant> {
        match self.awaiting_until {
            Some(until) if self.awaiting > 0 && now < until => Some(until),
            _ => None,
        }
    }

    fn next_timeout(&self, take: bool) -> Option<Duration> {
        let now = Instant::now();
        let mut due: Vec<Instant> = Vec::new();
        if !self.running.is_empty() {
            due.push(now + REAP_FALLBACK);
        }
        if let Some(until) = self.holding_on(now) {
            // The checks below wait until then.
            due.push(until);
        } else {
            if self.plan.exit_when_empty && self.accepting && take {
                due.push(self.empty_check_at);
            }
            if let Some(idle) = self.plan.idle_timeout {
                if self.accepting && self.running.is_empty() {
                    due.push(self.idle_since + idle);
                }
            }
        }
        due.into_iter()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    fn on_timer(&mut self, take: bool) -> Step {
        self.reap()?;
        let now = Instant::now();
        if self.holding_on(now).is_some() {
            return Ok(());
        }
        if let Some(idle) = self.plan.idle_timeout {
            if self.accepting && self.running.is_empty() && now >= self.idle_since + idle {
                return self.stop(Stop::Done);
            }
        }
        if self.plan.exit_when_empty && self.accepting && take && now >= self.empty_check_at {
            let queue = self
                .channel
                .queue_declare_passive(self.queue)
                .map_err(|e| fatal(format!("cannot look up queue '{}'", self.queue), e))?;
            // Deliveries to us travel on this channel ahead of the declare-ok, so whatever the
            // broker had sent us is already received; the cancel below still lets it run.
            // The count includes our own consumer: a quorum queue whose leader cannot be
            // reached (a node just died, an election is on) answers 0 messages and 0
            // consumers, which is not an empty queue.
            let counted_us = queue.declared_consumer_count().unwrap_or(0) > 0;
            if queue.declared_message_count() == Some(0) && counted_us {
                return self.stop(Stop::Done);
            }
            self.empty_check_at = Instant::now() + EMPTY_POLL;
        }
        Ok(())
    }

    fn on_signal(&mut self, sig: i32) -> Step {
        if sig == libc::SIGCHLD {
            self.reap()
        } else {
            self.stop(Stop::Signal(sig))
        }
    }

    fn reap(&mut self) -> Step {
        for (pid, kind) in signals::reap() {
            self.on_child_exit(pid, kind)?;
        }
        Ok(())
    }

    fn on_consumer_message(&mut self, msg: Result<ConsumerMessage, RecvError>) -> Step {
        let context = || format!("consuming from queue '{}'", self.queue);
        match msg {
            Ok(ConsumerMessage::Delivery(d)) => {
                if d.redelivered && self.awaiting > 0 {
                    self.awaiting -= 1;
                }
                if self.accepting {
                    self.arrived += 1;
                    if self.plan.count == Some(self.arrived) {
                        // --count messages are in hand: no message beyond them may be sent to
                        // us. (A quorum queue ignores the channel-wide limit `settle` lowers.)
                        if self.prefetch_full() {
                            self.cancel_due = true;
                        } else {
                            self.stop(Stop::Done)?;
                        }
                    }
                }
                if (self.accepting || self.draining) && self.running.len() >= self.plan.jobs {
                    self.pending.push_back(d);
                    Ok(())
                } else {
                    self.on_delivery(d)
                }
            }
            Ok(ConsumerMessage::ClientCancelled) => {
                self.rx_done = true;
                Ok(())
            }
            Ok(ConsumerMessage::ServerCancelled) => Err(Failure::Fatal(Error::Connection {
                context: context(),
                reason: "the broker cancelled the consumer (the queue was deleted?)".into(),
            })),
            Ok(ConsumerMessage::ServerClosedChannel(e))
            | Ok(ConsumerMessage::ServerClosedConnection(e)) => Err(fatal(context(), e)),
            Ok(ConsumerMessage::ClientClosedChannel)
            | Ok(ConsumerMessage::ClientClosedConnection)
            | Err(RecvError) => Err(Failure::Lost(Error::Connection {
                context: context(),
                reason: "the connection to the broker was lost".into(),
            })),
        }
    }

    fn on_delivery(&mut self, mut d: Delivery) -> Step {
        if !self.accepting && !self.draining {
            // Stopping (signal, --fail-fast): left unacknowledged, the broker requeues it.
            return Ok(());
        }
        if let Some(n) = self.plan.count {
            if self.received >= n {
                // Cannot happen with the prefetch limits set; left unacknowledged, the broker
                // gets it back when the channel closes.
                return Ok(());
            }
        }
        self.received += 1;
        self.idle_since = Instant::now();
        self.empty_check_at = self.idle_since + EMPTY_POLL;
        let vars = if self.plan.export_env {
            env::vars(&d)
        } else {
            Vec::new()
        };
        let body = std::mem::take(&mut d.body);
        let delivery = if self.plan.no_ack_wire {
            None
        } else if self.plan.ack_on_receipt {
            self.settle(d, Settle::Ack)?;
            None
        } else {
            Some(d)
        };
        self.start(body, vars, delivery)
    }

    fn start(
        &mut self,
        body: Vec<u8>,
        vars: Vec<(String, String)>,
        delivery: Option<Delivery>,
    ) -> Step {
        let program = &self.plan.command[0];
        let mut command = Command::new(program);
        command
            .args(&self.plan.command[1..])
            .envs(vars)
            .stdin(Stdio::piped());
        match command.spawn() {
            Ok(mut child) => {
                let pid = child.id() as i32;
                if let Some(stdin) = child.stdin.take() {
                    feed(stdin, body);
                }
                // Reaped by pid through waitpid(-1) (see signals::reap), not through `child`.
                drop(child);
                let job = Job {
                    delivery,
                    orphan: false,
                };
                self.running.insert(pid, job);
                Ok(())
            }
            Err(e) => {
                let err = Error::io(format!("cannot run '{}'", display(program)), &e);
                if let Some(d) = delivery {
                    self.settle_failed(d)?;
                }
                self.stop(Stop::Error(err))
            }
        }
    }

    /// Starts waiting deliveries while job slots are free (or lets them go back to the broker,
    /// unacknowledged, once stopping).
    fn start_pending(&mut self) -> Step {
        while self.running.len() < self.plan.jobs {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            self.on_delivery(d)?;
        }
        Ok(())
    }

    fn on_child_exit(&mut self, pid: i32, kind: ExitKind) -> Step {
        let Some(job) = self.running.remove(&pid) else {
            // A process we did not start, reaped as PID 1 (not a `Job::orphan`).
            return Ok(());
        };
        self.idle_since = Instant::now();
        if job.orphan {
            return Ok(());
        }
        if kind.success() {
            if let Some(d) = job.delivery {
                self.settle(d, Settle::Ack)?;
            }
            return Ok(());
        }
        if let Some(d) = job.delivery {
            self.settle_failed(d)?;
        }
        if self.plan.fail_fast {
            self.stop(Stop::FailFast(kind.shell_status()))?;
        }
        Ok(())
    }

    fn settle_failed(&mut self, d: Delivery) -> Step {
        match self.plan.on_failure {
            // Unacknowledged until the channel closes, as the C tool leaves it.
            OnFailure::Hold => Ok(()),
            OnFailure::Requeue => self.settle(d, Settle::Nack { requeue: true }),
            OnFailure::Reject => self.settle(d, Settle::Nack { requeue: false }),
        }
    }

    /// The prefetch limit the broker applies: the smaller of ours and the one lowered for
    /// --count; None when neither limits (a limit of 0 means none).
    fn effective_prefetch(&self) -> Option<u16> {
        [self.plan.prefetch, self.channel_limit.unwrap_or(0)]
            .into_iter()
            .filter(|&l| l > 0)
            .min()
    }

    /// Whether the broker may send us nothing more until a message is settled.
    fn prefetch_full(&self) -> bool {
        let unsettled = self.arrived.saturating_sub(self.settled);
        self.effective_prefetch()
            .is_some_and(|limit| unsettled >= u64::from(limit))
    }

    fn cancel_if_due(&mut self) -> Step {
        if self.cancel_due {
            self.cancel_due = false;
            self.stop(Stop::Done)?;
        }
        Ok(())
    }

    fn settle(&mut self, d: Delivery, how: Settle) -> Step {
        // Before the settle frees a prefetch slot.
        self.cancel_if_due()?;
        let settled = self.send_settle(d, how);
        if settled.is_err() {
            // Not done after all: the broker gives the message again.
            self.received = self.received.saturating_sub(1);
        }
        settled
    }

    fn send_settle(&mut self, d: Delivery, how: Settle) -> Step {
        if let (Some(n), true) = (self.plan.count, self.accepting) {
            // Settling frees a prefetch slot: the broker may then have at most `room`
            // messages unacknowledged with us, or it would send more than --count allows
            // (received < n here, so room is at least 1; a limit of 0 would mean "no limit").
            let room = n.saturating_sub(self.settled).saturating_sub(1);
            let effective = self.effective_prefetch();
            if room > 0 && !matches!(effective, Some(l) if u64::from(l) <= room) {
                // basic.qos is a round trip: lower the limit with some slack (half the room,
                // but never below what -j needs) so that it takes a few of them per run, not
                // one per message.
                let jobs = u64::try_from(self.plan.jobs).unwrap_or(u64::MAX);
                let limit = room.div_ceil(2).max(jobs.min(room));
                let limit = u16::try_from(limit).unwrap_or(u16::MAX);
                self.channel
                    .qos(0, limit, true)
                    .map_err(|e| fatal("cannot set the prefetch count", e))?;
                self.channel_limit = Some(limit);
            }
        }
        let result = match how {
            Settle::Ack => match self.wire.send(&basic_ack(1, d.delivery_tag())) {
                Ok(()) => Ok(()),
                // The channel or the connection is gone: amiquip knows which, and why.
                Err(_) => d.ack(self.channel),
            },
            Settle::Nack { requeue } => d.nack(self.channel, requeue),
        };
        result.map_err(|e| {
            fatal(
                match how {
                    Settle::Ack => "cannot acknowledge the message",
                    Settle::Nack { requeue: true } => "cannot requeue the message",
                    Settle::Nack { requeue: false } => "cannot reject the message",
                },
                e,
            )
        })?;
        self.settled += 1;
        Ok(())
    }

    fn stop(&mut self, why: Stop) -> Step {
        self.cancel_due = false;
        match why {
            Stop::Done => {}
            Stop::Signal(sig) => {
                for pid in self.running.keys() {
                    signals::forward(*pid, sig);
                }
                self.draining = false;
                self.exit = Some(Exit::Status(amqp_common::error::signal_status(sig)));
            }
            Stop::FailFast(code) => {
                self.draining = false;
                if self.exit.is_none() {
                    self.exit = Some(Exit::Status(code));
                }
            }
            Stop::Error(e) => {
                self.draining = false;
                if self.exit.is_none() {
                    self.exit = Some(Exit::Error(e));
                }
            }
        }
        if self.accepting {
            self.accepting = false;
            self.consumer
                .cancel()
                .map_err(|e| fatal("cannot cancel the consumer", e))?;
        }
        Ok(())
    }
}

/// The connection is gone. The broker's reason, if it gave one (connection.close, a deleted
/// queue), reaches the consumer channel just after the connection watch ends: wait a moment
/// for it. Deliveries still queued there cannot be acked any more; the broker requeues them.
fn closing_reason(deliveries: &Receiver<ConsumerMessage>) -> Result<ConsumerMessage, RecvError> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match deliveries.recv_deadline(deadline) {
            Ok(
                m @ (ConsumerMessage::ServerClosedConnection(_)
                | ConsumerMessage::ServerClosedChannel(_)
                | ConsumerMessage::ServerCancelled),
            ) => return Ok(m),
            Ok(_) => {}
            Err(_) => return Err(RecvError),
        }
    }
}

#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Nack { requeue: bool },
}

/// Writes the body to the command's stdin from a thread of its own, so a command that does not
/// read cannot block the loop; a command that exits or closes stdin early just ends the write
/// (EPIPE, since Rust ignores SIGPIPE) and is judged by its exit status.
fn feed(mut stdin: std::process::ChildStdin, body: Vec<u8>) {
    // A new pipe is empty and holds at least a page, so a body of up to PIPE_BUF bytes goes
    // in with one plain write that cannot block, whether or not the command reads: no fcntl
    // calls around it.
    if body.len() <= libc::PIPE_BUF {
        let _ = stdin.write_all(&body);
        return;
    }
    // Most other bodies fit in the pipe's buffer too: written at once without blocking, they
    // need no thread (starting one per message costs more than the write).
    let body = match write_nonblocking(&stdin, &body) {
        Ok(written) if written == body.len() => return,
        Ok(written) => body[written..].to_vec(),
        // EPIPE: the command ended or closed its stdin; it is judged by its exit status.
        Err(_) => return,
    };
    let spawned = std::thread::Builder::new()
        .name("body-writer".into())
        .spawn(move || {
            let _ = stdin.write_all(&body);
        });
    if let Err(e) = spawned {
        // No thread to spare: the command gets an empty stdin rather than a hang.
        eprintln!(
            "{}: warning: cannot start a thread to write the message body: {e}",
            amqp_common::cli::program_name()
        );
    }
}

/// Writes what the pipe takes now; leaves the descriptor blocking again for the rest.
fn write_nonblocking(stdin: &std::process::ChildStdin, body: &[u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl and write on a descriptor we own, with a buffer of the length given.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Ok(0);
        }
        let mut written = 0;
        let result = loop {
            if written == body.len() {
                break Ok(written);
            }
            let n = libc::write(fd, body[written..].as_ptr().cast(), body.len() - written);
            if n >= 0 {
                written += n as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => break Ok(written),
                _ => break Err(e),
            }
        };
        libc::fcntl(fd, libc::F_SETFL, flags);
        result
    }
}

fn display(program: &OsString) -> String {
    program.to_string_lossy().into_owned()
}
