//! The broker's own limit for bulk publishing, measured by bench/run next to `amqp-publish -l`.
//!
//! ```text
//! broker-limit --queue Q [--confirm] [--addr HOST:PORT] FILE
//! ```
//!
//! One connection, one channel. Every line of FILE becomes one message, as with
//! `amqp-publish -r Q -l < FILE`, with the same properties on the wire (delivery_mode 1 and
//! nothing else), published to the default exchange with routing key Q as guest on vhost "/".
//! All frames are encoded before the first message is sent and then handed to the socket in as
//! few writes as it takes, so that the client costs next to nothing and what is measured is the
//! broker.
//!
//! With `--confirm` the channel is put in confirm mode and a second thread reads acks and nacks
//! while the first one writes, until the last delivery tag is settled; a nack is a failure.
//! Either way the run ends with channel.close and connection.close, each waiting for its -ok,
//! so the broker has read every message when the process exits (bench/run then counts them in
//! the queue).
//!
//! Prints one line on stdout. Any failure (a nack, a close from the broker, an I/O error) is
//! one line on stderr and exit status 1.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// Type, channel and size before the payload, the end octet after it.
const FRAME_OVERHEAD: usize = 8;
/// A frame_max of 0 means "no limit"; bodies are then cut at RabbitMQ's default.
const DEFAULT_FRAME_MAX: u32 = 131_072;
const CHANNEL: u16 = 1;

type Method = (u16, u16);
const CONNECTION_START: Method = (10, 10);
const CONNECTION_START_OK: Method = (10, 11);
const CONNECTION_TUNE: Method = (10, 30);
const CONNECTION_TUNE_OK: Method = (10, 31);
const CONNECTION_OPEN: Method = (10, 40);
const CONNECTION_OPEN_OK: Method = (10, 41);
const CONNECTION_CLOSE: Method = (10, 50);
const CONNECTION_CLOSE_OK: Method = (10, 51);
const CONNECTION_BLOCKED: Method = (10, 60);
const CONNECTION_UNBLOCKED: Method = (10, 61);
const CHANNEL_OPEN: Method = (20, 10);
const CHANNEL_OPEN_OK: Method = (20, 11);
const CHANNEL_CLOSE: Method = (20, 40);
const CHANNEL_CLOSE_OK: Method = (20, 41);
const BASIC_PUBLISH: Method = (60, 40);
const BASIC_ACK: Method = (60, 80);
const BASIC_NACK: Method = (60, 120);
const CONFIRM_SELECT: Method = (85, 10);
const CONFIRM_SELECT_OK: Method = (85, 11);
const BASIC_CLASS: u16 = 60;
/// The property flags of `amqp-publish` without property options: delivery_mode only.
const DELIVERY_MODE_FLAG: u16 = 0x1000;
const DELIVERY_MODE_TRANSIENT: u8 = 1;

struct Options {
    addr: String,
    queue: String,
    confirm: bool,
    file: PathBuf,
}

const USAGE: &str = "usage: broker-limit --queue Q [--confirm] [--addr HOST:PORT] FILE";

fn main() -> ExitCode {
    match run() {
        Ok(summary) => {
            // The summary is informative only: bench/run measures the process from outside.
            let _ = writeln!(std::io::stdout(), "{summary}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "broker-limit: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Options, String> {
    let mut addr = "127.0.0.1:5672".to_string();
    let mut queue = None;
    let mut confirm = false;
    let mut file = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("{name} needs a (UTF-8) value; {USAGE}"))
        };
        match arg.to_str() {
            Some("--queue" | "-q") => queue = Some(value("--queue")?),
            Some("--addr") => addr = value("--addr")?,
            Some("--confirm") => confirm = true,
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}; {USAGE}")),
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => return Err(format!("one FILE only; {USAGE}")),
        }
    }
    let queue = queue.ok_or_else(|| format!("--queue is missing; {USAGE}"))?;
    if queue.len() > 255 {
        return Err("the queue name is longer than 255 bytes".into());
    }
    let file = file.ok_or_else(|| format!("FILE is missing; {USAGE}"))?;
    Ok(Options {
        addr,
        queue,
        confirm,
        file,
    })
}

fn run() -> Result<String, String> {
    let opts = parse_args()?;
    let data = std::fs::read(&opts.file).map_err(|e| format!("{}: {e}", opts.file.display()))?;
    let (mut stream, mut frames, frame_max) = open(&opts.addr, opts.confirm)?;
    let (wire, count) = encode_messages(&data, opts.queue.as_bytes(), frame_max);

    let started = Instant::now();
    let mut confirms = Confirms::new(count);
    if opts.confirm {
        // The acks are read while the frames are written: a broker whose acks are not read
        // stops reading in turn once the socket buffers are full.
        let (written, confirmed) = std::thread::scope(|s| {
            let reader = s.spawn(|| confirms.read_all(&mut frames));
            let written = stream.write_all(&wire);
            let confirmed = reader
                .join()
                .unwrap_or_else(|_| Err("the thread reading confirms panicked".into()));
            (written, confirmed)
        });
        // The broker's reason, when it closed, says more than the failed write.
        confirmed?;
        written.map_err(|e| format!("publishing: {e}"))?;
    } else {
        stream
            .write_all(&wire)
            .map_err(|e| format!("publishing: {e}"))?;
    }
    close(&mut stream, &mut frames)?;
    let secs = started.elapsed().as_secs_f64();

    if confirms.nacked > 0 {
        return Err(format!(
            "the broker nacked {} of {count} messages",
            confirms.nacked
        ));
    }
    let mode = if opts.confirm {
        format!("{} confirmed", confirms.done)
    } else {
        "no confirms".to_string()
    };
    Ok(format!(
        "broker-limit: {count} messages ({mode}) published and closed in {secs:.3} s ({:.0} msgs/s)",
        count as f64 / secs.max(1e-9)
    ))
}

/// Connects, logs in, opens channel 1 (in confirm mode with `confirm`), and returns the
/// socket, a frame reader on a clone of it, and the negotiated frame_max.
fn open(addr: &str, confirm: bool) -> Result<(TcpStream, Frames, u32), String> {
    let connect = |e: std::io::Error| format!("{addr}: {e}");
    let mut stream = TcpStream::connect(addr).map_err(connect)?;
    stream.set_nodelay(true).map_err(connect)?;
    let mut frames = Frames {
        input: BufReader::new(stream.try_clone().map_err(connect)?),
    };
    let mut send = |out: &[u8]| stream.write_all(out).map_err(connect);

    send(PROTOCOL_HEADER)?;
    frames.expect(CONNECTION_START)?;
    let mut out = Vec::new();
    method(&mut out, 0, CONNECTION_START_OK, |p| {
        client_properties(p);
        short_str(p, b"PLAIN");
        long_str(p, b"\0guest\0guest");
        short_str(p, b"en_US");
    });
    send(&out)?;

    let tune = frames.expect(CONNECTION_TUNE)?;
    let channel_max = tune.u16_at(4)?;
    let frame_max = match tune.u32_at(6)? {
        0 => DEFAULT_FRAME_MAX,
        n => n,
    };
    out.clear();
    method(&mut out, 0, CONNECTION_TUNE_OK, |p| {
        p.extend_from_slice(&channel_max.to_be_bytes());
        p.extend_from_slice(&frame_max.to_be_bytes());
        // No heartbeats: a run lasts seconds, and none of them must cost the client anything.
        p.extend_from_slice(&0u16.to_be_bytes());
    });
    method(&mut out, 0, CONNECTION_OPEN, |p| {
        short_str(p, b"/");
        short_str(p, b"");
        p.push(0);
    });
    method(&mut out, CHANNEL, CHANNEL_OPEN, |p| short_str(p, b""));
    if confirm {
        // nowait off: the run starts only once the channel is in confirm mode.
        method(&mut out, CHANNEL, CONFIRM_SELECT, |p| p.push(0));
    }
    send(&out)?;
    frames.expect(CONNECTION_OPEN_OK)?;
    frames.expect(CHANNEL_OPEN_OK)?;
    if confirm {
        frames.expect(CONFIRM_SELECT_OK)?;
    }
    Ok((stream, frames, frame_max))
}

/// channel.close, then connection.close, each waiting for its -ok: when this returns the
/// broker has read and routed every frame sent before it.
fn close(stream: &mut TcpStream, frames: &mut Frames) -> Result<(), String> {
    let close_args = |p: &mut Vec<u8>| {
        p.extend_from_slice(&200u16.to_be_bytes());
        short_str(p, b"");
        p.extend_from_slice(&[0, 0, 0, 0]);
    };
    let mut out = Vec::new();
    method(&mut out, CHANNEL, CHANNEL_CLOSE, close_args);
    stream
        .write_all(&out)
        .map_err(|e| format!("closing the channel: {e}"))?;
    frames.expect(CHANNEL_CLOSE_OK)?;
    out.clear();
    method(&mut out, 0, CONNECTION_CLOSE, close_args);
    stream
        .write_all(&out)
        .map_err(|e| format!("closing the connection: {e}"))?;
    frames.expect(CONNECTION_CLOSE_OK)?;
    Ok(())
}

/// Every message of `data` (one per line, the last newline optional) as basic.publish, content
/// header and body frames on channel 1, and how many messages that is.
fn encode_messages(data: &[u8], queue: &[u8], frame_max: u32) -> (Vec<u8>, u64) {
    let mut publish = Vec::new();
    method(&mut publish, CHANNEL, BASIC_PUBLISH, |p| {
        p.extend_from_slice(&[0, 0]); // reserved
        short_str(p, b""); // the default exchange
        short_str(p, queue); // routing key
        p.push(0); // neither mandatory nor immediate
    });
    let body_max = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    let text = data.strip_suffix(b"\n").unwrap_or(data);
    let mut out = Vec::with_capacity(data.len() + data.len() / 4 + 4096);
    let mut count = 0;
    if text.is_empty() {
        return (out, count);
    }
    for body in text.split(|&b| b == b'\n') {
        out.extend_from_slice(&publish);
        frame(&mut out, FRAME_HEADER, CHANNEL, |p| {
            p.extend_from_slice(&BASIC_CLASS.to_be_bytes());
            p.extend_from_slice(&0u16.to_be_bytes()); // weight
            p.extend_from_slice(&(body.len() as u64).to_be_bytes());
            p.extend_from_slice(&DELIVERY_MODE_FLAG.to_be_bytes());
            p.push(DELIVERY_MODE_TRANSIENT);
        });
        for chunk in body.chunks(body_max) {
            frame(&mut out, FRAME_BODY, CHANNEL, |p| {
                p.extend_from_slice(chunk)
            });
        }
        count += 1;
    }
    (out, count)
}

/// product (shown to operators) and the capabilities that change what the broker does:
/// without authentication_failure_close a refused login is a closed socket seconds later.
fn client_properties(out: &mut Vec<u8>) {
    sized(out, |t| {
        short_str(t, b"product");
        t.push(b'S');
        long_str(t, b"amqp-tools bench broker-limit");
        short_str(t, b"capabilities");
        t.push(b'F');
        sized(t, |c| {
            for cap in [
                &b"authentication_failure_close"[..],
                b"basic.nack",
                b"publisher_confirms",
            ] {
                short_str(c, cap);
                c.push(b't');
                c.push(1);
            }
        });
    });
}

/// `fill`'s bytes after their length as a 32-bit big-endian number.
fn sized(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    fill(out);
    let size = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
}

fn frame(out: &mut Vec<u8>, kind: u8, channel: u16, payload: impl FnOnce(&mut Vec<u8>)) {
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    sized(out, payload);
    out.push(FRAME_END);
}

fn method(out: &mut Vec<u8>, channel: u16, id: Method, args: impl FnOnce(&mut Vec<u8>)) {
    frame(out, FRAME_METHOD, channel, |p| {
        p.extend_from_slice(&id.0.to_be_bytes());
        p.extend_from_slice(&id.1.to_be_bytes());
        args(p);
    });
}

/// Callers pass at most 255 bytes (the queue name is checked in parse_args).
fn short_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn long_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

struct Frame {
    kind: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn method(&self) -> Option<Method> {
        if self.kind != FRAME_METHOD {
            return None;
        }
        Some((self.u16_at(0).ok()?, self.u16_at(2).ok()?))
    }

    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], String> {
        self.payload
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("a frame from the broker is too short ({:?})", self.method()))
    }

    fn u16_at(&self, at: usize) -> Result<u16, String> {
        self.bytes(at).map(u16::from_be_bytes)
    }

    fn u32_at(&self, at: usize) -> Result<u32, String> {
        self.bytes(at).map(u32::from_be_bytes)
    }

    fn u64_at(&self, at: usize) -> Result<u64, String> {
        self.bytes(at).map(u64::from_be_bytes)
    }

    /// The reply code and text of a connection.close or channel.close.
    fn close_reason(&self) -> String {
        let code = self.u16_at(4).unwrap_or(0);
        let len = self.payload.get(6).copied().unwrap_or(0) as usize;
        let text = self.payload.get(7..7 + len).unwrap_or_default();
        format!("{code} {}", String::from_utf8_lossy(text))
    }
}

struct Frames {
    input: BufReader<TcpStream>,
}

impl Frames {
    fn next(&mut self) -> Result<Frame, String> {
        let lost = |e: std::io::Error| format!("reading from the broker: {e}");
        let mut head = [0u8; 7];
        self.input.read_exact(&mut head).map_err(lost)?;
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut payload = vec![0; size + 1];
        self.input.read_exact(&mut payload).map_err(lost)?;
        if payload.pop() != Some(FRAME_END) {
            return Err("a frame from the broker does not end with 0xCE".into());
        }
        Ok(Frame {
            kind: head[0],
            payload,
        })
    }

    /// The next method frame other than heartbeats and flow-control notices: `want`, or an
    /// error (the broker's reason when it closed the channel or the connection).
    fn expect(&mut self, want: Method) -> Result<Frame, String> {
        let f = self.next_method()?;
        if f.method() == Some(want) {
            return Ok(f);
        }
        Err(format!(
            "expected method {want:?}, the broker sent {:?}",
            f.method()
        ))
    }

    fn next_method(&mut self) -> Result<Frame, String> {
        loop {
            let f = self.next()?;
            match f.method() {
                _ if f.kind == FRAME_HEARTBEAT => continue,
                Some(CONNECTION_BLOCKED | CONNECTION_UNBLOCKED) => continue,
                Some(CONNECTION_CLOSE) => {
                    return Err(format!(
                        "the broker closed the connection: {}",
                        f.close_reason()
                    ))
                }
                Some(CHANNEL_CLOSE) => {
                    return Err(format!(
                        "the broker closed the channel: {}",
                        f.close_reason()
                    ))
                }
                Some(_) => return Ok(f),
                None => return Err(format!("unexpected frame of type {}", f.kind)),
            }
        }
    }
}

/// Which delivery tags (1..=count) the broker has settled, and how.
struct Confirms {
    settled: Vec<bool>,
    /// Every tag below this one is settled.
    low: usize,
    done: u64,
    nacked: u64,
}

impl Confirms {
    fn new(count: u64) -> Self {
        Confirms {
            settled: vec![false; count as usize + 1],
            low: 1,
            done: 0,
            nacked: 0,
        }
    }

    fn read_all(&mut self, frames: &mut Frames) -> Result<(), String> {
        let count = self.settled.len() as u64 - 1;
        while self.done < count {
            let f = frames.next_method()?;
            let nack = match f.method() {
                Some(BASIC_ACK) => false,
                Some(BASIC_NACK) => true,
                other => return Err(format!("expected basic.ack or basic.nack, got {other:?}")),
            };
            let tag = f.u64_at(4)?;
            let multiple = f.bytes::<1>(12)?[0] & 1 != 0;
            self.settle(tag, multiple, nack)?;
        }
        Ok(())
    }

    fn settle(&mut self, tag: u64, multiple: bool, nack: bool) -> Result<(), String> {
        let tag = usize::try_from(tag).unwrap_or(usize::MAX);
        if tag == 0 || tag >= self.settled.len() {
            return Err(format!(
                "the broker confirmed delivery tag {tag}, never published"
            ));
        }
        if !multiple && self.settled[tag] {
            return Err(format!("the broker confirmed delivery tag {tag} twice"));
        }
        let from = if multiple { self.low } else { tag };
        for t in from..=tag {
            if !self.settled[t] {
                self.settled[t] = true;
                self.done += 1;
                self.nacked += u64::from(nack);
            }
        }
        while self.low < self.settled.len() && self.settled[self.low] {
            self.low += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_as_amqp_publish_frames_them() {
        let (wire, count) = encode_messages(b"ab\n\nxyz\n", b"q", 4096);
        assert_eq!(count, 3);
        let mut expected = Vec::new();
        for body in [&b"ab"[..], b"", b"xyz"] {
            expected.extend_from_slice(&[1, 0, 1, 0, 0, 0, 10, 0, 60, 0, 40, 0, 0, 0, 1, b'q', 0]);
            expected.push(FRAME_END);
            expected.extend_from_slice(&[2, 0, 1, 0, 0, 0, 15, 0, 60, 0, 0]);
            expected.extend_from_slice(&(body.len() as u64).to_be_bytes());
            expected.extend_from_slice(&[0x10, 0, 1, FRAME_END]);
            for chunk in body.chunks(4088) {
                expected.extend_from_slice(&[3, 0, 1, 0, 0, 0, chunk.len() as u8]);
                expected.extend_from_slice(chunk);
                expected.push(FRAME_END);
            }
        }
        assert_eq!(wire, expected);
    }

    #[test]
    fn bodies_larger_than_a_frame_are_split() {
        let body = vec![b'x'; 25];
        let (wire, count) = encode_messages(&body, b"q", 18);
        assert_eq!(count, 1);
        // after the method frame (18 bytes) and the content header (23)
        let mut expected = Vec::new();
        for len in [10u8, 10, 5] {
            expected.extend_from_slice(&[3, 0, 1, 0, 0, 0, len]);
            expected.extend_from_slice(&vec![b'x'; len.into()]);
            expected.push(FRAME_END);
        }
        assert_eq!(wire[41..], expected);
    }

    #[test]
    fn an_empty_file_is_no_message() {
        assert_eq!(encode_messages(b"", b"q", 4096).1, 0);
        assert_eq!(encode_messages(b"\n", b"q", 4096).1, 0);
    }

    #[test]
    fn multiple_acks_settle_every_tag_up_to_theirs_once() {
        let mut c = Confirms::new(5);
        c.settle(2, false, false).unwrap();
        c.settle(3, true, false).unwrap();
        assert_eq!((c.done, c.low), (3, 4));
        c.settle(5, false, true).unwrap();
        c.settle(5, true, false).unwrap();
        assert_eq!((c.done, c.nacked, c.low), (5, 1, 6));
        assert!(c.settle(6, false, false).is_err());
        assert!(c.settle(0, true, false).is_err());
        assert!(c.settle(2, false, false).is_err());
    }
}
