//! Every failure of every tool, as one type, so that the message format and the exit code are
//! decided in one place (`exit_code`, `report`).

use std::fmt;

/// A failure that ends the tool.
#[derive(Debug)]
pub enum Error {
    /// The command line is wrong (unknown option, bad number, missing operand, ...). Exit 1.
    Usage(String),
    /// The options do not fit together, or a file they name is unusable. Exit 1.
    Config(String),
    /// The broker could not be reached: DNS, TCP, TLS, or a peer that is not an AMQP broker.
    Connect { target: String, reason: String },
    /// The broker refused the login or the virtual host.
    Login(String),
    /// The broker answered an operation with an error (a channel or connection exception).
    Broker {
        context: String,
        code: u16,
        text: String,
    },
    /// The connection failed during an operation (closed, reset, timed out, protocol error).
    Connection { context: String, reason: String },
    /// A local I/O failure (reading stdin, starting a command, ...).
    Io { context: String, reason: String },
    /// Not a failure to report: the tool ends with this status and prints nothing
    /// (amqp-get on an empty queue, a failed child's status under --fail-fast, a signal).
    Status(i32),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The status of every reported failure, as the C tools do.
pub const FAILURE: i32 = 1;

/// The status of a tool stopped by signal `sig` (as a shell reports a process it killed).
pub fn signal_status(sig: i32) -> i32 {
    128 + sig
}

impl Error {
    /// The exit status for this failure: 1 for every reported error, as the C tools do.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Status(code) => *code,
            _ => FAILURE,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn config(msg: impl Into<String>) -> Error {
        Error::Config(msg.into())
    }

    pub fn io(context: impl Into<String>, e: &std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            reason: io_reason(e),
        }
    }

    /// An amiquip error raised while doing `context` (e.g. "cannot declare queue 'x'").
    pub fn amqp(context: impl Into<String>, e: amiquip::Error) -> Error {
        use amiquip::Error as A;
        let context = context.into();
        match e {
            A::ServerClosedChannel { code, message, .. }
            | A::ServerClosedConnection { code, message } => Error::Broker {
                context,
                code,
                text: message,
            },
            A::InvalidCredentials => Error::Login(
                "the broker refused the user name or password (403 ACCESS_REFUSED)".into(),
            ),
            other => Error::Connection {
                context,
                reason: describe_amiquip(&other),
            },
        }
    }
}

/// A short, lower-case reason for an amiquip failure, without URLs (they may hold passwords).
pub fn describe_amiquip(e: &amiquip::Error) -> String {
    use amiquip::Error as A;
    match e {
        A::UnexpectedSocketClose => "the connection was closed by the peer".into(),
        // The frame guard's own explanation of a peer that does not speak AMQP.
        A::IoErrorReadingSocket { source } if source.kind() == std::io::ErrorKind::InvalidData => {
            source.to_string()
        }
        A::IoErrorReadingSocket { source } | A::IoErrorWritingSocket { source } => {
            format!("connection failed: {}", io_reason(source))
        }
        A::MalformedFrame => "the peer sent data that is not AMQP 0-9-1".into(),
        A::ConnectionTimeout => "the broker did not answer in time".into(),
        A::MissedServerHeartbeats => "the broker stopped sending heartbeats".into(),
        A::ClientClosedConnection | A::EventLoopDropped | A::EventLoopClientDropped => {
            "the connection is closed".into()
        }
        A::ClientClosedChannel => "the channel is closed".into(),
        A::FrameUnexpected => "the broker sent an unexpected frame".into(),
        A::UnsupportedAuthMechanism { available, .. } => {
            format!("the broker does not offer PLAIN login (it offers: {available})")
        }
        A::ServerClosedChannel { code, message, .. }
        | A::ServerClosedConnection { code, message } => format!("{code} {message}"),
        other => other.to_string(),
    }
}

/// The OS error text without Rust's "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Config(m) => f.write_str(m),
            Error::Connect { target, reason } => write!(f, "cannot connect to {target}: {reason}"),
            Error::Login(reason) => write!(f, "login failed: {reason}"),
            Error::Broker {
                context,
                code,
                text,
            } => write!(f, "{context}: {code} {text}"),
            Error::Connection { context, reason } => write!(f, "{context}: {reason}"),
            Error::Io { context, reason } => write!(f, "{context}: {reason}"),
            Error::Status(code) => write!(f, "exit status {code}"),
        }
    }
}

impl std::error::Error for Error {}

/// Prints the error as one line on stderr, prefixed by the program name, and returns the exit
/// status. `Status` prints nothing.
pub fn report(program: &str, e: &Error) -> i32 {
    if !matches!(e, Error::Status(_)) {
        // One line, whatever the broker or the OS put in the text.
        let line = e.to_string().replace(['\n', '\r'], " ");
        eprintln!("{program}: {line}");
    }
    e.exit_code()
}
