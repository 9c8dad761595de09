//! amqp-get: takes one message off a queue and writes its body to stdout.

use amqp_common::wire::frames::basic_ack;
use amqp_common::wire::Got;
use amqp_common::{check_short_string, ConnectionArgs, Error, HelpArgs, ParseOptions, Result};
use clap::Parser;
use std::io::Write;

/// Exit status when the queue is empty (the C tool's).
pub const EMPTY: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    about = "Take one message off a queue and write its body to stdout, byte for byte, with \
             nothing added.\nExit status: 0 a message was printed, 2 the queue is empty, 1 any \
             error.",
    after_help = "Example:\n  amqp-get --url=amqp://guest:guest@rabbitmq-service:5672 -q job1",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// Queue to take the message from (required)
    #[arg(short = 'q', long, value_name = "QUEUE", allow_hyphen_values = true)]
    pub queue: Option<String>,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub help: HelpArgs,

    /// Operands are refused after all options are read, as the C tool does.
    #[arg(hide = true)]
    pub operands: Vec<String>,
}

/// The tool's entry point (its own binary's and the multi-call binary's): runs it and exits.
pub fn main() -> ! {
    // Writing to a closed pipe ends the tool by SIGPIPE, as it ends the C tool; the message is
    // not acked yet at that point, so the broker requeues it.
    amqp_common::cli::restore_sigpipe();
    amqp_common::cli::main("amqp-get", run)
}

pub fn run() -> Result<()> {
    let args: Args = amqp_common::cli::parse(ParseOptions::default())?;
    amqp_common::cli::refuse_operands(&args.operands)?;
    let queue = args
        .queue
        .ok_or_else(|| Error::usage("no queue given: use -q QUEUE"))?;
    check_short_string("the queue name", &queue)?;
    // Channel 1 through the wire alone (as amqp-publish): basic.get, its message and the ack
    // need no hand-off to amiquip's I/O thread, and the get goes out as soon as the connection
    // is open.
    let session = args.conn.addresses()?.open()?;
    let context = || format!("cannot get a message from queue '{queue}'");
    let got = session
        .wire()
        .take_channel()
        .and_then(|()| session.wire().basic_get(&queue));
    let got_one = match got {
        Ok(Got::Empty) => false,
        Ok(Got::Message { delivery_tag, body }) => {
            // The message is acked only once its body is out, so a failed write loses
            // nothing: the broker requeues it. (A closed pipe ends the tool by SIGPIPE, as the
            // C tool's.)
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(&body).and_then(|()| out.flush()) {
                session.abandon();
                return Err(Error::io("cannot write the message to stdout", &e));
            }
            // Written at once, so it is out before the connection.close that follows; the
            // broker handles it before it answers that.
            if session.wire().send(&basic_ack(1, delivery_tag)).is_err() {
                return Err(session.gone("cannot acknowledge the message".into()));
            }
            true
        }
        Err(_) => return Err(session.gone(context())),
    };
    session.close_connection()?;
    if got_one {
        Ok(())
    } else {
        Err(Error::Status(EMPTY))
    }
}
