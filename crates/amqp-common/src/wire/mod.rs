//! The byte stream amiquip talks through, and what the tools do with it beside amiquip.
//!
//! amiquip owns the protocol state (handshake, channels, replies, heartbeats) and runs it on its
//! I/O thread, except on channel 1 when amqp-publish or amqp-get speak there alone (`confirms`); it reads and writes the connection only through a `Wire`. The tools
//! keep a `WireControl` to the same connection, and the wire between the two:
//!
//! - checks every inbound frame header before amiquip trusts it (`scan`);
//! - sends the protocol header as soon as the socket is connected, so the broker prepares its
//!   connection.start while amiquip's threads are still starting;
//! - gives connection.start-ok the client capabilities amiquip does not advertise (a refused
//!   login is then reported at once, not after three seconds);
//! - opens channel 1 in the same write as connection.open, and hands amiquip the broker's
//!   channel.open-ok when amiquip asks for channel 1 (a round trip fewer per invocation);
//! - bounds the handshake and the close by a deadline without a thread of its own: a timerfd,
//!   registered with amiquip's poll under the socket's token, wakes amiquip's reader, and the
//!   read fails once the deadline has passed;
//! - lets the tools write their own frames between two of amiquip's frames (`WireControl::send`)
//!   and wait for the broker's answers on channel 1 (`take_channel`, `basic_get`, `barrier`,
//!   `wait_confirmed`): how amqp-publish publishes and amqp-get gets.

mod confirms;
pub mod frames;
pub mod scan;
mod timer;

use confirms::Confirms;
pub use confirms::{Got, Returned};

use frames::{
    CHANNEL_CLOSE, CHANNEL_OPEN, CHANNEL_OPEN_OK, CONNECTION_CLOSE, CONNECTION_CLOSE_OK,
    CONNECTION_OPEN, CONNECTION_START_OK, CONNECTION_TUNE_OK, PROTOCOL_HEADER,
};
use mio::unix::EventedFd;
use mio::{Evented, Poll, PollOpt, Ready, Token};
use scan::{whole_frame, FrameScanner, FrameStart};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use timer::Timer;

/// The TCP socket under the wire. While `deadline` is set (the TLS handshake), it is blocking
/// and every read and write is bounded by what is left until the deadline.
pub struct Socket {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

impl Socket {
    pub fn new(tcp: TcpStream) -> Socket {
        Socket {
            tcp,
            deadline: None,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Blocking I/O, each call bounded by the time left until `deadline`.
    pub fn blocking_until(&mut self, deadline: Instant) -> io::Result<()> {
        self.deadline = Some(deadline);
        self.tcp.set_nonblocking(false)
    }

    /// Non-blocking I/O, for amiquip's poll loop.
    pub fn nonblocking(&mut self) -> io::Result<()> {
        self.deadline = None;
        self.tcp.set_read_timeout(None)?;
        self.tcp.set_write_timeout(None)?;
        self.tcp.set_nonblocking(true)
    }

    fn bound(&self) -> io::Result<()> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.set_write_timeout(Some(left))
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.bound()?;
        self.tcp.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bound()?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plain TCP, or TLS over it (the TLS handshake is done before the wire is made).
pub enum Transport {
    Plain(Socket),
    Tls(Box<native_tls::TlsStream<Socket>>),
}

impl Transport {
    fn socket(&self) -> &Socket {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(tls) => tls.flush(),
        }
    }
}

/// What the wire does during the handshake.
pub struct WireOptions {
    /// The largest inbound frame accepted (what the tools ask for in connection.tune-ok).
    pub frame_max: u32,
    /// Shown by the broker as the connection's name (the tool's name).
    pub connection_name: String,
    /// Open this channel together with the connection (the channel amiquip is asked for first).
    pub open_channel: Option<u16>,
}

/// The channel whose frames a publisher writes (see `WireControl::send`).
const PUBLISH_CHANNEL: u16 = 1;

/// The early channel.open, from connection.open until amiquip asks for the channel.
#[derive(Debug, PartialEq, Eq)]
enum EarlyOpen {
    /// Not used, or over.
    Off,
    /// To be sent right after connection.open.
    Armed(u16),
    /// Sent; the broker's open-ok is held here if it comes before amiquip asks.
    Sent { channel: u16, held: Option<Vec<u8>> },
    /// amiquip asked (its channel.open was not sent again); the open-ok is passed on.
    Asked(u16),
}

struct State {
    transport: Transport,
    /// Bytes of the protocol header amiquip writes first, which was already sent.
    header_left: usize,
    /// amiquip's outbound frames.
    outbound: FrameScanner,
    /// Frames of ours that must be written before amiquip's next bytes.
    pending: Vec<u8>,
    pending_at: usize,
    /// Until the handshake's frames have gone by: the client properties to rewrite.
    connection_name: Option<String>,
    early_open: EarlyOpen,
    /// The connection's frame_max, once amiquip has sent connection.tune-ok.
    frame_max: u32,
    /// Inbound frames, checked.
    inbound: FrameScanner,
    /// Inbound frames are looked at whole until the handshake is over: an early
    /// channel.open-ok may have to be held back, and a connection.close tells why the broker
    /// refused the connection (amiquip reports a refused login without the broker's reason).
    inbound_whole: bool,
    close_reason: Option<(u16, String)>,
    /// Inbound bytes read but not yet handed to amiquip: complete frames in `ready`, a frame's
    /// beginning in `staged`.
    ready: Vec<u8>,
    ready_at: usize,
    staged: Vec<u8>,
    deadline: Option<Instant>,
    timed_out: bool,
    /// The broker is closing the publish channel or the connection: nothing more of ours may
    /// be sent on it.
    stopped: bool,
    /// The confirms and returns of the publish channel, once a publisher asked for them
    /// (inbound frames are then looked at whole for good).
    confirms: Option<Confirms>,
    /// A publisher waiting in `wait_confirmed` must look again.
    wake_publisher: bool,
    /// Our connection.close is sent: from then on only `WireControl::close` reads.
    closing: bool,
    /// The broker has answered a connection.close (see `WireControl::close`).
    close_ok: bool,
    /// amiquip is done with the connection (its I/O thread ended).
    dead: bool,
}

struct Shared {
    fd: RawFd,
    timer: Timer,
    state: Mutex<State>,
    /// Signalled when amiquip's outbound stream reaches a frame boundary, and when what a
    /// publisher waits for has come (see `Confirms`).
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The stream amiquip reads and writes.
pub struct Wire {
    shared: Arc<Shared>,
}

/// The tools' hold on the connection amiquip runs.
#[derive(Clone)]
pub struct WireControl {
    shared: Arc<Shared>,
}

/// Why `WireControl::close` did not see the broker's connection.close-ok.
#[derive(Debug, PartialEq, Eq)]
pub enum Closing {
    /// The connection went away first (the broker closed it, or it broke).
    Gone,
    /// The deadline passed.
    TimedOut,
}

/// The connection cannot take our frames any more: the broker is closing the channel or the
/// connection, or the connection is gone. The reason is amiquip's to report.
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

impl Wire {
    /// A wire over a connected transport on which the protocol header has already been sent.
    pub fn new(transport: Transport, options: WireOptions) -> io::Result<(Wire, WireControl)> {
        let fd = transport.socket().tcp().as_raw_fd();
        let state = State {
            transport,
            header_left: PROTOCOL_HEADER.len(),
            outbound: FrameScanner::new(u32::MAX),
            pending: Vec::new(),
            pending_at: 0,
            connection_name: Some(options.connection_name),
            early_open: options
                .open_channel
                .map_or(EarlyOpen::Off, EarlyOpen::Armed),
            frame_max: options.frame_max,
            inbound: FrameScanner::new(options.frame_max),
            inbound_whole: true,
            close_reason: None,
            ready: Vec::new(),
            ready_at: 0,
            staged: Vec::new(),
            deadline: None,
            timed_out: false,
            stopped: false,
            confirms: None,
            wake_publisher: false,
            closing: false,
            close_ok: false,
            dead: false,
        };
        let shared = Arc::new(Shared {
            fd,
            timer: Timer::new()?,
            state: Mutex::new(state),
            changed: Condvar::new(),
        });
        let control = WireControl {
            shared: Arc::clone(&shared),
        };
        Ok((Wire { shared }, control))
    }
}

impl State {
    fn check_deadline(&mut self) -> io::Result<()> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.timed_out = true;
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline passed",
            ));
        }
        Ok(())
    }

    /// Ends the handshake's look at whole inbound frames: what is staged goes to amiquip as
    /// it is, and the rest as it comes.
    fn inbound_passes(&mut self) {
        self.inbound_whole = false;
        self.ready.append(&mut self.staged);
    }

    /// Checks inbound bytes and notes what concerns our frames.
    fn observe_inbound(&mut self, data: &[u8]) -> io::Result<()> {
        let stopped = &mut self.stopped;
        let close_ok = &mut self.close_ok;
        self.inbound
            .feed(data, |start| match start.method {
                Some(CONNECTION_CLOSE) => *stopped = true,
                Some(CONNECTION_CLOSE_OK) => *close_ok = true,
                Some(CHANNEL_CLOSE) if start.channel == PUBLISH_CHANNEL => *stopped = true,
                _ => {}
            })
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))
    }

    /// Moves the complete frames of `staged` to `ready`, keeping back the early channel's
    /// open-ok until amiquip asks for that channel, and noting a connection.close.
    fn sort_staged(&mut self) {
        let mut at = 0;
        while let Some((start, len)) = whole_frame(&self.staged[at..]) {
            let frame = &self.staged[at..at + len];
            if start.method == Some(CONNECTION_CLOSE) {
                self.close_reason = frames::close_reason(frame);
            }
            if let Some(confirms) = self.confirms.as_mut() {
                if start.channel == PUBLISH_CHANNEL {
                    // The publisher's channel: amiquip does not know it.
                    self.wake_publisher |= confirms.take(start.kind, start.method, frame);
                    at += len;
                    continue;
                }
            }
            match &mut self.early_open {
                EarlyOpen::Sent { channel, held }
                    if start.method == Some(CHANNEL_OPEN_OK) && start.channel == *channel =>
                {
                    *held = Some(frame.to_vec());
                }
                EarlyOpen::Asked(channel)
                    if start.method == Some(CHANNEL_OPEN_OK) && start.channel == *channel =>
                {
                    self.ready.extend_from_slice(frame);
                    self.early_open = EarlyOpen::Off;
                }
                _ => self.ready.extend_from_slice(frame),
            }
            at += len;
        }
        self.staged.drain(..at);
        if self.early_open == EarlyOpen::Off
            && self.connection_name.is_none()
            && self.confirms.is_none()
        {
            self.inbound_passes();
        }
    }

    fn take_ready(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.ready_at >= self.ready.len() {
            return None;
        }
        let n = buf.len().min(self.ready.len() - self.ready_at);
        buf[..n].copy_from_slice(&self.ready[self.ready_at..self.ready_at + n]);
        self.ready_at += n;
        if self.ready_at == self.ready.len() {
            self.ready.clear();
            self.ready_at = 0;
        }
        Some(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = self.take_ready(buf) {
            return Ok(n);
        }
        if !self.inbound_whole {
            let n = self.transport.read(buf)?;
            self.observe_inbound(&buf[..n])?;
            return Ok(n);
        }
        loop {
            let n = self.transport.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            self.observe_inbound(&buf[..n])?;
            self.staged.extend_from_slice(&buf[..n]);
            self.sort_staged();
            if let Some(n) = self.take_ready(buf) {
                return Ok(n);
            }
        }
    }

    /// Writes what is owed before amiquip's next bytes; WouldBlock when the socket is full.
    fn flush_pending(&mut self) -> io::Result<()> {
        while self.pending_at < self.pending.len() {
            match self.transport.write(&self.pending[self.pending_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pending_at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.pending_at = 0;
        Ok(())
    }

    /// Writes `bytes` completely, waiting for the socket if it must (only during the
    /// handshake, when the send buffer is empty, so in practice it never waits).
    fn write_fully(&mut self, fd: RawFd, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        loop {
            match self.flush_pending() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.check_deadline()?;
                    wait_writable(fd, Duration::from_millis(100))?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One frame of amiquip's handshake, whole: rewritten, extended, held back or passed on.
    /// Returns how many of amiquip's bytes were taken, None to write it as it is.
    fn handshake_frame(
        &mut self,
        shared: &Shared,
        frame: &[u8],
        start: FrameStart,
    ) -> io::Result<Option<usize>> {
        match start.method {
            Some(CONNECTION_START_OK) => {
                let Some(name) = self.connection_name.take() else {
                    return Ok(None);
                };
                match frames::rewrite_start_ok(frame, &name) {
                    Some(rewritten) => self.write_fully(shared.fd, &rewritten)?,
                    None => self.write_fully(shared.fd, frame)?,
                }
                Ok(Some(frame.len()))
            }
            Some(CONNECTION_TUNE_OK) => {
                if let Some(frame_max) = frames::tune_ok_frame_max(frame) {
                    self.frame_max = frame_max;
                }
                Ok(None)
            }
            Some(CONNECTION_OPEN) => {
                let EarlyOpen::Armed(channel) = self.early_open else {
                    return Ok(None);
                };
                let mut both = frame.to_vec();
                both.extend_from_slice(&frames::channel_open(channel));
                self.write_fully(shared.fd, &both)?;
                self.early_open = EarlyOpen::Sent {
                    channel,
                    held: None,
                };
                Ok(Some(frame.len()))
            }
            Some(CHANNEL_OPEN) => match &mut self.early_open {
                EarlyOpen::Sent { channel, held } if *channel == start.channel => {
                    // Already sent with connection.open: not again.
                    match held.take() {
                        Some(open_ok) => {
                            self.ready.extend_from_slice(&open_ok);
                            self.early_open = EarlyOpen::Off;
                            self.inbound_passes();
                            // amiquip waits on its poll: wake its reader for the open-ok.
                            shared.timer.fire_now();
                        }
                        None => self.early_open = EarlyOpen::Asked(start.channel),
                    }
                    Ok(Some(frame.len()))
                }
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    fn handshaking(&self) -> bool {
        self.connection_name.is_some() || self.early_open != EarlyOpen::Off
    }

    fn write(&mut self, shared: &Shared, buf: &[u8]) -> io::Result<usize> {
        match self.flush_pending() {
            Ok(()) => {}
            // Ours are not all out and the socket is full: amiquip waits for it too.
            Err(e) => return Err(e),
        }
        if self.header_left > 0 {
            let n = self.header_left.min(buf.len());
            self.header_left -= n;
            return Ok(n);
        }
        let mut buf = buf;
        if self.handshaking() && self.outbound.at_boundary() {
            if let Some((start, len)) = whole_frame(buf) {
                if let Some(taken) = self.handshake_frame(shared, &buf[..len], start)? {
                    return Ok(taken);
                }
                buf = &buf[..len];
            }
        }
        let n = self.transport.write(buf)?;
        // amiquip's frames are well formed; the scanner only follows their boundaries.
        let _ = self.outbound.feed(&buf[..n], |_| {});
        if self.outbound.at_boundary() {
            shared.changed.notify_all();
        }
        Ok(n)
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if shared.timer.clear() {
            // A wake-up or the deadline: the deadline stays armed until it passes or is lifted.
            shared.timer.arm(state.deadline);
        }
        state.check_deadline()?;
        if state.closing {
            // The closing thread reads the rest itself (it waits in poll, which would not
            // see bytes taken here).
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let result = state.read(buf);
        if std::mem::take(&mut state.wake_publisher) || (state.stopped && state.confirms.is_some())
        {
            shared.changed.notify_all();
        }
        result
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        state.check_deadline()?;
        state.write(shared, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Evented for Wire {
    fn register(
        &self,
        poll: &Poll,
        token: Token,
        interest: Ready,
        opts: PollOpt,
    ) -> io::Result<()> {
        EventedFd(&self.shared.fd).register(poll, token, interest, opts)?;
        // Under the same token: when the timer fires, amiquip reads, and the read reports
        // the deadline or returns what was held back.
        EventedFd(&self.shared.timer.fd()).register(poll, token, Ready::readable(), PollOpt::edge())
    }

    fn reregister(
        &self,
        poll: &Poll,
        token: Token,
        interest: Ready,
        opts: PollOpt,
    ) -> io::Result<()> {
        EventedFd(&self.shared.fd).reregister(poll, token, interest, opts)
    }

    fn deregister(&self, poll: &Poll) -> io::Result<()> {
        EventedFd(&self.shared.fd).deregister(poll)?;
        EventedFd(&self.shared.timer.fd()).deregister(poll)
    }
}

impl amiquip::IoStream for Wire {}

impl Drop for Wire {
    /// amiquip drops its stream when its I/O thread ends: a publisher waiting for the socket
    /// must not wait for a connection nobody reads.
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.dead = true;
        let _ = state
            .transport
            .socket()
            .tcp()
            .shutdown(std::net::Shutdown::Both);
        self.shared.changed.notify_all();
    }
}

/// Waits until `fd` can be written, or `limit` has passed.
fn wait_writable(fd: RawFd, limit: Duration) -> io::Result<()> {
    wait_for(fd, libc::POLLOUT, limit)
}

/// Waits until `fd` has `events`, or `limit` has passed.
fn wait_for(fd: RawFd, events: libc::c_short, limit: Duration) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = limit.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, for the duration of the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

impl WireControl {
    /// Bounds amiquip's reads and writes: once `deadline` passes, the next one fails (the
    /// timer makes amiquip read even when the broker is silent). None lifts the bound.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        let mut state = self.shared.lock();
        state.deadline = deadline;
        self.shared.timer.arm(deadline);
    }

    /// Whether a read or write failed because the deadline had passed.
    pub fn timed_out(&self) -> bool {
        self.shared.lock().timed_out
    }

    /// The broker's reason for closing the connection during the handshake (reply code and
    /// text), when it gave one.
    pub fn close_reason(&self) -> Option<(u16, String)> {
        self.shared.lock().close_reason.clone()
    }

    /// The connection's frame_max (as negotiated in connection.tune-ok).
    pub fn frame_max(&self) -> u32 {
        self.shared.lock().frame_max
    }

    /// Closes the connection: writes `frames` (a connection.close), then reads until the
    /// broker's connection.close-ok, here rather than on amiquip's thread (whose reads find
    /// nothing from then on), so that nothing waits for a thread to be woken.
    pub fn close(&self, frames: &[u8], deadline: Instant) -> Result<(), Closing> {
        self.shared.lock().closing = true;
        // Even when the broker has closed the channel: this answers it and closes the rest.
        self.send_frames(frames, false).map_err(|_| Closing::Gone)?;
        let shared = &*self.shared;
        let mut scratch = [0u8; 4096];
        loop {
            {
                let mut state = shared.lock();
                loop {
                    if state.close_ok {
                        return Ok(());
                    }
                    if state.dead {
                        return Err(Closing::Gone);
                    }
                    match state.read(&mut scratch) {
                        Ok(0) => return Err(Closing::Gone),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(Closing::Gone),
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Closing::TimedOut);
            }
            wait_for(shared.fd, libc::POLLIN, left).map_err(|_| Closing::Gone)?;
        }
    }

    /// Hands channel 1 to the tools' own frames for good: from now on everything the broker
    /// sends on it is read here (`wait_confirmed`, `returned`, `channel_closed`, `barrier`),
    /// and amiquip, which was never asked for the channel, sees none of it. The switch waits
    /// for a frame boundary of the inbound stream (in practice there is one at once: nothing
    /// comes unasked).
    pub fn take_channel(&self) -> Result<(), Gone> {
        let shared = &*self.shared;
        loop {
            let mut state = shared.lock();
            if state.dead || state.stopped {
                return Err(Gone);
            }
            if state.inbound_whole || state.inbound.at_boundary() {
                state.inbound_whole = true;
                // The channel.open-ok the wire may hold is the tracker's to drop.
                state.early_open = EarlyOpen::Off;
                state.confirms.get_or_insert_with(Confirms::default);
                return Ok(());
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until `done` holds for what the broker has said on channel 1, or the channel or
    /// connection has gone (Gone).
    fn wait_for(&self, mut done: impl FnMut(&mut Confirms) -> bool) -> Result<(), Gone> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        loop {
            let Some(confirms) = state.confirms.as_mut() else {
                return Err(Gone);
            };
            if done(confirms) {
                return Ok(());
            }
            if confirms.closed.is_some() || state.dead || state.stopped {
                return Err(Gone);
            }
            state = shared
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits until the broker has confirmed the first `count` messages published on channel
    /// 1, or refused or returned one. Returns how many are confirmed.
    pub fn wait_confirmed(&self, count: u64) -> Result<u64, Gone> {
        let mut confirmed = 0;
        self.wait_for(|c| {
            c.want = count;
            confirmed = c.confirmed;
            c.confirmed >= count || c.nacked.is_some() || c.returned.is_some()
        })?;
        Ok(confirmed)
    }

    /// Writes a basic.qos that changes nothing on channel 1 and waits for its answer: the
    /// broker sends it after it has handled every frame sent before on the channel (and after
    /// any return for them).
    pub fn barrier(&self) -> Result<(), Gone> {
        let mut before = 0;
        self.wait_for(|c| {
            before = c.qos_ok;
            true
        })?;
        self.send(&frames::basic_qos_barrier(PUBLISH_CHANNEL))?;
        self.wait_for(|c| c.qos_ok > before)
    }

    /// Takes one message off `queue` with basic.get on channel 1 (to be acknowledged), or
    /// learns that the queue is empty.
    pub fn basic_get(&self, queue: &str) -> Result<Got, Gone> {
        let frame = frames::basic_get(PUBLISH_CHANNEL, queue).map_err(|_| Gone)?;
        self.send(&frame)?;
        let mut got = None;
        self.wait_for(|c| {
            got = c.got.take();
            got.is_some()
        })?;
        got.ok_or(Gone)
    }

    /// The broker closed channel 1: its reply code and text.
    pub fn channel_closed(&self) -> Option<(u16, String)> {
        let state = self.shared.lock();
        state.confirms.as_ref().and_then(|c| c.closed.clone())
    }

    /// How many messages the broker has confirmed, and the first it refused (basic.nack).
    pub fn confirmed(&self) -> (u64, Option<u64>) {
        let state = self.shared.lock();
        state
            .confirms
            .as_ref()
            .map_or((0, None), |c| (c.confirmed, c.nacked))
    }

    /// The first message the broker returned (basic.return, for `mandatory`).
    pub fn returned(&self) -> Option<Returned> {
        let state = self.shared.lock();
        state.confirms.as_ref().and_then(|c| c.returned.clone())
    }

    /// Writes complete frames of ours on the connection, between two of amiquip's frames, and
    /// returns once the socket has taken all of them (waiting while it is full: that is the
    /// broker's back-pressure).
    pub fn send(&self, frames: &[u8]) -> Result<(), Gone> {
        self.send_frames(frames, true)
    }

    /// `send`; when `stop_when_closed` is false, also after the broker closed the channel or
    /// the connection (for the frames that answer and close).
    fn send_frames(&self, frames: &[u8], stop_when_closed: bool) -> Result<(), Gone> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        // Wait for amiquip to finish a frame it is halfway through (it writes a heartbeat or a
        // close at most, and only gets halfway when the socket was full).
        loop {
            if state.dead || (stop_when_closed && state.stopped) {
                return Err(Gone);
            }
            if state.outbound.at_boundary() {
                break;
            }
            state = shared
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if state.pending.is_empty() {
            match state.transport.write(frames) {
                Ok(n) => state.pending.extend_from_slice(&frames[n..]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state.pending.extend_from_slice(frames)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    state.pending.extend_from_slice(frames)
                }
                Err(_) => return Err(Gone),
            }
        } else {
            state.pending.extend_from_slice(frames);
        }
        loop {
            match state.flush_pending() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Gone),
            }
            if state.dead {
                return Err(Gone);
            }
            drop(state);
            let before = Instant::now();
            wait_writable(shared.fd, Duration::from_secs(1)).map_err(|_| Gone)?;
            if before.elapsed() < Duration::from_micros(50) {
                // Writable at once, yet the write would block: TLS waits for a read that
                // amiquip's thread does. Do not spin.
                std::thread::sleep(Duration::from_millis(1));
            }
            state = shared.lock();
        }
    }
}

#[cfg(test)]
mod tests;
