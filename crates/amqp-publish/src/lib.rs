//! amqp-publish: publishes one message (from -b or all of stdin) or one message per stdin line
//! (-l), and by default waits until the broker has confirmed every one of them.

mod args;
mod lines;
mod publisher;
mod reconnect;

pub use args::{parse_header, Args, Plan, Source};
pub use lines::{Input, Lines, MAX_LINE_PIECE};

use amqp_common::{ConnectionArgs, Error, ParseOptions, Result, WireSession};
use lines::STDIN_BUFFER;
use publisher::{Publisher, Stop};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

static STDIN_WAS_CLOSED: AtomicBool = AtomicBool::new(false);

/// Called from a process constructor, before the Rust runtime reopens a closed stdin as
/// /dev/null: that would turn `amqp-publish <&-` into an empty message, where the C tool fails.
pub fn record_stdin_state_at_startup() {
    // SAFETY: F_GETFD only queries the descriptor; it has no memory effects.
    let closed = unsafe { libc::fcntl(0, libc::F_GETFD) } == -1;
    STDIN_WAS_CLOSED.store(closed, Ordering::Relaxed);
}

/// Registers `record_stdin_state_at_startup` as a process constructor. It must expand in the
/// binary crate: the linker leaves out a library's object that nothing refers to, and with it a
/// constructor placed there.
#[macro_export]
macro_rules! record_stdin_state_before_main {
    () => {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        #[used]
        #[link_section = ".init_array"]
        static RECORD_STDIN_STATE: extern "C" fn() = {
            extern "C" fn record() {
                $crate::record_stdin_state_at_startup();
            }
            record
        };
    };
}

/// The tool's entry point (its own binary's and the multi-call binary's): runs it and exits.
pub fn main() -> ! {
    amqp_common::cli::main("amqp-publish", run)
}

pub fn run() -> Result<()> {
    let args: Args = amqp_common::cli::parse(ParseOptions::default())?;
    amqp_common::cli::refuse_operands(&args.operands)?;
    let plan = Plan::from_args(&args)?;
    publish(&args.conn, &plan)
}

fn publish(conn: &ConnectionArgs, plan: &Plan) -> Result<()> {
    let addresses = conn.addresses()?;
    if let Some(limit) = plan.reconnect {
        return reconnect::publish(&addresses, plan, limit);
    }
    // Connected and logged in before stdin is read, so a login error shows at once even when
    // stdin is a slow pipe.
    let session = addresses.open()?;
    let mut publisher = match Publisher::new(session.wire(), plan) {
        Ok(p) => p,
        Err(e) => {
            session.abandon();
            return Err(e);
        }
    };
    let outcome = Messages::new(plan)
        .feed(&mut publisher)
        .and_then(|()| publisher.wait_for_all());
    let (published, confirmed) = (publisher.published, publisher.confirmed);
    drop(publisher);
    match outcome {
        Ok(()) => close_after_all(session, plan),
        Err(Stop::Failed(e)) => {
            // A refused or returned message, or stdin that failed: the connection is fine,
            // and closing it properly spares the broker a "client unexpectedly closed" log.
            let _ = session.close_connection();
            Err(e)
        }
        Err(Stop::ChannelGone) => Err(match why_gone(session, plan) {
            Error::Connection { context, reason } if plan.confirm => Error::Connection {
                context,
                reason: format!(
                    "{reason}; {} of {published} message(s) were confirmed",
                    confirmed
                ),
            },
            other => other,
        }),
    }
}

/// Ends a session on which every message was published (and confirmed, or followed by a
/// barrier without confirms), so every return and channel error has been looked at: only the
/// connection is closed (the broker closes the channel with it).
fn close_after_all(session: WireSession, plan: &Plan) -> Result<()> {
    session.close_connection().map_err(|e| after_close(plan, e))
}

/// The channel went away while publishing: the broker closed it, or the connection, or the
/// connection was lost (`WireSession::gone` says which).
fn why_gone(session: WireSession, plan: &Plan) -> Error {
    session.gone(format!("cannot publish to {}", plan.destination()))
}

/// A failure found when closing means a publish failed (e.g. 404 no exchange, which the
/// broker reports by closing the channel): name the publish, not the close.
fn after_close(plan: &Plan, e: Error) -> Error {
    let context = format!("cannot publish to {}", plan.destination());
    match e {
        Error::Broker { code, text, .. } => Error::Broker {
            context,
            code,
            text,
        },
        Error::Connection { .. } => Error::Connection {
            context,
            reason: "the connection to the broker was lost".into(),
        },
        other => other,
    }
}

fn stdin_closed_error() -> Error {
    Error::Io {
        context: "cannot read the message body from stdin".into(),
        reason: "stdin is closed".into(),
    }
}

/// Where the messages go: the publisher of the connection, or (--reconnect) that publisher
/// with a copy of every message kept until the broker confirms it.
pub(crate) trait Sink {
    fn publish(&mut self, body: &[u8]) -> std::result::Result<(), Stop>;
    /// Sends what `publish` has encoded so far.
    fn flush(&mut self) -> std::result::Result<(), Stop>;
}

impl Sink for Publisher<'_> {
    fn publish(&mut self, body: &[u8]) -> std::result::Result<(), Stop> {
        Publisher::publish(self, body)
    }

    fn flush(&mut self) -> std::result::Result<(), Stop> {
        Publisher::flush(self)
    }
}

/// The messages to publish, read as they are needed. With --reconnect one `Messages` outlives
/// the connections: after a lost one, reading goes on where it stopped.
pub(crate) struct Messages<'p> {
    plan: &'p Plan,
    /// -l: stdin, read as it comes.
    lines: Option<Lines<std::io::StdinLock<'static>>>,
    /// Every message was handed on.
    done: bool,
}

impl<'p> Messages<'p> {
    pub(crate) fn new(plan: &'p Plan) -> Messages<'p> {
        Messages {
            plan,
            lines: None,
            done: false,
        }
    }

    /// Hands every message not handed on yet to `sink`. A message is handed on once, even
    /// when `sink` fails with it.
    pub(crate) fn feed(&mut self, sink: &mut impl Sink) -> std::result::Result<(), Stop> {
        if self.done {
            return Ok(());
        }
        match &self.plan.source {
            Source::Body(body) => {
                self.done = true;
                sink.publish(body)
            }
            Source::Stdin => {
                self.done = true;
                if STDIN_WAS_CLOSED.load(Ordering::Relaxed) {
                    return Err(Stop::Failed(stdin_closed_error()));
                }
                let mut body = Vec::new();
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut body)
                    .map_err(|e| {
                        Stop::Failed(Error::io("cannot read the message body from stdin", &e))
                    })?;
                sink.publish(&body)
            }
            Source::Lines => {
                // A closed stdin reads as /dev/null here: no lines, nothing published (as C).
                let reader = self.lines.get_or_insert_with(|| {
                    Lines::new(std::io::BufReader::with_capacity(
                        STDIN_BUFFER,
                        std::io::stdin().lock(),
                    ))
                });
                let result = reader.each_line(
                    |input| match input {
                        Input::Line(line) => sink.publish(line).map_err(Ok),
                        // Lines are published as they arrive: what is encoded goes out before
                        // the tool waits for more.
                        Input::Idle => sink.flush().map_err(Ok),
                    },
                    Err,
                );
                match result {
                    Err(Err(e)) => {
                        self.done = true;
                        // The C tool takes a read error for the end of input and exits 0;
                        // keep the status but say what happened.
                        eprintln!(
                            "{}: warning: stopped reading stdin: {}",
                            amqp_common::cli::program_name(),
                            amqp_common::error::io_reason(&e)
                        );
                        Ok(())
                    }
                    Err(Ok(stop)) => Err(stop),
                    Ok(()) => {
                        self.done = true;
                        Ok(())
                    }
                }
            }
        }
    }
}
