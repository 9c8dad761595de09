//! The command line: the options, and the plan checked from them before any connection.

use amqp_common::wire::frames::Properties;
use amqp_common::{check_short_string, ConnectionArgs, Error, HelpArgs, Result};
use clap::Parser;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

#[derive(Parser, Debug)]
#[command(
    about = "Publish a message to an exchange: the body given with -b, or else all of stdin as \
             one message; with -l, one message per stdin line (newline kept).\nThe broker \
             confirms every message (publisher confirms) before the tool exits 0.\nExit status: \
             0 every message was confirmed, 1 any error.",
    after_help = "Examples:\n  amqp-publish -r job1 -b 'hello'\n  \
                  amqp-publish --url=amqp://guest:guest@rabbitmq-service:5672 -r job1 -p < task.json\n  \
                  seq 1 100 | amqp-publish -e amq.direct -r work -l\n  \
                  amqp-publish -r job1 -H 'trace-id: 42' -C application/json --mandatory -b '{}'",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// Exchange to publish to (default: the default exchange "", which routes by queue name).
    /// At least one of -e and -r is required
    #[arg(short = 'e', long, value_name = "EXCHANGE", allow_hyphen_values = true)]
    pub exchange: Option<String>,

    /// Routing key (default ""); with the default exchange, the name of the target queue
    #[arg(short = 'r', long, value_name = "KEY", allow_hyphen_values = true)]
    pub routing_key: Option<String>,

    /// Persistent message (delivery_mode 2; otherwise 1): it survives a broker restart when
    /// it sits in a durable queue
    #[arg(short = 'p', long)]
    pub persistent: bool,

    /// content_type property (e.g. text/plain, application/json)
    #[arg(short = 'C', long, value_name = "TYPE", allow_hyphen_values = true)]
    pub content_type: Option<String>,

    /// content_encoding property (e.g. gzip)
    #[arg(short = 'E', long, value_name = "ENCODING", allow_hyphen_values = true)]
    pub content_encoding: Option<String>,

    /// reply_to property: the queue a reply should go to
    #[arg(short = 't', long, value_name = "QUEUE", allow_hyphen_values = true)]
    pub reply_to: Option<String>,

    /// Add a header "KEY: VALUE" (string value; split at the first ':', spaces after it
    /// dropped). Repeatable; headers are sent in the order given, a repeated KEY included
    #[arg(
        short = 'H',
        long = "header",
        value_name = "\"KEY: VALUE\"",
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    pub headers: Vec<String>,

    /// Message body, taken byte for byte (no newline added); stdin is not read
    #[arg(short = 'b', long, value_name = "BODY", allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    pub body: Option<OsString>,

    /// One message per stdin line, each with its newline; lines are published as they
    /// arrive (lines over 32767 bytes are split). Cannot be combined with -b
    #[arg(short = 'l', long)]
    pub line_buffered: bool,

    /// Do not ask the broker to confirm each message (as the C tool): exit 0 then says the
    /// broker received every message and reported no error, not that it stored them
    #[arg(long)]
    pub no_confirm: bool,

    /// Fail (exit 1) when a message cannot be routed to any queue, instead of letting the
    /// broker drop it
    #[arg(long)]
    pub mandatory: bool,

    /// priority property, 0 to 255 (used by queues with x-max-priority)
    #[arg(long, value_name = "N", value_parser = amqp_common::number::c_int,
          allow_hyphen_values = true)]
    pub priority: Option<i32>,

    /// expiration property: per-message TTL in milliseconds (digits only)
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    pub expiration: Option<String>,

    /// message_id property
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub message_id: Option<String>,

    /// correlation_id property (e.g. to match a reply to its request)
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub correlation_id: Option<String>,

    /// type property (message type name)
    #[arg(long = "type", value_name = "TYPE", allow_hyphen_values = true)]
    pub type_: Option<String>,

    /// app_id property (name of the publishing application)
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub app_id: Option<String>,

    /// user_id property; RabbitMQ refuses the message unless it is the connection's user
    #[arg(long, value_name = "USER", allow_hyphen_values = true)]
    pub user_id: Option<String>,

    /// timestamp property, in seconds since the Unix epoch, or "now"
    #[arg(long, value_name = "SECS|now", allow_hyphen_values = true)]
    pub timestamp: Option<String>,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub help: HelpArgs,

    /// Operands are refused after all options are read, as the C tool does.
    #[arg(hide = true)]
    pub operands: Vec<String>,
}

/// Where the bodies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Body(Vec<u8>),
    Stdin,
    Lines,
}

/// Everything the command line decides, checked before connecting.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub exchange: String,
    pub routing_key: String,
    pub properties: Properties,
    pub source: Source,
    pub confirm: bool,
    pub mandatory: bool,
}

/// Splits `-H "key: value"` as the C tool does: at the first ':', the key verbatim, only
/// leading spaces dropped from the value.
pub fn parse_header(arg: &str) -> Result<(String, String)> {
    let Some((key, value)) = arg.split_once(':') else {
        return Err(Error::usage(format!(
            "bad -H \"{arg}\": expected \"KEY: VALUE\" (a ':' between key and value)"
        )));
    };
    Ok((key.to_string(), value.trim_start_matches(' ').to_string()))
}

fn timestamp(value: &str) -> Result<u64> {
    if value == "now" {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| Error::config("--timestamp now: the system clock is before 1970"));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::usage(format!(
            "bad --timestamp '{value}': expected seconds since the Unix epoch or 'now'"
        )));
    }
    value.parse::<u64>().map_err(|_| {
        Error::usage(format!(
            "bad --timestamp '{value}': too large for a 64-bit timestamp"
        ))
    })
}

/// AMQP short strings hold at most 255 bytes; say which option was too long.
fn short(option: &str, value: &str) -> Result<String> {
    check_short_string(&format!("the {option} value"), value)?;
    Ok(value.to_string())
}

impl Plan {
    /// Checks the command line and decides what to publish, before any connection.
    pub fn from_args(args: &Args) -> Result<Plan> {
        if args.exchange.is_none() && args.routing_key.is_none() {
            return Err(Error::usage(
                "neither exchange nor routing key given: use -e EXCHANGE and/or -r KEY",
            ));
        }
        let source =
            match (&args.body, args.line_buffered) {
                (Some(_), true) => return Err(Error::usage(
                    "-l (one message per stdin line) and -b (one message from the command line) \
                     cannot be used together",
                )),
                (Some(body), false) => Source::Body(body.as_bytes().to_vec()),
                (None, true) => Source::Lines,
                (None, false) => Source::Stdin,
            };
        let text = |option: &str, value: &Option<String>| {
            value.as_deref().map(|v| short(option, v)).transpose()
        };
        // Checked in this order, so that of several bad options the same one is reported.
        let content_type = text("--content-type", &args.content_type)?;
        let content_encoding = text("--content-encoding", &args.content_encoding)?;
        let reply_to = text("--reply-to", &args.reply_to)?;
        let mut headers = Vec::with_capacity(args.headers.len());
        for arg in &args.headers {
            let (key, value) = parse_header(arg)?;
            check_short_string(&format!("the -H key '{key}'"), &key)?;
            headers.push((key, value));
        }
        let priority = args
            .priority
            .map(|p| {
                u8::try_from(p)
                    .map_err(|_| Error::usage(format!("bad --priority {p}: expected 0 to 255")))
            })
            .transpose()?;
        if let Some(v) = &args.expiration {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::usage(format!(
                    "bad --expiration '{v}': expected a number of milliseconds (digits only)"
                )));
            }
        }
        let properties = Properties {
            content_type,
            content_encoding,
            // In command-line order, a repeated key included, as the C tool sends them.
            headers,
            delivery_mode: Some(if args.persistent { 2 } else { 1 }),
            priority,
            expiration: text("--expiration", &args.expiration)?,
            message_id: text("--message-id", &args.message_id)?,
            correlation_id: text("--correlation-id", &args.correlation_id)?,
            reply_to,
            type_: text("--type", &args.type_)?,
            app_id: text("--app-id", &args.app_id)?,
            user_id: text("--user-id", &args.user_id)?,
            timestamp: args.timestamp.as_deref().map(timestamp).transpose()?,
        };
        let exchange = args.exchange.clone().unwrap_or_default();
        let routing_key = args.routing_key.clone().unwrap_or_default();
        check_short_string("the exchange name (-e)", &exchange)?;
        check_short_string("the routing key (-r)", &routing_key)?;
        Ok(Plan {
            exchange,
            routing_key,
            properties,
            source,
            confirm: !args.no_confirm,
            mandatory: args.mandatory,
        })
    }

    pub(crate) fn destination(&self) -> String {
        let exchange = if self.exchange.is_empty() {
            "the default exchange".to_string()
        } else {
            format!("exchange '{}'", self.exchange)
        };
        format!("{exchange} with routing key '{}'", self.routing_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_common::ParseOptions;

    #[test]
    fn headers_split_at_first_colon() {
        assert_eq!(parse_header("a: 1").unwrap(), ("a".into(), "1".into()));
        assert_eq!(parse_header("b:2").unwrap(), ("b".into(), "2".into()));
        assert_eq!(
            parse_header("c:  x: y ").unwrap(),
            ("c".into(), "x: y ".into())
        );
        assert_eq!(
            parse_header("k6\t:\ttab").unwrap(),
            ("k6\t".into(), "\ttab".into())
        );
        assert_eq!(parse_header(":v").unwrap(), ("".into(), "v".into()));
        assert_eq!(parse_header("k:").unwrap(), ("k".into(), "".into()));
        assert!(parse_header("noColon").is_err());
    }

    fn plan(argv: &[&str]) -> Result<Plan> {
        let mut full = vec!["amqp-publish"];
        full.extend_from_slice(argv);
        let args: Args = amqp_common::cli::parse_from(
            full.iter().map(OsString::from).collect(),
            ParseOptions::default(),
        )?;
        Plan::from_args(&args)
    }

    #[test]
    fn checks_before_connecting() {
        assert!(plan(&["-b", "x"]).is_err());
        assert!(plan(&["-e", "", "-b", "x"]).is_ok());
        assert!(plan(&["-r", "q", "-l", "-b", "x"]).is_err());
        assert!(plan(&["-r", "q", "-H", "bad"]).is_err());
        assert!(plan(&["-r", &"q".repeat(256)]).is_err());
        assert!(plan(&["-e", &"x".repeat(256), "-r", "q"]).is_err());
        assert!(plan(&["-r", "q", "--priority", "256"]).is_err());
        assert!(plan(&["-r", "q", "--priority", "-1"]).is_err());
        assert!(plan(&["-r", "q", "--expiration", "1s"]).is_err());
        assert!(plan(&["-r", "q", "--timestamp", "yesterday"]).is_err());
    }

    #[test]
    fn properties() {
        let p = plan(&["-r", "q", "-b", "m"]).unwrap();
        assert_eq!(
            p.properties,
            Properties {
                delivery_mode: Some(1),
                ..Properties::default()
            }
        );
        assert_eq!(p.source, Source::Body(b"m".to_vec()));
        assert!(p.confirm && !p.mandatory);
        let p = plan(&[
            "-r",
            "q",
            "-p",
            "-C",
            "text/plain",
            "-H",
            "k:1",
            "-H",
            "k:2",
            "--priority",
            "0x10",
            "--timestamp",
            "1700000000",
            "--expiration",
            "60000",
            "--no-confirm",
        ])
        .unwrap();
        assert_eq!(p.properties.delivery_mode, Some(2));
        assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.properties.priority, Some(16));
        assert_eq!(p.properties.timestamp, Some(1_700_000_000));
        assert_eq!(p.properties.expiration.as_deref(), Some("60000"));
        assert_eq!(
            p.properties.headers,
            vec![("k".into(), "1".into()), ("k".into(), "2".into())]
        );
        assert!(!p.confirm);
        assert_eq!(plan(&["-r", "q", "-l"]).unwrap().source, Source::Lines);
        assert_eq!(plan(&["-r", "q"]).unwrap().source, Source::Stdin);
    }
}
