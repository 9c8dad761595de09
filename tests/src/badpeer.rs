//! A fake AMQP 0-9-1 broker that speaks just enough of the protocol (frames written by hand)
//! to get a tool past the handshake and then misbehave in one chosen way. Real brokers do not
//! misbehave on demand, and these are the failures a client must survive without hanging or
//! panicking.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The frame_max the peer announces in connection.tune.
pub const FRAME_MAX: u32 = 131_072;
/// The size of the body sent by [`Misbehaviour::HugeBody`] (10 MiB).
pub const HUGE_BODY_LEN: usize = 10 * 1024 * 1024;

use crate::frames::{
    frame_bytes, longstr, method_payload, read_frame_with, shortstr, Frame, FRAME_BODY, FRAME_END,
    FRAME_HEADER, FRAME_METHOD, PROTOCOL_HEADER,
};

/// How the peer misbehaves. Everything after the handshake happens at the tool's first
/// operation (the first method on channel 1 after channel.open-ok), so every tool meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Accepts the connection, reads, and never sends a byte.
    NeverAnswers,
    /// Reads the protocol header and closes the connection.
    CloseAfterHeader,
    /// Answers like a web server.
    Http,
    /// Sends connection.start and then nothing (a broker stuck mid-handshake).
    StallAfterStart,
    /// Sends a method frame 4 times bigger than the frame_max it announced.
    OversizedFrame,
    /// Sends a frame whose end byte is not 0xCE.
    BadFrameEnd,
    /// Sends a method on channel 7, which the client never opened.
    UnopenedChannel,
    /// Sends connection.close 320 CONNECTION_FORCED in place of the answer to the tool's first
    /// operation (a broker shutting down while the tool waits).
    CloseMidOperation,
    /// Behaves until basic.consume, answers consume-ok, then sends connection.close 320: the
    /// broker going away while a consumer waits for messages (meant for amqp-consume; other
    /// tools just meet a well-behaved peer).
    CloseMidConsume,
    /// Behaves, and hands out one message with a 10 MiB body (to basic.get, or delivered to a
    /// consumer); publishes are confirmed.
    HugeBody,
}

/// A running fake broker on a loopback port; stops (and drops its connections) on drop.
pub struct BadPeer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BadPeer {
    /// Starts a peer that misbehaves as `how` on every connection.
    pub fn start(how: Misbehaviour) -> BadPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut sessions = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = Arc::clone(&s);
                        sessions.push(std::thread::spawn(move || serve(conn, how, &s)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for h in sessions {
                let _ = h.join();
            }
        });
        BadPeer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@127.0.0.1:<port>` (pass a password of your own with [`url_with`]).
    ///
    /// [`url_with`]: BadPeer::url_with
    pub fn url(&self) -> String {
        self.url_with("guest", "guest")
    }

    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("amqp://{user}:{password}@127.0.0.1:{}", self.port)
    }
}

impl Drop for BadPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// One client connection. Errors just end the session: the client may legitimately hang up
/// at any point, which is what the tests look at.
fn serve(conn: TcpStream, how: Misbehaviour, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut peer = Peer {
        conn,
        buf: Vec::new(),
        stop,
    };
    let _ = peer.run(how);
    // Keep the socket open (and drain it) until the client leaves or the test ends, so that
    // whatever the client does next is its own decision, not a reaction to our close.
    peer.linger();
}

struct Peer<'a> {
    conn: TcpStream,
    buf: Vec<u8>,
    stop: &'a AtomicBool,
}

type Io<T> = std::io::Result<T>;

fn gone() -> std::io::Error {
    std::io::Error::new(ErrorKind::UnexpectedEof, "client gone")
}

impl Peer<'_> {
    fn run(&mut self, how: Misbehaviour) -> Io<()> {
        match how {
            Misbehaviour::NeverAnswers => return Ok(()),
            Misbehaviour::Http => {
                self.read_exact_buf(1)?;
                self.conn
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
                let _ = self.conn.shutdown(Shutdown::Write);
                return Ok(());
            }
            _ => {}
        }
        let header = self.read_exact_buf(8)?;
        if header != PROTOCOL_HEADER {
            // What a broker does with a wrong header: its own header, then close.
            self.conn.write_all(PROTOCOL_HEADER)?;
            return self.close_now();
        }
        if how == Misbehaviour::CloseAfterHeader {
            return self.close_now();
        }
        self.handshake(how)?;
        if how == Misbehaviour::StallAfterStart {
            return Ok(());
        }
        self.operate(how)
    }

    fn close_now(&mut self) -> Io<()> {
        let _ = self.conn.shutdown(Shutdown::Both);
        Err(gone())
    }

    fn handshake(&mut self, how: Misbehaviour) -> Io<()> {
        let mut args = vec![0, 9];
        let mut caps = Vec::new();
        for cap in [
            "publisher_confirms",
            "consumer_cancel_notify",
            "basic.nack",
            "connection.blocked",
            "exchange_exchange_bindings",
            "authentication_failure_close",
        ] {
            shortstr(&mut caps, cap);
            caps.push(b't');
            caps.push(1);
        }
        let mut props = Vec::new();
        shortstr(&mut props, "capabilities");
        props.push(b'F');
        longstr(&mut props, &caps);
        shortstr(&mut props, "product");
        props.push(b'S');
        longstr(&mut props, b"amqp-tools-tests badpeer");
        longstr(&mut args, &props);
        longstr(&mut args, b"PLAIN");
        longstr(&mut args, b"en_US");
        self.send_method(0, 10, 10, &args)?;
        if how == Misbehaviour::StallAfterStart {
            return Ok(());
        }
        self.expect(0, 10, 11)?; // start-ok
        let mut tune = Vec::new();
        tune.extend_from_slice(&2047u16.to_be_bytes());
        tune.extend_from_slice(&FRAME_MAX.to_be_bytes());
        tune.extend_from_slice(&0u16.to_be_bytes());
        self.send_method(0, 10, 30, &tune)?;
        self.expect(0, 10, 31)?; // tune-ok
        self.expect(0, 10, 40)?; // open
        let mut open_ok = Vec::new();
        shortstr(&mut open_ok, "");
        self.send_method(0, 10, 41, &open_ok)
    }

    /// Answers the tool's methods until its first real operation, then misbehaves.
    fn operate(&mut self, how: Misbehaviour) -> Io<()> {
        let mut delivery_tag = 0u64;
        loop {
            let frame = self.read_frame()?;
            let Some((class, method)) = frame.method() else {
                // Content of a publish: the header and body frames; confirmed after the last.
                if frame.kind == FRAME_BODY || frame.kind == FRAME_HEADER {
                    continue;
                }
                continue; // heartbeats
            };
            let ch = frame.channel;
            match (class, method) {
                (20, 10) => {
                    self.send_method(ch, 20, 11, &0u32.to_be_bytes())?;
                    continue;
                }
                (10, 50) => {
                    // connection.close from the client: answer close-ok and stop.
                    self.send_method(0, 10, 51, &[])?;
                    return Ok(());
                }
                (10, 51) | (20, 41) => return Ok(()),
                (20, 40) => {
                    self.send_method(ch, 20, 41, &[])?;
                    continue;
                }
                (85, 10) => {
                    // confirm.select: setting up, not an operation yet. Its only argument is
                    // the nowait bit; with it set a broker sends no select-ok.
                    if frame.payload.get(4).copied().unwrap_or(0) & 1 == 0 {
                        self.send_method(ch, 85, 11, &[])?;
                    }
                    continue;
                }
                (60, 10) => {
                    self.send_method(ch, 60, 11, &[])?;
                    continue;
                }
                (60, 30) => {
                    // basic.cancel: amqp-consume cancels before settling its last message.
                    let mut ok = Vec::new();
                    let len = frame.payload.get(4).copied().unwrap_or(0) as usize;
                    let tag = frame.payload.get(5..5 + len).unwrap_or_default();
                    shortstr(&mut ok, &String::from_utf8_lossy(tag));
                    self.send_method(ch, 60, 31, &ok)?;
                    continue;
                }
                (60, 80) | (60, 90) | (60, 120) => continue, // ack, reject, nack
                _ => {}
            }
            // The tool's first real operation.
            match how {
                Misbehaviour::OversizedFrame => {
                    let size = FRAME_MAX as usize * 4;
                    let mut payload = vec![0u8; size];
                    // A plausible method (channel.flow) padded out, so only the size is wrong.
                    payload[..4].copy_from_slice(&[0, 20, 0, 20]);
                    payload[4] = 1;
                    return self.send_raw(FRAME_METHOD, ch, &payload, FRAME_END);
                }
                Misbehaviour::BadFrameEnd => {
                    let reply = self.good_reply(class, method, &frame.payload)?;
                    let (c, m, args) = reply.unwrap_or((20, 41, Vec::new()));
                    return self.send_raw(FRAME_METHOD, ch, &method_payload(c, m, &args), 0xAB);
                }
                Misbehaviour::UnopenedChannel => {
                    // basic.deliver on a channel that was never opened.
                    let mut args = Vec::new();
                    shortstr(&mut args, "ghost");
                    args.extend_from_slice(&1u64.to_be_bytes());
                    args.push(0);
                    shortstr(&mut args, "");
                    shortstr(&mut args, "q");
                    return self.send_method(7, 60, 60, &args);
                }
                Misbehaviour::CloseMidConsume if (class, method) != (60, 20) => {
                    if let Some((c, m, args)) = self.good_reply(class, method, &frame.payload)? {
                        self.send_method(ch, c, m, &args)?;
                    }
                    continue;
                }
                Misbehaviour::CloseMidOperation | Misbehaviour::CloseMidConsume => {
                    if how == Misbehaviour::CloseMidConsume {
                        let mut ok = Vec::new();
                        shortstr(&mut ok, &consumer_tag(&frame.payload));
                        self.send_method(ch, 60, 21, &ok)?;
                    } else if (class, method) == (60, 40) {
                        self.skip_content()?;
                    }
                    let mut close = Vec::new();
                    close.extend_from_slice(&320u16.to_be_bytes());
                    shortstr(
                        &mut close,
                        "CONNECTION_FORCED - badpeer closed the connection",
                    );
                    close.extend_from_slice(&[0, 0, 0, 0]);
                    self.send_method(0, 10, 50, &close)?;
                    // Wait for close-ok (or the client leaving) before closing.
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < deadline {
                        if let Some((10, 51)) = self.read_frame()?.method() {
                            break;
                        }
                    }
                    return self.close_now();
                }
                Misbehaviour::HugeBody => {
                    if (class, method) == (60, 40) {
                        // basic.publish: the content follows; confirm it once it is all in.
                        self.skip_content()?;
                        delivery_tag += 1;
                        let mut ack = delivery_tag.to_be_bytes().to_vec();
                        ack.push(0);
                        self.send_method(ch, 60, 80, &ack)?;
                        continue;
                    }
                    if let Some((c, m, args)) = self.good_reply(class, method, &frame.payload)? {
                        self.send_method(ch, c, m, &args)?;
                    }
                    match (class, method) {
                        (60, 70) => {
                            // get-ok was sent by good_reply; now the content.
                            self.send_huge_content(ch)?;
                        }
                        (60, 20) => {
                            let mut args = Vec::new();
                            shortstr(&mut args, &consumer_tag(&frame.payload));
                            args.extend_from_slice(&1u64.to_be_bytes());
                            args.push(0);
                            shortstr(&mut args, "");
                            shortstr(&mut args, "q");
                            self.send_method(ch, 60, 60, &args)?;
                            self.send_huge_content(ch)?;
                        }
                        _ => {}
                    }
                    continue;
                }
                Misbehaviour::NeverAnswers
                | Misbehaviour::CloseAfterHeader
                | Misbehaviour::Http
                | Misbehaviour::StallAfterStart => return Ok(()),
            }
        }
    }

    /// What a healthy broker answers to `class.method` (name, counts and tags made up).
    fn good_reply(
        &mut self,
        class: u16,
        method: u16,
        payload: &[u8],
    ) -> Io<Option<(u16, u16, Vec<u8>)>> {
        let mut args = Vec::new();
        Ok(match (class, method) {
            (50, 10) => {
                let name = queue_name(payload).unwrap_or_default();
                shortstr(
                    &mut args,
                    if name.is_empty() {
                        "amq.gen-bad"
                    } else {
                        &name
                    },
                );
                args.extend_from_slice(&0u32.to_be_bytes());
                args.extend_from_slice(&0u32.to_be_bytes());
                Some((50, 11, args))
            }
            (50, 20) => Some((50, 21, args)),
            (50, 40) => Some((50, 41, 0u32.to_be_bytes().to_vec())),
            (60, 20) => {
                shortstr(&mut args, &consumer_tag(payload));
                Some((60, 21, args))
            }
            (60, 70) => {
                args.extend_from_slice(&1u64.to_be_bytes());
                args.push(0);
                shortstr(&mut args, "");
                shortstr(&mut args, "q");
                args.extend_from_slice(&0u32.to_be_bytes());
                Some((60, 71, args))
            }
            (60, 40) => {
                self.skip_content()?;
                let mut ack = 1u64.to_be_bytes().to_vec();
                ack.push(0);
                Some((60, 80, ack))
            }
            _ => None,
        })
    }

    /// Reads the header and body frames of a publish.
    fn skip_content(&mut self) -> Io<()> {
        let header = self.read_frame()?;
        if header.kind != FRAME_HEADER || header.payload.len() < 12 {
            return Ok(());
        }
        let p = &header.payload;
        let size = u64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
        let mut got = 0u64;
        while got < size {
            let body = self.read_frame()?;
            got += body.payload.len() as u64;
        }
        Ok(())
    }

    fn send_huge_content(&mut self, ch: u16) -> Io<()> {
        let mut header = Vec::new();
        header.extend_from_slice(&60u16.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(HUGE_BODY_LEN as u64).to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes()); // no properties
        self.send_raw(FRAME_HEADER, ch, &header, FRAME_END)?;
        let body = huge_body();
        for chunk in body.chunks(FRAME_MAX as usize - 8) {
            self.send_raw(FRAME_BODY, ch, chunk, FRAME_END)?;
        }
        Ok(())
    }

    fn expect(&mut self, channel: u16, class: u16, method: u16) -> Io<Frame> {
        loop {
            let f = self.read_frame()?;
            if f.channel == channel && f.method() == Some((class, method)) {
                return Ok(f);
            }
            if f.kind == FRAME_METHOD {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    "unexpected method",
                ));
            }
        }
    }

    fn send_method(&mut self, ch: u16, class: u16, method: u16, args: &[u8]) -> Io<()> {
        self.send_raw(
            FRAME_METHOD,
            ch,
            &method_payload(class, method, args),
            FRAME_END,
        )
    }

    fn send_raw(&mut self, kind: u8, ch: u16, payload: &[u8], end: u8) -> Io<()> {
        self.conn.write_all(&frame_bytes(kind, ch, payload, end))
    }

    fn read_frame(&mut self) -> Io<Frame> {
        read_frame_with(|n| self.read_exact_buf(n))
    }

    /// Reads exactly `n` bytes, giving up when the client leaves or the peer is stopped.
    fn read_exact_buf(&mut self, n: usize) -> Io<Vec<u8>> {
        let mut chunk = [0u8; 8192];
        while self.buf.len() < n {
            if self.stop.load(Ordering::SeqCst) {
                return Err(gone());
            }
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err(gone()),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    fn linger(&mut self) {
        let mut chunk = [0u8; 8192];
        while !self.stop.load(Ordering::SeqCst) {
            match self.conn.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// The 10 MiB body: a repeating pattern, so a truncated or shifted copy does not compare equal.
pub fn huge_body() -> Vec<u8> {
    (0..HUGE_BODY_LEN).map(|i| (i % 251) as u8).collect()
}

/// The queue name of a queue.declare (after class, method and the reserved short).
fn queue_name(payload: &[u8]) -> Option<String> {
    let len = *payload.get(6)? as usize;
    let name = payload.get(7..7 + len)?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The consumer tag of a basic.consume (after the reserved short and the queue name), or a
/// made-up one when the client lets the broker choose.
fn consumer_tag(payload: &[u8]) -> String {
    let tag = (|| {
        let qlen = *payload.get(6)? as usize;
        let at = 7 + qlen;
        let tlen = *payload.get(at)? as usize;
        let tag = payload.get(at + 1..at + 1 + tlen)?;
        Some(String::from_utf8_lossy(tag).into_owned())
    })()
    .unwrap_or_default();
    if tag.is_empty() {
        "amq.ctag-bad".into()
    } else {
        tag
    }
}
