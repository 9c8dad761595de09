//! The publisher on channel 1: publishes, keeps a bounded window of messages waiting for
//! their confirm, and counts what the broker has confirmed.
//!
//! The messages are encoded once (`PublishFrames`) and written in batches straight onto the
//! connection through the wire (`WireControl::send`), between amiquip's own frames; the
//! broker's confirms and returns are read there too (`WireControl::take_channel`). Per
//! message that costs a copy and a few bytes of framing, where amiquip would allocate and
//! encode every frame anew, hand each message to its I/O thread and each ack back (three
//! thread hand-offs and ~10,000 instructions a message). amiquip does the handshake and keeps
//! the connection (heartbeats); it never hears of channel 1, which the broker opened with the
//! connection (`Endpoint::open`).

use crate::args::Plan;
use amqp_common::wire::frames::{confirm_select, PublishFrames};
use amqp_common::wire::{Returned, WireControl};
use amqp_common::{Error, Result};

/// The channel amqp-common's session opens, where the tool works.
const CHANNEL: u16 = 1;

/// Messages are written once this many bytes are waiting (and whenever stdin has nothing
/// more at once, or the tool is about to wait for a confirm).
const BATCH_BYTES: usize = 64 * 1024;

/// How many published messages may wait for their confirm before publishing pauses. Large
/// enough that the broker's batched acks keep the pipe full, small enough to bound what a
/// failure leaves in doubt.
const CONFIRM_WINDOW: u64 = 8_192;

/// Once the window is full, publishing resumes when this many are still unconfirmed.
const RESUME_AT: u64 = CONFIRM_WINDOW * 3 / 4;

/// Publishes on channel 1 and keeps count of what the broker has confirmed.
pub(crate) struct Publisher<'a> {
    wire: &'a WireControl,
    frames: PublishFrames,
    /// Encoded messages not yet written.
    batch: Vec<u8>,
    plan: &'a Plan,
    pub(crate) published: u64,
    pub(crate) confirmed: u64,
}

/// Why publishing stopped before every message was confirmed.
pub(crate) enum Stop {
    /// A failure already described.
    Failed(Error),
    /// The channel or connection went away (`WireSession::gone` says which, and why).
    ChannelGone,
}

impl<'a> Publisher<'a> {
    pub(crate) fn new(wire: &'a WireControl, plan: &'a Plan) -> Result<Publisher<'a>> {
        let frames = PublishFrames::new(
            CHANNEL,
            &plan.exchange,
            &plan.routing_key,
            plan.mandatory,
            &plan.properties,
            wire.frame_max(),
        )
        .map_err(Error::config)?;
        let mut batch = Vec::with_capacity(BATCH_BYTES + 1024);
        wire.take_channel()
            .map_err(|_| channel_lost("cannot set up the channel for publishing"))?;
        if plan.confirm {
            // With the first publishes, without waiting for an answer: the broker handles the
            // channel's frames in order, so every publish after it is confirmed, and a refusal
            // closes the channel, which the publishes then notice.
            batch.extend_from_slice(&confirm_select(CHANNEL));
        }
        Ok(Publisher {
            wire,
            frames,
            batch,
            plan,
            published: 0,
            confirmed: 0,
        })
    }

    pub(crate) fn publish(&mut self, body: &[u8]) -> std::result::Result<(), Stop> {
        // Keep a bounded number in flight: once the window is full, wait until a quarter of
        // it is confirmed (one wake-up, not one per ack).
        if self.plan.confirm && self.published - self.confirmed >= CONFIRM_WINDOW {
            self.flush()?;
            self.wait_until_confirmed(self.published - RESUME_AT)?;
        }
        self.frames.push(body, &mut self.batch);
        self.published += 1;
        if self.batch.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the messages encoded so far.
    pub(crate) fn flush(&mut self) -> std::result::Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // Gone: the broker closed the channel or the connection, or the connection was lost;
        // `WireSession::gone` tells which.
        self.wire.send(&self.batch).map_err(|_| Stop::ChannelGone)?;
        self.batch.clear();
        // Confirms are looked at once a batch: a nack or a return stops the run a batch later
        // at most, for a fraction of the cost per message.
        self.take_ready_confirms()
    }

    /// Takes in what the broker has said so far, without waiting: the count confirmed, and a
    /// refused or returned message as the failure it is.
    pub(crate) fn take_ready_confirms(&mut self) -> std::result::Result<(), Stop> {
        let (confirmed, nacked) = self.wire.confirmed();
        if self.plan.confirm {
            self.confirmed = confirmed;
        }
        self.check(nacked)
    }

    fn check(&self, nacked: Option<u64>) -> std::result::Result<(), Stop> {
        if let Some(tag) = nacked {
            return Err(Stop::Failed(Error::Connection {
                context: format!("cannot publish to {}", self.plan.destination()),
                reason: format!(
                    "the broker refused message {tag} (basic.nack; for example a full queue \
                     with x-overflow=reject-publish)"
                ),
            }));
        }
        // A basic.return comes before the confirm of its message.
        match self.wire.returned() {
            Some(ret) => Err(Stop::Failed(unroutable(&ret))),
            None => Ok(()),
        }
    }

    /// Waits until the first `count` messages are confirmed.
    fn wait_until_confirmed(&mut self, count: u64) -> std::result::Result<(), Stop> {
        self.wire
            .wait_confirmed(count)
            .map_err(|_| Stop::ChannelGone)?;
        self.take_ready_confirms()
    }

    pub(crate) fn wait_for_all(&mut self) -> std::result::Result<(), Stop> {
        self.flush()?;
        if !self.plan.confirm {
            // The broker answers a synchronous method only after every publish before it on
            // the channel, so this waits (as long as it takes) until the broker has them all
            // and surfaces a channel error (e.g. 404 no exchange) or a return. The bounded
            // close that follows has nothing left to flush.
            self.wire.barrier().map_err(|_| Stop::ChannelGone)?;
            return self.take_ready_confirms();
        }
        self.wait_until_confirmed(self.published)
    }
}

fn channel_lost(context: &str) -> Error {
    Error::Connection {
        context: context.into(),
        reason: "the connection to the broker was lost".into(),
    }
}

pub(crate) fn unroutable(ret: &Returned) -> Error {
    let exchange = if ret.exchange.is_empty() {
        "the default exchange".to_string()
    } else {
        format!("exchange '{}'", ret.exchange)
    };
    Error::Broker {
        context: format!(
            "message not routed to any queue (--mandatory): {exchange}, routing key '{}'",
            ret.routing_key
        ),
        code: ret.code,
        text: ret.text.clone(),
    }
}
