//! amqp-publish: publishes one message (from -b or all of stdin) or one message per stdin line
//! (-l), and by default waits until the broker has confirmed every one of them.

mod args;
mod lines;
mod publisher;

pub use args::{parse_header, Args, Plan, Source};
pub use lines::{each_line, Input, MAX_LINE_PIECE};

use amqp_common::{ConnectionArgs, Error, ParseOptions, Result};
use crossbeam_channel::Receiver;
use lines::STDIN_BUFFER;
use publisher::{unroutable, Publisher, Stop};
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
    let endpoint = conn.endpoint()?;
    // Connected and logged in before stdin is read, so a login error shows at once even when
    // stdin is a slow pipe.
    let session = endpoint.connect()?;
    let mut publisher = match Publisher::new(&session.channel, session.wire(), plan) {
        Ok(p) => p,
        Err(e) => {
            session.abandon();
            return Err(e);
        }
    };
    let outcome = feed(&mut publisher, plan).and_then(|()| publisher.wait_for_all());
    let (published, confirmed) = (publisher.published, publisher.confirmed);
    let returns = publisher.returns.take();
    let confirming = publisher.confirms.is_some();
    drop(publisher);
    match outcome {
        Ok(()) => {
            // With confirms every publish has had its answer (a return comes before its
            // confirm), so the channel needs no close of its own. Without, closing the
            // channel is the round trip after which any basic.return or channel error
            // (404 no exchange) has arrived.
            let closed = if confirming {
                session.close_connection()
            } else {
                session.close()
            };
            closed.map_err(|e| after_close(plan, e))?;
            if let Some(Ok(ret)) = returns.as_ref().map(Receiver::try_recv) {
                return Err(unroutable(&ret));
            }
            Ok(())
        }
        Err(Stop::Failed(e)) => {
            session.abandon();
            Err(e)
        }
        Err(Stop::ChannelGone) => {
            // The broker closed the channel (its reason is waiting there) or the connection
            // was lost; closing tells which.
            let e = match session.close_and_explain() {
                Err(e) => after_close(plan, e),
                Ok(()) => Error::Connection {
                    context: format!("cannot publish to {}", plan.destination()),
                    reason: "the channel was closed".into(),
                },
            };
            Err(match e {
                Error::Connection { context, reason } if confirming => Error::Connection {
                    context,
                    reason: format!(
                        "{reason}; {} of {published} message(s) were confirmed",
                        confirmed
                    ),
                },
                other => other,
            })
        }
    }
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

fn feed(publisher: &mut Publisher<'_>, plan: &Plan) -> std::result::Result<(), Stop> {
    match &plan.source {
        Source::Body(body) => publisher.publish(body),
        Source::Stdin => {
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
            publisher.publish(&body)
        }
        Source::Lines => {
            // A closed stdin reads as /dev/null here: no lines, nothing published (as C).
            let stdin = std::io::stdin();
            let mut reader = std::io::BufReader::with_capacity(STDIN_BUFFER, stdin.lock());
            let result = each_line(
                &mut reader,
                |input| match input {
                    Input::Line(line) => publisher.publish(line).map_err(Ok),
                    // Lines are published as they arrive: what is encoded goes out before
                    // the tool waits for more.
                    Input::Idle => publisher.flush().map_err(Ok),
                },
                Err,
            );
            match result {
                Err(Err(e)) => {
                    // The C tool takes a read error for the end of input and exits 0; keep
                    // the status but say what happened.
                    eprintln!(
                        "{}: warning: stopped reading stdin: {}",
                        amqp_common::cli::program_name(),
                        amqp_common::error::io_reason(&e)
                    );
                    Ok(())
                }
                Err(Ok(stop)) => Err(stop),
                Ok(()) => Ok(()),
            }
        }
    }
}
