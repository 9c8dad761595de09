//! amqp-delete-queue: deletes a queue and prints how many messages it held.

use amiquip::QueueDeleteOptions;
use amqp_common::cli::print_line;
use amqp_common::{check_short_string, ConnectionArgs, Error, HelpArgs, ParseOptions, Result};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    about = "Delete a queue and print the number of messages it held (0 when it did not \
             exist).\nExit status: 0 the queue is gone, 1 any error (nothing is deleted).",
    after_help = "Examples:\n  amqp-delete-queue -q job1\n  \
                  amqp-delete-queue -q job1 --if-empty --if-unused\n\n\
                  There is no short form of --if-unused: -u is --url, as in the C tool.",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// Queue to delete (required, not empty)
    #[arg(short = 'q', long, value_name = "QUEUE", allow_hyphen_values = true)]
    pub queue: Option<String>,

    /// Delete only if the queue has no consumers (otherwise exit 1, 406 in use)
    #[arg(long)]
    pub if_unused: bool,

    /// Delete only if the queue holds no messages (otherwise exit 1, 406 not empty)
    #[arg(short = 'e', long)]
    pub if_empty: bool,

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
    // A closed stdout ends the tool by SIGPIPE, as it ends the C tool.
    amqp_common::cli::restore_sigpipe();
    amqp_common::cli::main("amqp-delete-queue", run)
}

pub fn run() -> Result<()> {
    let args: Args = amqp_common::cli::parse(ParseOptions::default())?;
    amqp_common::cli::refuse_operands(&args.operands)?;
    // The empty name would mean "the queue last declared on this channel": none, here.
    let queue = args
        .queue
        .filter(|q| !q.is_empty())
        .ok_or_else(|| Error::usage("no queue given: use -q QUEUE (a non-empty name)"))?;
    check_short_string("the queue name", &queue)?;
    let options = QueueDeleteOptions {
        if_unused: args.if_unused,
        if_empty: args.if_empty,
    };
    let session = args.conn.connect()?;
    session.finish_answered(|channel| {
        let count = channel
            .queue_delete(queue.as_str(), options)
            .map_err(|e| Error::amqp(format!("cannot delete queue '{queue}'"), e))?;
        print_line(&count.to_string(), "the message count")
    })
}
