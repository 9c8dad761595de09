//! A check on the frames a plain-TCP peer sends, before amiquip sees them. amiquip trusts the
//! size in a frame header: a peer that is not an AMQP broker (an HTTP server answering
//! "HTTP/1.1 400") makes it reserve a buffer of a gigabyte or more, and an oversized frame from
//! a broken broker does the same. Here every frame header is checked as the bytes go by, and a
//! bad one fails the read at once with a clear reason.

use mio::{Evented, Poll, PollOpt, Ready, Token};
use std::io::{self, Read, Write};

/// AMQP 0-9-1 frame types: method, content header, content body, heartbeat.
const FRAME_TYPES: [u8; 4] = [1, 2, 3, 8];
const FRAME_END: u8 = 0xCE;

/// Wraps a stream and checks the frames read from it against `frame_max`.
pub struct FrameGuard<S> {
    inner: S,
    check: FrameCheck,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, frame_max: u32) -> FrameGuard<S> {
        FrameGuard {
            inner,
            check: FrameCheck::new(frame_max),
        }
    }
}

/// The frame reader's state, fed with every byte read.
#[derive(Debug, Clone)]
pub struct FrameCheck {
    frame_max: u32,
    header: [u8; 7],
    have: usize,
    /// Payload bytes still to skip in the current frame.
    skip: u64,
    /// The frame-end byte is next.
    need_end: bool,
}

impl FrameCheck {
    pub fn new(frame_max: u32) -> FrameCheck {
        FrameCheck {
            frame_max,
            header: [0; 7],
            have: 0,
            skip: 0,
            need_end: false,
        }
    }

    /// Follows the frames in `data`; an error names what is wrong with the first bad one.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < data.len() {
            if self.skip > 0 {
                let n = self.skip.min((data.len() - i) as u64);
                self.skip -= n;
                i += n as usize;
            } else if self.need_end {
                if data[i] != FRAME_END {
                    return Err(format!(
                        "the peer sent a frame without its end marker (byte 0x{:02x}): it does \
                         not speak AMQP 0-9-1",
                        data[i]
                    ));
                }
                self.need_end = false;
                i += 1;
            } else {
                self.header[self.have] = data[i];
                self.have += 1;
                i += 1;
                if self.have == self.header.len() {
                    self.have = 0;
                    self.start_frame()?;
                }
            }
        }
        Ok(())
    }

    fn start_frame(&mut self) -> Result<(), String> {
        let kind = self.header[0];
        if !FRAME_TYPES.contains(&kind) {
            return Err(if self.header.starts_with(b"AMQP") {
                "the broker does not support AMQP 0-9-1 (it answered with its own protocol \
                 version)"
                    .to_string()
            } else if self.header.starts_with(b"HTTP") {
                "the peer answered with HTTP, not AMQP 0-9-1 (is this the management port?)"
                    .to_string()
            } else {
                "the peer does not speak AMQP 0-9-1".to_string()
            });
        }
        let size = u32::from_be_bytes([
            self.header[3],
            self.header[4],
            self.header[5],
            self.header[6],
        ]);
        if size > self.frame_max {
            return Err(format!(
                "the peer sent a {size}-byte frame, more than the agreed maximum of {} bytes",
                self.frame_max
            ));
        }
        self.skip = u64::from(size);
        self.need_end = true;
        Ok(())
    }
}

impl<S: Read> Read for FrameGuard<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check
            .feed(&buf[..n])
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
        Ok(n)
    }
}

impl<S: Write> Write for FrameGuard<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S: Evented> Evented for FrameGuard<S> {
    fn register(
        &self,
        poll: &Poll,
        token: Token,
        interest: Ready,
        opts: PollOpt,
    ) -> io::Result<()> {
        self.inner.register(poll, token, interest, opts)
    }

    fn reregister(
        &self,
        poll: &Poll,
        token: Token,
        interest: Ready,
        opts: PollOpt,
    ) -> io::Result<()> {
        self.inner.reregister(poll, token, interest, opts)
    }

    fn deregister(&self, poll: &Poll) -> io::Result<()> {
        self.inner.deregister(poll)
    }
}

impl<S: amiquip::IoStream> amiquip::IoStream for FrameGuard<S> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind, 0, 1];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(FRAME_END);
        f
    }

    #[test]
    fn good_frames_pass_in_any_split() {
        let mut stream = frame(1, b"method");
        stream.extend(frame(2, &[0; 14]));
        stream.extend(frame(3, &[7; 300]));
        stream.extend(frame(8, b""));
        for chunk in [1, 2, 5, 7, 8, 64, 4096] {
            let mut check = FrameCheck::new(131_072);
            for part in stream.chunks(chunk) {
                check.feed(part).unwrap();
            }
        }
    }

    #[test]
    fn bad_frames_fail() {
        let mut check = FrameCheck::new(131_072);
        let err = check.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
        assert!(err.contains("HTTP"), "{err}");
        let mut check = FrameCheck::new(131_072);
        assert!(check
            .feed(b"AMQP\x00\x00\x09\x01")
            .unwrap_err()
            .contains("version"));
        let mut check = FrameCheck::new(10);
        assert!(check
            .feed(&frame(3, &[0; 11]))
            .unwrap_err()
            .contains("11-byte"));
        let mut check = FrameCheck::new(131_072);
        let mut bad_end = frame(1, b"x");
        *bad_end.last_mut().unwrap() = 0;
        assert!(check.feed(&bad_end).unwrap_err().contains("end marker"));
    }
}
