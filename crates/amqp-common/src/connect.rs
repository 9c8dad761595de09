//! Opening a connection and channel 1 under one deadline, and closing them without hanging.

use crate::error::{describe_amiquip, Error, Result};
use crate::options::Endpoint;
use crate::resolve::resolve;
use crate::tls::TlsClient;
use crate::wire::frames::PROTOCOL_HEADER;
use crate::wire::{Closing, Socket, Transport, Wire, WireControl, WireOptions};
use amiquip::{Auth, Channel, Connection, ConnectionOptions, ConnectionTuning};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
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
    wire: WireControl,
}

impl Session {
    /// Closes channel and connection cleanly, as the C tools do. A broker that stopped
    /// answering does not hold the tool: the close is abandoned after a few seconds, and that
    /// is an error, since what was sent last (acks, unconfirmed publishes) may not have
    /// arrived.
    ///
    /// The channel is closed through amiquip: its close-ok means the broker has everything
    /// amiquip was asked to send before (acks are sent without waiting for an answer, and only
    /// amiquip knows when they are out).
    pub fn close(self) -> Result<()> {
        self.close_with(true)
    }

    /// Closes only the connection, for when every request made on channel 1 has had its
    /// answer (a declare-ok, a confirm for every publish), so that nothing of amiquip's is
    /// waiting to be sent: the broker closes the channel with the connection. Bounded like
    /// `close`.
    pub fn close_connection(self) -> Result<()> {
        self.close_with(false)
    }

    fn close_with(self, close_channel: bool) -> Result<()> {
        let Session {
            channel,
            connection,
            wire,
        } = self;
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let timed_out = || Error::Connection {
            context: "cannot close the connection".into(),
            reason: format!(
                "the broker did not answer within {}",
                seconds(CLOSE_TIMEOUT)
            ),
        };
        if close_channel {
            // Bounded by the wire's deadline: amiquip's reads fail once it passes.
            wire.set_deadline(Some(deadline));
            let closed = channel.close();
            wire.set_deadline(None);
            if wire.timed_out() {
                return Err(timed_out());
            }
            closed.map_err(|e| Error::amqp("cannot close the channel", e))?;
        } else {
            // amiquip's Drop for a channel would close it: a round trip for nothing.
            std::mem::forget(channel);
        }
        close_through_wire(
            connection,
            &wire,
            &crate::wire::frames::connection_close(),
            deadline,
        )
    }

    /// The connection's byte stream, for frames the tool writes itself on channel 1
    /// (amqp-consume's acks: written at once rather than queued for amiquip's I/O thread).
    pub fn wire(&self) -> &WireControl {
        &self.wire
    }

    /// Leaves the connection without the closing handshake, after a failure that already
    /// decides the exit status; the broker requeues whatever was not acked when the process
    /// exits and the socket closes. Nothing is torn down here on purpose: amiquip's I/O thread
    /// can hit an internal assertion when a connection is dropped while the broker is closing
    /// it, and the tool is about to exit anyway.
    pub fn abandon(self) {
        std::mem::forget(self);
    }

    /// Lets go of a connection that was lost, for a tool that goes on with a new one. Nothing
    /// here waits: amiquip's I/O thread, if it has not ended yet, ends at its next read (the
    /// wire's deadline passes now); a thread of its own waits (a few seconds at most) for
    /// that, then drops channel and connection, which on a dead connection send nothing and
    /// join an ended thread. Unlike `abandon`, so the descriptors (socket, timer, amiquip's
    /// wake-up pipes) are released, and connections can be lost any number of times.
    pub fn discard(self) {
        let wire = self.wire.clone();
        let watch = |s: &mut Session| s.connection.listen_for_connection_blocked().ok();
        discard(self, wire, watch);
    }

    /// Runs `work` on channel 1, then closes the session cleanly; after a failure the
    /// connection is abandoned instead (the exit status is decided, the broker requeues what
    /// was not acked). For work whose every frame is out when it returns: requests the broker
    /// answers (declare, delete), or frames written through the wire. A channel.close would
    /// have nothing left to flush, so only the connection is closed (see `close_connection`).
    pub fn finish_answered<T>(self, work: impl FnOnce(&Channel) -> Result<T>) -> Result<T> {
        match work(&self.channel) {
            Ok(value) => {
                self.close_connection()?;
                Ok(value)
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }

    /// A receiver that reports the connection's death: it disconnects when amiquip's I/O
    /// thread ends (socket closed, missed heartbeats, broker close), whatever the channels are
    /// doing. Its messages (connection.blocked / unblocked) may be ignored.
    pub fn liveness(
        &mut self,
    ) -> Result<crossbeam_channel::Receiver<amiquip::ConnectionBlockedNotification>> {
        self.connection
            .listen_for_connection_blocked()
            .map_err(|e| Error::amqp("cannot watch the connection", e))
    }

    /// Another channel on the same connection, for operations whose failure closes their
    /// channel (a passive declare of a missing queue) without disturbing channel 1.
    pub fn open_channel(&mut self) -> Result<Channel> {
        self.connection
            .open_channel(None)
            .map_err(|e| Error::amqp("cannot open a channel", e))
    }
}

/// The connection.close is ours, and so is the wait for its close-ok: amiquip's I/O thread
/// sees the close-ok too and stops by itself. Closing through amiquip would make this thread
/// wait for that one, and that one for its timer thread, only to exit. `frames` ends with the
/// connection.close.
fn close_through_wire(
    connection: Connection,
    wire: &WireControl,
    frames: &[u8],
    deadline: Instant,
) -> Result<()> {
    let result = wire.close(frames, deadline);
    std::mem::forget(connection);
    result.map_err(|failure| Error::Connection {
        context: "cannot close the connection".into(),
        reason: match failure {
            Closing::TimedOut => format!(
                "the broker did not answer within {}",
                seconds(CLOSE_TIMEOUT)
            ),
            Closing::Gone => "the connection to the broker was lost".into(),
        },
    })
}

/// Lets a lost connection go without waiting: the wire's deadline ends amiquip's I/O thread at
/// its next read, and a helper thread drops what it holds once that thread has ended (its
/// socket, timer and amiquip's pipes are released: a reconnecting tool would leak them
/// otherwise). If the thread has not ended within `CLOSE_TIMEOUT`, it is kept instead: dropping
/// a connection whose thread still runs may trip amiquip.
fn discard<T: Send + 'static>(
    mut held: T,
    wire: WireControl,
    watch: impl FnOnce(
        &mut T,
    )
        -> Option<crossbeam_channel::Receiver<amiquip::ConnectionBlockedNotification>>,
) {
    wire.set_deadline(Some(Instant::now()));
    // Disconnects when the I/O thread ends; fails at once if it has.
    let watch = watch(&mut held);
    std::thread::spawn(move || {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let ended = match watch {
            None => true,
            Some(rx) => loop {
                match rx.recv_deadline(deadline) {
                    Ok(_) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break true,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => break false,
                }
            },
        };
        if ended {
            drop(held);
        } else {
            std::mem::forget(held);
        }
    });
}

/// An open connection whose channel 1 the tool drives through the wire (amqp-publish): the
/// broker opened the channel with the connection, amiquip keeps the connection (heartbeats,
/// the handshake's state) and never hears of the channel.
pub struct WireSession {
    connection: Connection,
    wire: WireControl,
}

impl WireSession {
    /// The connection's byte stream, where the tool writes and reads channel 1.
    pub fn wire(&self) -> &WireControl {
        &self.wire
    }

    /// Closes the connection (the broker closes the channel with it), bounded like
    /// `Session::close`.
    pub fn close_connection(self) -> Result<()> {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        close_through_wire(
            self.connection,
            &self.wire,
            &crate::wire::frames::connection_close(),
            deadline,
        )
    }

    /// After the broker closed channel 1: answers it (channel.close-ok), then closes the
    /// connection.
    pub fn close_after_channel_closed(self) -> Result<()> {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut frames = crate::wire::frames::channel_close_ok(1);
        frames.extend_from_slice(&crate::wire::frames::connection_close());
        close_through_wire(self.connection, &self.wire, &frames, deadline)
    }

    /// See `Session::abandon`.
    pub fn abandon(self) {
        std::mem::forget(self);
    }

    /// Ends the session after channel 1 or the connection went away during `context`, and
    /// says why: the broker closed the channel (e.g. 404, no such queue or exchange; the
    /// channel.close is answered and the connection closed properly), or the connection (the
    /// wire kept the reason), or the connection was lost.
    pub fn gone(self, context: String) -> Error {
        if let Some((code, text)) = self.wire.channel_closed() {
            let _ = self.close_after_channel_closed();
            return Error::Broker {
                context,
                code,
                text,
            };
        }
        match self.wire.close_reason() {
            Some((code, text)) => {
                self.abandon();
                Error::Broker {
                    context,
                    code,
                    text,
                }
            }
            None => {
                // Released, not forgotten: amqp-publish --reconnect goes on after this, any
                // number of times.
                self.discard();
                Error::Connection {
                    context,
                    reason: "the connection to the broker was lost".into(),
                }
            }
        }
    }

    /// See `Session::discard`.
    pub fn discard(self) {
        let wire = self.wire.clone();
        let watch = |s: &mut WireSession| s.connection.listen_for_connection_blocked().ok();
        discard(self, wire, watch);
    }
}

impl Endpoint {
    /// Resolves, connects, logs in and opens channel 1, all within `connect_timeout`.
    pub fn connect(&self) -> Result<Session> {
        let deadline = Instant::now() + self.connect_timeout;
        let (mut connection, control) = self.handshake(deadline)?;
        // Sent with connection.open already (see wire): this only collects the open-ok.
        let channel = connection.open_channel(Some(1));
        control.set_deadline(None);
        let channel = match channel {
            Ok(channel) => channel,
            Err(_) if control.timed_out() => return Err(self.connect_error(self.timeout_reason())),
            Err(e) => return Err(Error::amqp("cannot open a channel", e)),
        };
        Ok(Session {
            channel,
            connection,
            wire: control,
        })
    }

    /// Like `connect`, for a tool that speaks on channel 1 through the wire itself
    /// (amqp-publish): the broker opens the channel with the connection, and nothing waits
    /// for amiquip to take it up.
    pub fn open(&self) -> Result<WireSession> {
        let deadline = Instant::now() + self.connect_timeout;
        let (connection, wire) = self.handshake(deadline)?;
        wire.set_deadline(None);
        Ok(WireSession { connection, wire })
    }

    fn connect_error(&self, reason: String) -> Error {
        Error::Connect {
            target: self.target(),
            reason,
        }
    }

    /// Resolves, connects and logs in by `deadline`; the wire's deadline is still set.
    fn handshake(&self, deadline: Instant) -> Result<(Connection, WireControl)> {
        let fail = |reason: String| self.connect_error(reason);
        // The PEM files are read first: a bad --cacert is reported without touching the network.
        let tls = self.tls.as_ref().map(TlsClient::new).transpose()?;
        let addrs = resolve(&self.host, self.port, deadline).map_err(&fail)?;
        let tcp = connect_any(&addrs, deadline).map_err(&fail)?;
        // Small frames (acks, one-line messages) must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().ok();
        let mut socket = Socket::new(tcp);
        socket
            .blocking_until(deadline)
            .map_err(|e| fail(crate::error::io_reason(&e)))?;
        let mut transport = match &tls {
            None => Transport::Plain(socket),
            Some(tls) => match tls.handshake(&self.host, socket) {
                Ok(stream) => Transport::Tls(Box::new(stream)),
                Err(_) if Instant::now() >= deadline => return Err(fail(self.timeout_reason())),
                Err(text) => return Err(fail(tls.explain(&text, &self.host, peer, deadline))),
            },
        };
        // At once: the broker takes a while to answer it, and amiquip's threads start meanwhile.
        if let Err(e) = transport.write_all(PROTOCOL_HEADER) {
            return Err(match &tls {
                _ if Instant::now() >= deadline => fail(self.timeout_reason()),
                // A TLS 1.3 broker that refuses the client certificate says so right after
                // the handshake, which this first write may meet as an alert or a reset.
                Some(tls) => match tls_text(&e) {
                    Some(text) => fail(tls.explain(&text, &self.host, peer, deadline)),
                    None if io_dropped(&e) => fail(
                        peer.and_then(|addr| tls.diagnose_reset(&self.host, addr, deadline))
                            .unwrap_or_else(|| crate::error::io_reason(&e).to_lowercase()),
                    ),
                    None => fail(crate::error::io_reason(&e).to_lowercase()),
                },
                None => fail(crate::error::io_reason(&e).to_lowercase()),
            });
        }
        let nonblocking = match &mut transport {
            Transport::Plain(s) => s.nonblocking(),
            Transport::Tls(tls) => tls.get_mut().nonblocking(),
        };
        nonblocking.map_err(|e| fail(crate::error::io_reason(&e)))?;
        let (wire, control) = Wire::new(
            transport,
            WireOptions {
                frame_max: FRAME_MAX,
                connection_name: crate::cli::program_name().to_string(),
                open_channel: Some(1),
            },
        )
        .map_err(|e| fail(crate::error::io_reason(&e)))?;
        control.set_deadline(Some(deadline));
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
        let opened = Connection::insecure_open_stream(wire, options, ConnectionTuning::default());
        let connection = match opened {
            Ok(_) | Err(_) if control.timed_out() => return Err(fail(self.timeout_reason())),
            Ok(connection) => connection,
            Err(e) => {
                if let Some((code, text)) = control.close_reason() {
                    return Err(self.refused(code, &text));
                }
                return Err(match (&tls, tls_failure(&e)) {
                    (Some(tls), Some(text)) => fail(tls.explain(&text, &self.host, peer, deadline)),
                    (Some(tls), None) if dropped(&e) => peer
                        .and_then(|addr| tls.diagnose_reset(&self.host, addr, deadline))
                        .map_or_else(|| self.handshake_error(e), fail),
                    _ => self.handshake_error(e),
                });
            }
        };
        Ok((connection, control))
    }

    fn timeout_reason(&self) -> String {
        let limit = seconds(self.connect_timeout);
        if self.tls.is_some() {
            format!(
                "the TLS and AMQP handshakes did not complete within {limit} (see --connect-timeout)"
            )
        } else {
            format!("no AMQP handshake within {limit} (see --connect-timeout)")
        }
    }

    /// The broker closed the connection during the handshake, saying why: a refused login
    /// (403 ACCESS_REFUSED, which the broker sends at once because the tools advertise the
    /// `authentication_failure_close` capability), an unknown or forbidden vhost (530), ...
    fn refused(&self, code: u16, text: &str) -> Error {
        if code == 403 {
            Error::Login(format!(
                "the broker refused user '{}' with this password ({code} {text})",
                self.user
            ))
        } else {
            Error::Login(format!("{code} {text}"))
        }
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
                reason: self.timeout_reason(),
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

/// The OpenSSL text of a failure in TLS after the handshake, in the first reads or writes
/// (TLS 1.3 servers reject a missing or untrusted client certificate only then).
fn tls_text(e: &std::io::Error) -> Option<String> {
    let text = e.to_string();
    (text.contains("SSL") || text.contains("ssl")).then_some(text)
}

/// The peer reset or closed the connection (rather than answering with something).
fn io_dropped(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    )
}

fn tls_failure(e: &amiquip::Error) -> Option<String> {
    use amiquip::Error as A;
    match e {
        A::IoErrorReadingSocket { source } | A::IoErrorWritingSocket { source } => tls_text(source),
        _ => None,
    }
}

fn dropped(e: &amiquip::Error) -> bool {
    use amiquip::Error as A;
    match e {
        A::UnexpectedSocketClose => true,
        A::IoErrorReadingSocket { source } | A::IoErrorWritingSocket { source } => {
            io_dropped(source)
        }
        _ => false,
    }
}
