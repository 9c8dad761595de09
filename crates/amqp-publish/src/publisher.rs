//! The publisher on channel 1: publishes, keeps a bounded window of messages waiting for
//! their confirm, and counts what the broker has confirmed.
//!
//! amiquip sets the channel up (confirm mode, the confirm and return listeners) and delivers
//! the broker's confirms and returns; the messages themselves are encoded once
//! (`PublishFrames`) and written in batches straight onto the connection through the wire
//! (`WireControl::send`), between amiquip's own frames. Per message that costs a copy and a
//! few bytes of framing, where amiquip would allocate and encode every frame anew and hand each
//! message to its I/O thread (three thread hand-offs and ~10,000 instructions a message).

use crate::args::Plan;
use amiquip::{Channel, Confirm, ConfirmSmoother};
use amqp_common::wire::frames::PublishFrames;
use amqp_common::wire::WireControl;
use amqp_common::{Error, Result};
use crossbeam_channel::{Receiver, TryRecvError};
use std::time::Duration;

/// The channel amqp-common's session opens, where the tool works.
const CHANNEL: u16 = 1;

/// confirm.select
const CONFIRM_SELECT: (u16, u16) = (85, 10);

/// Messages are written once this many bytes are waiting (and whenever stdin has nothing
/// more at once, or the tool is about to wait for a confirm).
const BATCH_BYTES: usize = 64 * 1024;

/// How many published messages may wait for their confirm before publishing pauses. Large
/// enough that the broker's batched acks keep the pipe full, small enough to bound what a
/// failure leaves in doubt.
const CONFIRM_WINDOW: u64 = 8_192;

/// Once the window is full, publishing resumes when this many are still unconfirmed.
const RESUME_AT: u64 = CONFIRM_WINDOW * 3 / 4;

/// Below this many unconfirmed messages, each confirm is waited for as it comes.
const FEW: u64 = 64;

/// How long to let confirms gather while many are due. Waiting for each one instead would wake
/// this thread for every ack the broker sends (amiquip hands them over one by one): at the
/// broker's full speed that is a wake-up, with its system calls, every few messages.
const GATHER: Duration = Duration::from_micros(200);

/// Publishes on channel 1 and keeps count of what the broker has confirmed.
pub(crate) struct Publisher<'a> {
    channel: &'a Channel,
    wire: &'a WireControl,
    frames: PublishFrames,
    /// Encoded messages not yet written.
    batch: Vec<u8>,
    plan: &'a Plan,
    pub(crate) confirms: Option<Receiver<Confirm>>,
    pub(crate) returns: Option<Receiver<amiquip::Return>>,
    smoother: ConfirmSmoother,
    pub(crate) published: u64,
    pub(crate) confirmed: u64,
}

/// Why publishing stopped before every message was confirmed.
pub(crate) enum Stop {
    /// A failure already described.
    Failed(Error),
    /// The channel or connection went away; the reason is found when closing.
    ChannelGone,
}

impl<'a> Publisher<'a> {
    pub(crate) fn new(
        channel: &'a Channel,
        wire: &'a WireControl,
        plan: &'a Plan,
    ) -> Result<Publisher<'a>> {
        let setup = |e| Error::amqp("cannot set up the channel for publishing", e);
        let frames = PublishFrames::new(
            CHANNEL,
            &plan.exchange,
            &plan.routing_key,
            plan.mandatory,
            &plan.properties,
            wire.frame_max(),
        )
        .map_err(Error::config)?;
        // Listeners first, so no confirm or return can arrive before we listen.
        let returns = if plan.mandatory {
            Some(channel.listen_for_returns().map_err(setup)?)
        } else {
            None
        };
        let confirms = if plan.confirm {
            let rx = channel.listen_for_publisher_confirms().map_err(setup)?;
            // No round trip for confirm.select-ok: the broker handles the channel's frames in
            // order, so every publish after it is confirmed, and a refusal closes the channel,
            // which the publishes then notice.
            channel.enable_publisher_confirms_nowait().map_err(setup)?;
            // amiquip's I/O thread writes the select; our publishes go straight to the
            // socket, so they wait until it is out (the listeners were set before it).
            wire.wait_sent(CHANNEL, CONFIRM_SELECT)
                .map_err(|_| channel_lost("cannot set up the channel for publishing"))?;
            Some(rx)
        } else {
            if plan.mandatory {
                // The return listener is set by amiquip's I/O thread; a round trip makes sure
                // it is in place before a return can come.
                channel.qos(0, 0, false).map_err(setup)?;
            }
            None
        };
        Ok(Publisher {
            channel,
            wire,
            frames,
            batch: Vec::with_capacity(BATCH_BYTES + 1024),
            plan,
            confirms,
            returns,
            smoother: ConfirmSmoother::new(),
            published: 0,
            confirmed: 0,
        })
    }

    pub(crate) fn publish(&mut self, body: &[u8]) -> std::result::Result<(), Stop> {
        if self.confirms.is_some() {
            // Keep a bounded number in flight: wait for confirms once the window is full.
            if self.published - self.confirmed >= CONFIRM_WINDOW {
                self.flush()?;
                self.wait_until_unconfirmed(RESUME_AT)?;
            }
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
        // Gone: the broker closed the channel or the connection (its reason is found when
        // closing), or the connection was lost.
        self.wire.send(&self.batch).map_err(|_| Stop::ChannelGone)?;
        self.batch.clear();
        // Confirms are looked at once a batch: a nack or a return stops the run a batch later
        // at most, for a fraction of the cost per message.
        self.take_ready_confirms()
    }

    fn broker_error(&self, e: amiquip::Error) -> Error {
        Error::amqp(format!("cannot publish to {}", self.plan.destination()), e)
    }

    /// Handles the confirms that have already arrived, without waiting.
    fn take_ready_confirms(&mut self) -> std::result::Result<(), Stop> {
        loop {
            let Some(rx) = &self.confirms else {
                return Ok(());
            };
            match rx.try_recv() {
                Ok(confirm) => self.settle(confirm)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Stop::ChannelGone),
            }
        }
    }

    /// Waits until at most `left` messages are unconfirmed.
    fn wait_until_unconfirmed(&mut self, left: u64) -> std::result::Result<(), Stop> {
        loop {
            self.take_ready_confirms()?;
            let unconfirmed = self.published - self.confirmed;
            if unconfirmed <= left {
                return Ok(());
            }
            if unconfirmed > FEW {
                std::thread::sleep(GATHER);
            } else {
                self.wait_for_confirm()?;
            }
        }
    }

    fn wait_for_confirm(&mut self) -> std::result::Result<(), Stop> {
        let Some(rx) = &self.confirms else {
            return Ok(());
        };
        match rx.recv() {
            Ok(confirm) => self.settle(confirm),
            Err(_) => Err(Stop::ChannelGone),
        }
    }

    fn settle(&mut self, confirm: Confirm) -> std::result::Result<(), Stop> {
        for one in self.smoother.process(confirm) {
            match one {
                Confirm::Ack(_) => self.confirmed += 1,
                Confirm::Nack(p) => {
                    return Err(Stop::Failed(Error::Connection {
                        context: format!("cannot publish to {}", self.plan.destination()),
                        reason: format!(
                            "the broker refused message {} (basic.nack; for example a full \
                             queue with x-overflow=reject-publish)",
                            p.delivery_tag
                        ),
                    }))
                }
            }
        }
        // A basic.return comes before the confirm of its message, so it is visible now.
        self.check_returns()
    }

    fn check_returns(&self) -> std::result::Result<(), Stop> {
        match self.returns.as_ref().map(Receiver::try_recv) {
            Some(Ok(ret)) => Err(Stop::Failed(unroutable(&ret))),
            _ => Ok(()),
        }
    }

    pub(crate) fn wait_for_all(&mut self) -> std::result::Result<(), Stop> {
        self.flush()?;
        if self.confirms.is_none() {
            // The broker answers a synchronous method only after every publish before it on
            // the channel, so this waits (as long as it takes) until the broker has them all
            // and surfaces a channel error (e.g. 404 no exchange). The bounded close that
            // follows then has nothing left to flush.
            return self.channel.qos(0, 0, false).map_err(|e| match e {
                amiquip::Error::ServerClosedChannel { .. }
                | amiquip::Error::ServerClosedConnection { .. } => {
                    Stop::Failed(self.broker_error(e))
                }
                _ => Stop::ChannelGone,
            });
        }
        self.wait_until_unconfirmed(0)?;
        self.check_returns()
    }
}

fn channel_lost(context: &str) -> Error {
    Error::Connection {
        context: context.into(),
        reason: "the connection to the broker was lost".into(),
    }
}

pub(crate) fn unroutable(ret: &amiquip::Return) -> Error {
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
        code: ret.reply_code,
        text: ret.reply_text.clone(),
    }
}
