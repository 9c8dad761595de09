//! amqp-consume: runs a command once for each message of a queue, with the body on its stdin,
//! and acknowledges the message when the command exits 0.

mod env;
mod reconnect;
mod runner;
mod signals;

use amiquip::{FieldTable, QueueDeclareOptions};
use amqp_common::number::c_int;
use amqp_common::options::parse_seconds;
use amqp_common::Result;
use amqp_common::{
    check_short_string, ConnectionArgs, Error, HelpArgs, ParseOptions, ReconnectArgs, Session,
};
use clap::Parser;
use crossbeam_channel::Receiver;
use runner::{Carry, Failure};
use std::ffi::OsString;
use std::time::Duration;

/// The C tool binds at most this many routing keys.
const MAX_ROUTING_KEYS: usize = 1023;

/// What happens to the message of a command that failed.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Leave it unacknowledged until amqp-consume exits; the broker then requeues it
    #[default]
    Hold,
    /// Put it back in the queue at once (basic.nack with requeue)
    Requeue,
    /// Drop it, or dead-letter it if the queue has a dead-letter exchange (basic.nack without
    /// requeue)
    Reject,
}

#[derive(Parser, Debug)]
#[command(
    about = "Run COMMAND once for each message of a queue, with the message body on its stdin. \
             The message is acknowledged when COMMAND exits 0.\nPut COMMAND's own options after \
             `--` (amqp-consume -q jobs -- sh -c 'cat'): options after COMMAND are still read as \
             amqp-consume's, unless POSIXLY_CORRECT is set.\nExit status: 0 after -c N messages \
             (whatever the commands returned), 1 any error, 128+N on signal N, a failed \
             command's status with --fail-fast.\nWith --reconnect, a message whose COMMAND was \
             running when the connection was lost comes again and runs again: make COMMAND \
             idempotent.",
    after_help = "Examples:\n  amqp-consume --url=amqp://guest:guest@rabbitmq-service:5672 -q job1 -c 1 /worker\n  \
                  amqp-consume -e amq.topic -r 'logs.*' -- sh -c 'cat >> all.log'",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// Queue to consume from (default: declare a new server-named queue, printed on stderr)
    #[arg(short = 'q', long, value_name = "QUEUE", allow_hyphen_values = true)]
    pub queue: Option<String>,

    /// Bind the queue to this exchange (the queue is declared if it does not exist)
    #[arg(short = 'e', long, value_name = "EXCHANGE", allow_hyphen_values = true)]
    pub exchange: Option<String>,

    /// Binding keys for --exchange, separated by commas (default: the empty key)
    #[arg(
        short = 'r',
        long,
        value_name = "KEY[,KEY...]",
        allow_hyphen_values = true
    )]
    pub routing_key: Option<String>,

    /// Declare the queue (non-durable, auto-delete) unless it already exists
    #[arg(short = 'd', long)]
    pub declare: bool,

    /// Declare the queue exclusive to this connection (and auto-delete)
    #[arg(short = 'x', long)]
    pub exclusive: bool,

    /// Do not wait for COMMAND's result: each message is acknowledged on receipt, so a failed
    /// COMMAND loses it
    #[arg(short = 'A', long)]
    pub no_ack: bool,

    /// Stop after N messages (default: no limit; a negative N means no limit)
    #[arg(short = 'c', long, value_name = "N", value_parser = c_int, allow_hyphen_values = true)]
    pub count: Option<i32>,

    /// Let the broker send at most N unacknowledged messages ahead (default: --count, else no
    /// limit)
    #[arg(
        short = 'p',
        long,
        value_name = "N",
        value_parser = c_int,
        allow_hyphen_values = true
    )]
    pub prefetch_count: Option<i32>,

    /// What to do with the message of a COMMAND that fails (non-zero exit, killed, or cannot be
    /// started)
    #[arg(
        long,
        value_enum,
        value_name = "ACTION",
        default_value_t = OnFailure::Hold,
        allow_hyphen_values = true
    )]
    pub on_failure: OnFailure,

    /// Stop at the first COMMAND that fails, settle its message by --on-failure and exit with
    /// its status (128+N if it was killed by signal N)
    #[arg(long)]
    pub fail_fast: bool,

    /// Exit 0 as soon as the queue has no message ready for us (also at start)
    #[arg(long)]
    pub exit_when_empty: bool,

    /// Exit 0 after SECS without a message
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub idle_timeout: Option<Duration>,

    /// Give COMMAND the message's metadata as environment variables: AMQP_ROUTING_KEY,
    /// AMQP_EXCHANGE, AMQP_REDELIVERED, AMQP_DELIVERY_TAG, AMQP_<PROPERTY> for each property set
    /// (AMQP_CONTENT_TYPE, AMQP_MESSAGE_ID, ...) and AMQP_HEADER_<NAME> for each header
    #[arg(long)]
    pub export_env: bool,

    /// Run up to N commands at once, each message settled by its own command's result
    /// (default 1)
    #[arg(short = 'j', long, value_name = "N", value_parser = c_int, allow_hyphen_values = true)]
    pub jobs: Option<i32>,

    /// The command to run for each message, and its arguments (run directly, no shell; looked
    /// up in PATH)
    #[arg(value_name = "COMMAND", value_parser = clap::value_parser!(OsString))]
    pub command: Vec<OsString>,

    #[command(flatten)]
    pub reconnect: ReconnectArgs,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub help: HelpArgs,
}

/// Everything the delivery loop needs to know, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub command: Vec<OsString>,
    /// `Some(n)` stops after n messages.
    pub count: Option<u64>,
    /// Per-consumer prefetch (0: none), as the C tool computes it.
    pub prefetch: u16,
    /// basic.consume no_ack.
    pub no_ack_wire: bool,
    /// -A with a count: acknowledge on receipt, before the command runs.
    pub ack_on_receipt: bool,
    pub jobs: usize,
    pub on_failure: OnFailure,
    pub fail_fast: bool,
    pub exit_when_empty: bool,
    pub idle_timeout: Option<Duration>,
    pub export_env: bool,
}

impl Plan {
    /// The plan for a new connection once `done` messages were done on the ones before
    /// (--reconnect): --count counts those, and neither the prefetch nor -j may let the broker
    /// send more than what is left.
    pub fn remaining(&self, done: u64) -> Plan {
        let mut plan = self.clone();
        if let Some(n) = self.count {
            let left = n.saturating_sub(done);
            plan.count = Some(left);
            if let Ok(fits) = u16::try_from(left) {
                if fits > 0 && (plan.prefetch == 0 || plan.prefetch > fits) {
                    plan.prefetch = fits;
                }
            }
            plan.jobs = plan
                .jobs
                .min(usize::try_from(left).unwrap_or(usize::MAX).max(1));
        }
        plan
    }
}

/// basic.qos prefetch as the C tool sets it: the count when it fits, overridden by
/// --prefetch-count when that fits and is smaller than the count.
pub fn c_prefetch(count: i32, prefetch: Option<i32>) -> u16 {
    let fits = |n: i32| (1..=65535).contains(&n);
    let mut result = if fits(count) { count } else { 0 };
    if let Some(p) = prefetch {
        if fits(p) && !(fits(count) && p >= count) {
            result = p;
        }
    }
    u16::try_from(result).unwrap_or(0)
}

impl Args {
    fn plan(&self) -> Result<Plan> {
        if self.command.is_empty() {
            return Err(Error::usage(
                "no command given: amqp-consume [OPTIONS] [--] COMMAND [ARG...] \
                 (see 'amqp-consume --help')",
            ));
        }
        let count_arg = self.count.unwrap_or(-1);
        let count = u64::try_from(count_arg).ok();
        let jobs = match self.jobs {
            None => 1,
            Some(j) if (1..=65535).contains(&j) => j as usize,
            Some(j) => {
                return Err(Error::config(format!(
                    "bad --jobs {j}: expected a number from 1 to 65535"
                )))
            }
        };
        // Never more commands at once than messages we may take.
        let jobs = match count {
            Some(n) if n > 0 => jobs.min(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => jobs,
        };
        let mut prefetch = c_prefetch(count_arg, self.prefetch_count);
        if prefetch != 0 && usize::from(prefetch) < jobs {
            // Each running command holds one unacknowledged message.
            prefetch = u16::try_from(jobs).unwrap_or(u16::MAX);
        }
        Ok(Plan {
            command: self.command.clone(),
            count,
            prefetch,
            no_ack_wire: self.no_ack && count.is_none(),
            ack_on_receipt: self.no_ack && count.is_some(),
            jobs,
            on_failure: self.on_failure,
            fail_fast: self.fail_fast,
            exit_when_empty: self.exit_when_empty,
            idle_timeout: self.idle_timeout,
            export_env: self.export_env,
        })
    }

    /// The time allowed to reconnect (None without --reconnect), which needs a queue that
    /// outlives the connection.
    fn check_reconnect(&self) -> Result<Option<Duration>> {
        let limit = self.reconnect.limit()?;
        if limit.is_none() {
            return Ok(None);
        }
        if self.queue.is_none() {
            return Err(Error::usage(
                "--reconnect needs a queue name (-q): a server-named queue is deleted with the \
                 connection, and its messages with it",
            ));
        }
        if self.exclusive {
            return Err(Error::usage(
                "--reconnect cannot be used with -x: the broker deletes an exclusive queue, and \
                 its messages, with the connection",
            ));
        }
        Ok(limit)
    }

    /// Binding keys: -r split on commas, empty pieces skipped, at most 1023; without -r the
    /// empty key (the C tool crashes there).
    fn binding_keys(&self) -> Vec<String> {
        match &self.routing_key {
            None => vec![String::new()],
            Some(keys) => keys
                .split(',')
                .filter(|k| !k.is_empty())
                .take(MAX_ROUTING_KEYS)
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The tool's entry point (its own binary's and the multi-call binary's): runs it and exits.
pub fn main() -> ! {
    amqp_common::cli::main("amqp-consume", run)
}

pub fn run() -> Result<()> {
    // Before any thread exists, so every later thread inherits the signal mask.
    let signal_events = signals::start();
    let args: Args = amqp_common::cli::parse(ParseOptions {
        command_arg: Some("command"),
    })?;
    let plan = args.plan()?;
    if args.routing_key.is_some() && args.exchange.is_none() {
        return Err(Error::usage(
            "--routing-key needs --exchange: the keys bind the queue to that exchange",
        ));
    }
    for (what, value) in [
        ("the queue name", &args.queue),
        ("the exchange name", &args.exchange),
    ] {
        if let Some(v) = value {
            check_short_string(what, v)?;
        }
    }
    for key in args.binding_keys() {
        check_short_string("a routing key", &key)?;
    }
    let reconnect_limit = args.check_reconnect()?;
    let addresses = args.conn.addresses()?;
    if let Some(limit) = reconnect_limit {
        return reconnect::run(&addresses, &args, &plan, &signal_events, limit);
    }
    let mut session = addresses.connect()?;
    let outcome = consume_on(
        &mut session,
        &args,
        &plan,
        &signal_events,
        &mut Carry::default(),
    );
    finish(session, outcome)
}

/// One connection's work: declare and bind, then consume until the plan says to stop or the
/// connection is lost.
fn consume_on(
    session: &mut Session,
    args: &Args,
    plan: &Plan,
    signal_events: &Receiver<i32>,
    carry: &mut Carry,
) -> std::result::Result<i32, Failure> {
    let queue = setup(session, args).map_err(runner::failure)?;
    let alive = session.liveness().map_err(runner::failure)?;
    runner::run(
        &session.channel,
        session.wire(),
        &queue,
        plan,
        signal_events,
        &alive,
        carry,
    )
}

/// Ends the session as the outcome asks (closing it cleanly, or abandoning a dead or failed
/// one) and turns the outcome into the tool's result.
fn finish(session: Session, outcome: std::result::Result<i32, Failure>) -> Result<()> {
    match outcome {
        Ok(status) => {
            session.close()?;
            match status {
                0 => Ok(()),
                code => Err(Error::Status(code)),
            }
        }
        Err(Failure::Fatal(e) | Failure::Lost(e)) => {
            session.abandon();
            Err(e)
        }
        Err(Failure::AfterClose(e)) => {
            let _ = session.close();
            Err(e)
        }
    }
}

/// Declares and binds as the C tool does, with its fixes; returns the queue to consume from.
fn setup(session: &mut Session, args: &Args) -> Result<String> {
    let must_declare =
        args.queue.is_none() || args.exchange.is_some() || args.declare || args.exclusive;
    let mut queue = args.queue.clone().unwrap_or_default();
    if must_declare {
        let exists = !args.exclusive && !queue.is_empty() && queue_exists(session, &queue)?;
        if !exists {
            let options = QueueDeclareOptions {
                durable: false,
                exclusive: args.exclusive,
                auto_delete: true,
                arguments: FieldTable::new(),
            };
            let declared = session
                .channel
                .queue_declare(queue.as_str(), options)
                .map_err(|e| Error::amqp(format!("cannot declare queue '{queue}'"), e))?;
            queue = declared.name().to_string();
            if args.queue.is_none() {
                eprintln!("Server provided queue name: {}", escape_name(&queue));
            }
            if args.reconnect.reconnect {
                eprintln!(
                    "{}: warning: queue '{queue}' did not exist and was declared non-durable and \
                     auto-delete: it is deleted with a lost connection, and its messages with \
                     it (declare it beforehand, e.g. amqp-declare-queue -d or --queue-type \
                     quorum)",
                    amqp_common::cli::program_name()
                );
            }
        }
    }
    if let Some(exchange) = &args.exchange {
        for key in args.binding_keys() {
            session
                .channel
                .queue_bind(
                    queue.as_str(),
                    exchange.as_str(),
                    key.as_str(),
                    FieldTable::new(),
                )
                .map_err(|e| {
                    Error::amqp(
                        format!(
                            "cannot bind queue '{queue}' to exchange '{exchange}' with key '{key}'"
                        ),
                        e,
                    )
                })?;
        }
    }
    Ok(queue)
}

/// Whether the queue exists, asked on a channel of its own: a passive declare of a missing
/// queue closes the channel it was sent on.
fn queue_exists(session: &mut Session, queue: &str) -> Result<bool> {
    let probe = session.open_channel()?;
    match probe.queue_declare_passive(queue) {
        Ok(_) => {
            let _ = probe.close();
            Ok(true)
        }
        Err(amiquip::Error::ServerClosedChannel { code: 404, .. }) => Ok(false),
        Err(e) => Err(Error::amqp(format!("cannot look up queue '{queue}'"), e)),
    }
}

/// The C tool's escaping of a server-provided name: control bytes and DEL as `\` and three
/// octal digits.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if (c as u32) < 0x20 || c as u32 == 0x7f {
            out.push_str(&format!("\\{:03o}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_table() {
        // compatibility.md C-CON-12, row by row.
        assert_eq!(c_prefetch(-1, None), 0);
        assert_eq!(c_prefetch(5, None), 5);
        assert_eq!(c_prefetch(-1, Some(3)), 3);
        assert_eq!(c_prefetch(5, Some(3)), 3);
        assert_eq!(c_prefetch(5, Some(10)), 5);
        assert_eq!(c_prefetch(70000, None), 0);
        assert_eq!(c_prefetch(-1, Some(70000)), 0);
        assert_eq!(c_prefetch(70000, Some(7)), 7);
        assert_eq!(c_prefetch(-1, Some(0)), 0);
        assert_eq!(c_prefetch(5, Some(5)), 5);
        assert_eq!(c_prefetch(0, Some(4)), 4);
    }

    #[test]
    fn escapes_like_c() {
        assert_eq!(escape_name("amq.gen-x"), "amq.gen-x");
        assert_eq!(escape_name("a\nb\x7f\x01"), "a\\012b\\177\\001");
    }

    fn parse(argv: &[&str]) -> Args {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        amqp_common::cli::parse_from(
            argv,
            ParseOptions {
                command_arg: Some("command"),
            },
        )
        .unwrap()
    }

    #[test]
    fn operands_and_options_mix_as_in_popt() {
        let a = parse(&["amqp-consume", "-q", "Q", "echo", "-c", "1", "ARG"]);
        assert_eq!(a.count, Some(1));
        assert_eq!(
            a.command,
            vec![OsString::from("echo"), OsString::from("ARG")]
        );
        let a = parse(&["amqp-consume", "-q", "Q", "echo", "--", "-n", "X"]);
        assert_eq!(a.command, ["echo", "-n", "X"].map(OsString::from).to_vec());
        let a = parse(&["amqp-consume", "-q", "Q", "echo", "--", "--", "X"]);
        assert_eq!(a.command, ["echo", "--", "X"].map(OsString::from).to_vec());
        let a = parse(&["amqp-consume", "-Ac1", "cat"]);
        assert!(a.no_ack);
        assert_eq!(a.count, Some(1));
    }

    #[test]
    fn routing_keys() {
        let a = parse(&["amqp-consume", "-e", "x", "-r", "k1,k2,,k3", "cat"]);
        assert_eq!(a.binding_keys(), ["k1", "k2", "k3"]);
        let a = parse(&["amqp-consume", "-e", "x", "-r", ",,", "cat"]);
        assert!(a.binding_keys().is_empty());
        let a = parse(&["amqp-consume", "-e", "x", "cat"]);
        assert_eq!(a.binding_keys(), [""]);
    }

    #[test]
    fn plans() {
        let p = parse(&["amqp-consume", "-A", "-c", "3", "cat"])
            .plan()
            .unwrap();
        assert!(p.ack_on_receipt && !p.no_ack_wire);
        assert_eq!((p.count, p.prefetch), (Some(3), 3));
        let p = parse(&["amqp-consume", "-A", "cat"]).plan().unwrap();
        assert!(p.no_ack_wire && !p.ack_on_receipt);
        let p = parse(&["amqp-consume", "-j", "4", "-p", "2", "cat"])
            .plan()
            .unwrap();
        assert_eq!((p.jobs, p.prefetch), (4, 4));
        let p = parse(&["amqp-consume", "-j", "4", "-c", "2", "cat"])
            .plan()
            .unwrap();
        assert_eq!((p.jobs, p.prefetch), (2, 2));
        assert!(parse(&["amqp-consume", "-j", "0", "cat"]).plan().is_err());
        assert!(parse(&["amqp-consume", "-q", "x"]).plan().is_err());
    }
}
