//! amqp-publish: publishes one message (from -b or all of stdin) or one message per stdin line
//! (-l), and by default waits until the broker has confirmed every one of them.

use amiquip::{AmqpProperties, AmqpValue, Channel, Confirm, ConfirmSmoother, FieldTable, Publish};
use amqp_common::{check_short_string, ConnectionArgs, Error, HelpArgs, ParseOptions, Result};
use clap::Parser;
use crossbeam_channel::{Receiver, TryRecvError};
use std::ffi::OsString;
use std::io::{BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// The longest message -l makes from one line: the C tool reads lines with
/// `fgets(buf, 32768)`, so longer lines arrive as several messages of at most this size.
pub const MAX_LINE_PIECE: usize = 32_767;

/// How many published messages may wait for their confirm before publishing pauses. Large
/// enough that the broker's batched acks keep the pipe full, small enough to bound what a
/// failure leaves in doubt.
const CONFIRM_WINDOW: u64 = 8_192;

/// stdin read buffer: large reads keep the per-line cost down when lines are short.
const STDIN_BUFFER: usize = 1 << 20;

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
    /// dropped). Repeatable; a repeated KEY keeps its last value
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
    pub properties: AmqpProperties,
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
        let mut properties =
            AmqpProperties::default().with_delivery_mode(if args.persistent { 2 } else { 1 });
        if let Some(v) = &args.content_type {
            properties = properties.with_content_type(short("--content-type", v)?);
        }
        if let Some(v) = &args.content_encoding {
            properties = properties.with_content_encoding(short("--content-encoding", v)?);
        }
        if let Some(v) = &args.reply_to {
            properties = properties.with_reply_to(short("--reply-to", v)?);
        }
        if !args.headers.is_empty() {
            let mut table = FieldTable::new();
            for arg in &args.headers {
                let (key, value) = parse_header(arg)?;
                check_short_string(&format!("the -H key '{key}'"), &key)?;
                // The table is a map: a repeated key keeps its last value, which is also what
                // a consumer reading the C tool's duplicate entries into a map ends up with.
                table.insert(key, AmqpValue::LongString(value));
            }
            properties = properties.with_headers(table);
        }
        if let Some(p) = args.priority {
            let p = u8::try_from(p)
                .map_err(|_| Error::usage(format!("bad --priority {p}: expected 0 to 255")))?;
            properties = properties.with_priority(p);
        }
        if let Some(v) = &args.expiration {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::usage(format!(
                    "bad --expiration '{v}': expected a number of milliseconds (digits only)"
                )));
            }
            properties = properties.with_expiration(short("--expiration", v)?);
        }
        if let Some(v) = &args.message_id {
            properties = properties.with_message_id(short("--message-id", v)?);
        }
        if let Some(v) = &args.correlation_id {
            properties = properties.with_correlation_id(short("--correlation-id", v)?);
        }
        if let Some(v) = &args.type_ {
            properties = properties.with_type_(short("--type", v)?);
        }
        if let Some(v) = &args.app_id {
            properties = properties.with_app_id(short("--app-id", v)?);
        }
        if let Some(v) = &args.user_id {
            properties = properties.with_user_id(short("--user-id", v)?);
        }
        if let Some(v) = &args.timestamp {
            properties = properties.with_timestamp(timestamp(v)?);
        }
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

    fn destination(&self) -> String {
        let exchange = if self.exchange.is_empty() {
            "the default exchange".to_string()
        } else {
            format!("exchange '{}'", self.exchange)
        };
        format!("{exchange} with routing key '{}'", self.routing_key)
    }
}

/// The body the C tool's `-l` publishes for one piece: `strlen` of the buffer, so a NUL ends it.
fn cut_at_nul(piece: &[u8]) -> &[u8] {
    match piece.iter().position(|&b| b == 0) {
        Some(i) => &piece[..i],
        None => piece,
    }
}

/// Feeds `on_line` each message `-l` makes from `reader`, as soon as its line is complete:
/// lines with their '\n', pieces of at most `MAX_LINE_PIECE` bytes, a last line without '\n'
/// as it is, each cut at its first NUL. Complete lines are handed out of the read buffer
/// without copying.
pub fn each_line<R: BufRead, E>(
    reader: &mut R,
    mut on_line: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    on_read_error: impl Fn(std::io::Error) -> E,
) -> std::result::Result<(), E> {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(on_read_error(e)),
        };
        if buf.is_empty() {
            if !pending.is_empty() {
                on_line(cut_at_nul(&pending))?;
            }
            return Ok(());
        }
        let room = MAX_LINE_PIECE - pending.len();
        let window = &buf[..buf.len().min(room)];
        let used = match window.iter().position(|&b| b == b'\n') {
            Some(newline) => Some(newline + 1),
            None if window.len() == room => Some(room),
            None => None,
        };
        match used {
            Some(end) if pending.is_empty() => {
                on_line(cut_at_nul(&buf[..end]))?;
                reader.consume(end);
            }
            Some(end) => {
                pending.extend_from_slice(&buf[..end]);
                reader.consume(end);
                on_line(cut_at_nul(&pending))?;
                pending.clear();
            }
            None => {
                let n = window.len();
                pending.extend_from_slice(window);
                reader.consume(n);
            }
        }
    }
}

/// Publishes on channel 1 and keeps count of what the broker has confirmed.
struct Publisher<'a> {
    channel: &'a Channel,
    plan: &'a Plan,
    confirms: Option<Receiver<Confirm>>,
    returns: Option<Receiver<amiquip::Return>>,
    smoother: ConfirmSmoother,
    published: u64,
    confirmed: u64,
}

/// Why publishing stopped before every message was confirmed.
enum Stop {
    /// A failure already described.
    Failed(Error),
    /// The channel or connection went away; the reason is found when closing.
    ChannelGone,
}

impl<'a> Publisher<'a> {
    fn new(channel: &'a Channel, plan: &'a Plan) -> Result<Publisher<'a>> {
        let setup = |e| Error::amqp("cannot set up the channel for publishing", e);
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
            Some(rx)
        } else {
            None
        };
        Ok(Publisher {
            channel,
            plan,
            confirms,
            returns,
            smoother: ConfirmSmoother::new(),
            published: 0,
            confirmed: 0,
        })
    }

    fn publish(&mut self, body: &[u8]) -> std::result::Result<(), Stop> {
        if self.confirms.is_some() {
            // Keep a bounded number in flight: wait for confirms once the window is full.
            while self.published - self.confirmed >= CONFIRM_WINDOW {
                self.wait_for_confirm()?;
            }
        }
        let publish = Publish {
            body,
            routing_key: self.plan.routing_key.clone(),
            mandatory: self.plan.mandatory,
            immediate: false,
            properties: self.plan.properties.clone(),
        };
        self.channel
            .basic_publish(self.plan.exchange.as_str(), publish)
            .map_err(|e| match e {
                amiquip::Error::ServerClosedChannel { .. }
                | amiquip::Error::ServerClosedConnection { .. } => {
                    Stop::Failed(self.broker_error(e))
                }
                _ => Stop::ChannelGone,
            })?;
        self.published += 1;
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

    fn wait_for_all(&mut self) -> std::result::Result<(), Stop> {
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
        while self.confirmed < self.published {
            self.wait_for_confirm()?;
        }
        self.check_returns()
    }
}

fn unroutable(ret: &amiquip::Return) -> Error {
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
    let mut publisher = match Publisher::new(&session.channel, plan) {
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
            let e = match session.close() {
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
            let result = each_line(&mut reader, |line| publisher.publish(line).map_err(Ok), Err);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], capacity: usize) -> Vec<Vec<u8>> {
        let mut reader = std::io::BufReader::with_capacity(capacity, input);
        let mut out = Vec::new();
        each_line(
            &mut reader,
            |l| {
                out.push(l.to_vec());
                Ok::<(), std::io::Error>(())
            },
            |e| e,
        )
        .unwrap();
        out
    }

    #[test]
    fn lines_like_fgets() {
        for cap in [1, 3, 8192] {
            assert_eq!(
                lines(b"l1\nl2\n\nl4 no newline", cap),
                vec![
                    b"l1\n".to_vec(),
                    b"l2\n".to_vec(),
                    b"\n".to_vec(),
                    b"l4 no newline".to_vec()
                ]
            );
            assert_eq!(
                lines(b"a\r\nb\n", cap),
                vec![b"a\r\n".to_vec(), b"b\n".to_vec()]
            );
            assert_eq!(
                lines(b"x\0y\nz\n\0abc\n", cap),
                vec![b"x".to_vec(), b"z\n".to_vec(), b"".to_vec()]
            );
            assert!(lines(b"", cap).is_empty());
        }
    }

    #[test]
    fn long_lines_are_split() {
        for cap in [7, 4096, 1 << 20] {
            let mut input = vec![b'a'; 40_000];
            input.push(b'\n');
            let got = lines(&input, cap);
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![32_767, 7_234]
            );
            let mut exact = vec![b'b'; 32_767];
            exact.push(b'\n');
            exact.extend_from_slice(b"c");
            let got = lines(&exact, cap);
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![32_767, 1, 1]
            );
        }
    }

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
            AmqpProperties::default().with_delivery_mode(1)
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
        assert_eq!(*p.properties.delivery_mode(), Some(2));
        assert_eq!(p.properties.content_type().as_deref(), Some("text/plain"));
        assert_eq!(*p.properties.priority(), Some(16));
        assert_eq!(*p.properties.timestamp(), Some(1_700_000_000));
        assert_eq!(p.properties.expiration().as_deref(), Some("60000"));
        let headers = p.properties.headers().clone().unwrap();
        assert_eq!(headers.get("k"), Some(&AmqpValue::LongString("2".into())));
        assert!(!p.confirm);
        assert_eq!(plan(&["-r", "q", "-l"]).unwrap().source, Source::Lines);
        assert_eq!(plan(&["-r", "q"]).unwrap().source, Source::Stdin);
    }
}
