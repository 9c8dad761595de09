//! Opening a connection and channel 1 under one deadline, and closing them without hanging.

use crate::error::{describe_amiquip, Error, Result};
use crate::options::Endpoint;
use amiquip::{Auth, Channel, Connection, ConnectionOptions, ConnectionTuning};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The frame size the C tools ask for.
const FRAME_MAX: u32 = 131_072;

/// How long a clean close may take before the tool exits anyway: the broker already has all
/// acks and confirms by then, so waiting longer would only delay the exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection with its channel 1, where all the work happens.
pub struct Session {
    pub channel: Channel,
    connection: Connection,
}

impl Session {
    /// Closes channel and connection cleanly, as the C tools do. A broker that stopped
    /// answering does not hold the tool: the close is abandoned after a few seconds.
    pub fn close(self) -> Result<()> {
        let Session {
            channel,
            connection,
        } = self;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let result = channel
                .close()
                .map_err(|e| Error::amqp("cannot close the channel", e))
                .and_then(|()| {
                    connection
                        .close()
                        .map_err(|e| Error::amqp("cannot close the connection", e))
                });
            let _ = tx.send(result);
        });
        rx.recv_timeout(CLOSE_TIMEOUT).unwrap_or(Ok(()))
    }

    /// Drops the connection without the closing handshake (after a failure that already
    /// decides the exit status); the broker requeues whatever was not acked.
    pub fn abandon(self) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(self);
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
}

impl Endpoint {
    /// Resolves, connects, logs in and opens channel 1, all within `connect_timeout`.
    pub fn connect(&self) -> Result<Session> {
        let deadline = Instant::now() + self.connect_timeout;
        let fail = |reason: String| Error::Connect {
            target: self.target(),
            reason,
        };
        if self.tls.is_some() {
            return Err(fail(
                "TLS (amqps:// or --ssl) is not supported by this build yet".into(),
            ));
        }
        let addrs = resolve(&self.host, self.port, deadline).map_err(&fail)?;
        let stream = connect_any(&addrs, deadline).map_err(&fail)?;
        // Small frames (acks, one-line messages) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let stream = mio::net::TcpStream::from_stream(stream)
            .map_err(|e| fail(crate::error::io_reason(&e)))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let options = ConnectionOptions::default()
            .auth(Auth::Plain {
                username: self.user.clone(),
                password: self.password.clone(),
            })
            .virtual_host(self.vhost.clone())
            .heartbeat(self.heartbeat)
            .frame_max(FRAME_MAX)
            .channel_max(0)
            .connection_timeout(Some(remaining.max(Duration::from_millis(1))));
        let mut connection =
            Connection::insecure_open_stream(stream, options, ConnectionTuning::default())
                .map_err(|e| self.handshake_error(e))?;
        let channel = connection
            .open_channel(Some(1))
            .map_err(|e| Error::amqp("cannot open a channel", e))?;
        Ok(Session {
            channel,
            connection,
        })
    }

    fn handshake_error(&self, e: amiquip::Error) -> Error {
        use amiquip::Error as A;
        match e {
            A::InvalidCredentials => Error::Login(format!(
                "the broker refused user '{}' with this password (ACCESS_REFUSED)",
                self.user
            )),
            A::ServerClosedConnection { code, message } => {
                Error::Login(format!("{code} {message}"))
            }
            A::UnexpectedSocketClose => Error::Connect {
                target: self.target(),
                reason: "the peer closed the connection during the AMQP handshake \
                         (is this an AMQP 0-9-1 broker port?)"
                    .into(),
            },
            A::MalformedFrame | A::FrameUnexpected => Error::Connect {
                target: self.target(),
                reason: "the peer does not speak AMQP 0-9-1".into(),
            },
            A::ConnectionTimeout => Error::Connect {
                target: self.target(),
                reason: format!(
                    "no AMQP handshake within {} (see --connect-timeout)",
                    seconds(self.connect_timeout)
                ),
            },
            other => Error::Connect {
                target: self.target(),
                reason: describe_amiquip(&other),
            },
        }
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// DNS under the deadline: the resolver has no timeout of its own, so it runs on a thread that
/// is abandoned if it takes too long.
fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> std::result::Result<Vec<SocketAddr>, String> {
    if host.is_empty() {
        return Err("empty host name".into());
    }
    let (tx, rx) = mpsc::channel();
    let query = (host.to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(query.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(format!("host name '{host}' has no address")),
        Ok(Err(_)) => Err(format!("cannot resolve host name '{host}'")),
        Err(_) => Err(format!(
            "resolving '{host}' took too long (see --connect-timeout)"
        )),
    }
}

fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> std::result::Result<TcpStream, String> {
    let mut last = String::from("no address to try");
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("timed out (see --connect-timeout)".into());
        }
        match TcpStream::connect_timeout(addr, remaining) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = "timed out (see --connect-timeout)".into();
            }
            Err(e) => last = crate::error::io_reason(&e).to_lowercase(),
        }
    }
    Err(last)
}
