//! amqp-declare-queue: declares a queue (or checks that one exists) and prints its name.

use amiquip::{AmqpValue, FieldTable, QueueDeclareOptions};
use amqp_common::cli::print_line;
use amqp_common::{check_short_string, ConnectionArgs, Error, HelpArgs, ParseOptions, Result};
use clap::{Parser, ValueEnum};

/// The queue types RabbitMQ knows, sent as the `x-queue-type` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueueType {
    Classic,
    Quorum,
    Stream,
}

impl QueueType {
    fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    about = "Declare a queue and print its name (the name the broker chose, with -q \"\").\n\
             Declaring a queue that already exists with the same settings is not an error.\n\
             Exit status: 0 the queue exists now, 1 any error.",
    after_help = "Examples:\n  amqp-declare-queue -q job1 -d\n  \
                  amqp-declare-queue -q work --queue-type quorum --arg x-max-length=1000\n  \
                  amqp-declare-queue -q job1 --passive   # only check that it exists",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// Queue to declare (required); "" lets the broker choose a name, which is printed
    #[arg(short = 'q', long, value_name = "QUEUE", allow_hyphen_values = true)]
    pub queue: Option<String>,

    /// Make the queue durable (it survives a broker restart); implied by --queue-type quorum
    /// and stream
    #[arg(short = 'd', long)]
    pub durable: bool,

    /// Queue type, sent as the x-queue-type argument (default: the broker's, normally classic).
    /// quorum and stream queues are always durable, so they imply -d
    #[arg(long, value_name = "TYPE", value_enum, allow_hyphen_values = true)]
    pub queue_type: Option<QueueType>,

    /// Queue argument KEY=VALUE, repeatable (e.g. x-max-length=10, x-message-ttl=60000,
    /// x-dead-letter-exchange=dlx). Whole numbers are sent as signed 64-bit integers,
    /// true/false as booleans, anything else as a string
    #[arg(long = "arg", value_name = "KEY=VALUE", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub args: Vec<String>,

    /// Make the queue auto-delete: the broker deletes it when its last consumer goes away
    #[arg(long)]
    pub auto_delete: bool,

    /// Only check that the queue exists (and print its name); create nothing. Exit 1 if it
    /// does not exist
    #[arg(long)]
    pub passive: bool,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub help: HelpArgs,

    /// Operands are refused after all options are read, as the C tool does.
    #[arg(hide = true)]
    pub operands: Vec<String>,
}

/// Reads one `--arg KEY=VALUE`. Integers are 64-bit so that every value RabbitMQ accepts
/// (TTLs in ms, byte limits) fits; `l` is also the type RabbitMQ's own tools send.
pub fn parse_queue_arg(spec: &str) -> Result<(String, AmqpValue)> {
    let Some((key, value)) = spec.split_once('=') else {
        return Err(Error::usage(format!(
            "bad --arg '{spec}': expected KEY=VALUE, e.g. --arg x-max-length=10"
        )));
    };
    if key.is_empty() {
        return Err(Error::usage(format!(
            "bad --arg '{spec}': the key before '=' is empty"
        )));
    }
    check_short_string("the --arg key", key)?;
    let value = if let Ok(n) = value.parse::<i64>() {
        AmqpValue::LongLongInt(n)
    } else if value == "true" {
        AmqpValue::Boolean(true)
    } else if value == "false" {
        AmqpValue::Boolean(false)
    } else {
        AmqpValue::LongString(value.to_string())
    };
    Ok((key.to_string(), value))
}

/// The declare options for the command line: the queue type (from --queue-type or an
/// `--arg x-queue-type=...`) decides whether durable is implied.
pub fn declare_options(args: &Args) -> Result<QueueDeclareOptions> {
    let mut arguments = FieldTable::new();
    for spec in &args.args {
        let (key, value) = parse_queue_arg(spec)?;
        // Last one wins, as for every other repeated option.
        arguments.insert(key, value);
    }
    if let Some(kind) = args.queue_type {
        match arguments.get("x-queue-type") {
            Some(AmqpValue::LongString(s)) if s != kind.as_str() => {
                return Err(Error::usage(format!(
                    "--queue-type {} and --arg x-queue-type={s} disagree; give one of them",
                    kind.as_str()
                )));
            }
            _ => {}
        }
        arguments.insert(
            "x-queue-type".into(),
            AmqpValue::LongString(kind.as_str().into()),
        );
    }
    // The broker refuses non-durable quorum and stream queues (406 "invalid property
    // 'non-durable'"); someone asking for such a queue wants it, durable being its only form.
    let replicated = matches!(
        arguments.get("x-queue-type"),
        Some(AmqpValue::LongString(s)) if s == "quorum" || s == "stream"
    );
    Ok(QueueDeclareOptions {
        durable: args.durable || replicated,
        exclusive: false,
        auto_delete: args.auto_delete,
        arguments,
    })
}

/// The tool's entry point (its own binary's and the multi-call binary's): runs it and exits.
pub fn main() -> ! {
    // A closed stdout ends the tool by SIGPIPE, as it ends the C tool.
    amqp_common::cli::restore_sigpipe();
    amqp_common::cli::main("amqp-declare-queue", run)
}

pub fn run() -> Result<()> {
    let args: Args = amqp_common::cli::parse(ParseOptions::default())?;
    amqp_common::cli::refuse_operands(&args.operands)?;
    let queue = args.queue.clone().ok_or_else(|| {
        Error::usage("no queue given: use -q QUEUE (-q \"\" for a server-named queue)")
    })?;
    check_short_string("the queue name", &queue)?;
    if args.passive
        && (args.durable || args.auto_delete || args.queue_type.is_some() || !args.args.is_empty())
    {
        // A passive declare makes the broker ignore every setting, so they would not be checked.
        return Err(Error::usage(
            "--passive only checks that the queue exists; it cannot be combined with -d, \
             --auto-delete, --queue-type or --arg",
        ));
    }
    let options = declare_options(&args)?;
    let session = args.conn.connect()?;
    session.finish_answered(|channel| {
        let declared = if args.passive {
            channel.queue_declare_passive(queue.as_str())
        } else {
            channel.queue_declare(queue.as_str(), options)
        };
        let what = if args.passive { "check" } else { "declare" };
        let declared =
            declared.map_err(|e| Error::amqp(format!("cannot {what} queue '{queue}'"), e))?;
        print_line(declared.name(), "the queue name")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_values_are_typed() {
        assert_eq!(
            parse_queue_arg("x-max-length=10").unwrap(),
            ("x-max-length".into(), AmqpValue::LongLongInt(10))
        );
        assert_eq!(
            parse_queue_arg("k=-5").unwrap().1,
            AmqpValue::LongLongInt(-5)
        );
        assert_eq!(
            parse_queue_arg("k=true").unwrap().1,
            AmqpValue::Boolean(true)
        );
        assert_eq!(
            parse_queue_arg("k=false").unwrap().1,
            AmqpValue::Boolean(false)
        );
        assert_eq!(
            parse_queue_arg("x-dead-letter-exchange=dlx").unwrap().1,
            AmqpValue::LongString("dlx".into())
        );
        // Split at the first '=': the value may hold more.
        assert_eq!(
            parse_queue_arg("k=a=b").unwrap().1,
            AmqpValue::LongString("a=b".into())
        );
        assert_eq!(
            parse_queue_arg("k=").unwrap().1,
            AmqpValue::LongString("".into())
        );
        // Too large for i64: kept as text rather than silently changed.
        assert_eq!(
            parse_queue_arg("k=99999999999999999999").unwrap().1,
            AmqpValue::LongString("99999999999999999999".into())
        );
        assert!(parse_queue_arg("novalue").is_err());
        assert!(parse_queue_arg("=1").is_err());
    }

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["amqp-declare-queue", "-q", "q"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn replicated_types_imply_durable() {
        let o = declare_options(&args(&["--queue-type", "quorum"])).unwrap();
        assert!(o.durable);
        assert_eq!(
            o.arguments.get("x-queue-type"),
            Some(&AmqpValue::LongString("quorum".into()))
        );
        assert!(
            declare_options(&args(&["--arg", "x-queue-type=stream"]))
                .unwrap()
                .durable
        );
        let o = declare_options(&args(&["--queue-type", "classic"])).unwrap();
        assert!(!o.durable);
        let o = declare_options(&args(&[])).unwrap();
        assert!(!o.durable && !o.auto_delete && !o.exclusive && o.arguments.is_empty());
        assert!(declare_options(&args(&[
            "--queue-type",
            "quorum",
            "--arg",
            "x-queue-type=classic"
        ]))
        .is_err());
        assert!(declare_options(&args(&[
            "--queue-type",
            "quorum",
            "--arg",
            "x-queue-type=quorum"
        ]))
        .is_ok());
    }

    #[test]
    fn repeated_args_last_wins() {
        let o = declare_options(&args(&["--arg", "k=1", "--arg", "k=2", "--arg", "j=x"])).unwrap();
        assert_eq!(o.arguments.get("k"), Some(&AmqpValue::LongLongInt(2)));
        assert_eq!(o.arguments.len(), 2);
    }
}
