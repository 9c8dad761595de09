//! Following AMQP frames in a byte stream as it goes by, in pieces of any size, without
//! buffering it: where each frame starts, what it is (type, channel, and for a method frame its
//! class and method), and whether it is well formed.
//!
//! Inbound, this is the check amiquip lacks: it trusts the size in a frame header, so a peer
//! that is not an AMQP broker (an HTTP server answering "HTTP/1.1 400") makes it reserve a
//! buffer of a gigabyte or more, and an oversized frame from a broken broker does the same.
//! Every inbound frame header is checked here first, and a bad one fails the read at once with a
//! clear reason. Outbound, the same scanner tells where amiquip's frames begin and end, so that
//! frames of our own are only ever written between two of its frames.

/// AMQP 0-9-1 frame types.
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
const FRAME_TYPES: [u8; 4] = [FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT];
pub const FRAME_END: u8 = 0xCE;

/// The 7-byte frame header, plus a method frame's class and method ids.
const HEAD: usize = 7;
const METHOD_HEAD: usize = HEAD + 4;

/// What the scanner learns at the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStart {
    pub kind: u8,
    pub channel: u16,
    pub size: u32,
    /// Class and method ids of a method frame.
    pub method: Option<(u16, u16)>,
}

/// The scanner's state between two pieces of the stream.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    frame_max: u32,
    head: [u8; METHOD_HEAD],
    have: usize,
    /// How many head bytes the current frame has: 7, or 11 for a method frame.
    want: usize,
    /// Payload bytes still to pass in the current frame.
    skip: u64,
    /// The frame-end byte is next.
    need_end: bool,
}

impl FrameScanner {
    pub fn new(frame_max: u32) -> FrameScanner {
        FrameScanner {
            frame_max,
            head: [0; METHOD_HEAD],
            have: 0,
            want: HEAD,
            skip: 0,
            need_end: false,
        }
    }

    /// True between two frames: nothing of a frame has gone by that is not complete.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0 && !self.need_end
    }

    /// The largest frame accepted (header and end byte not counted, as in connection.tune).
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Follows the frames in `data`, telling `on_frame` about each one that starts; an error
    /// names what is wrong with the first bad one.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_frame: impl FnMut(FrameStart),
    ) -> Result<(), String> {
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
                let n = (self.want - self.have).min(data.len() - i);
                self.head[self.have..self.have + n].copy_from_slice(&data[i..i + n]);
                self.have += n;
                i += n;
                if self.have == HEAD && self.want == HEAD {
                    self.check_head()?;
                    if self.head[0] == FRAME_METHOD && self.size() >= 4 {
                        self.want = METHOD_HEAD;
                        continue;
                    }
                }
                if self.have == self.want {
                    on_frame(self.start());
                    self.skip = u64::from(self.size()) - (self.want - HEAD) as u64;
                    self.need_end = true;
                    self.have = 0;
                    self.want = HEAD;
                }
            }
        }
        Ok(())
    }

    fn size(&self) -> u32 {
        u32::from_be_bytes([self.head[3], self.head[4], self.head[5], self.head[6]])
    }

    fn start(&self) -> FrameStart {
        let h = &self.head;
        FrameStart {
            kind: h[0],
            channel: u16::from_be_bytes([h[1], h[2]]),
            size: self.size(),
            method: (self.want == METHOD_HEAD).then(|| {
                (
                    u16::from_be_bytes([h[7], h[8]]),
                    u16::from_be_bytes([h[9], h[10]]),
                )
            }),
        }
    }

    fn check_head(&self) -> Result<(), String> {
        let head = &self.head[..HEAD];
        if !FRAME_TYPES.contains(&head[0]) {
            return Err(if head.starts_with(b"AMQP") {
                "the broker does not support AMQP 0-9-1 (it answered with its own protocol \
                 version)"
                    .to_string()
            } else if head.starts_with(b"HTTP") {
                "the peer answered with HTTP, not AMQP 0-9-1 (is this the management port?)"
                    .to_string()
            } else {
                "the peer does not speak AMQP 0-9-1".to_string()
            });
        }
        let size = self.size();
        if size > self.frame_max {
            return Err(format!(
                "the peer sent a {size}-byte frame, more than the agreed maximum of {} bytes",
                self.frame_max
            ));
        }
        Ok(())
    }
}

/// The first complete frame of `data`, when `data` starts at a frame boundary: its start and
/// its length (header, payload and end byte).
pub fn whole_frame(data: &[u8]) -> Option<(FrameStart, usize)> {
    if data.len() < HEAD {
        return None;
    }
    let size = u32::from_be_bytes([data[3], data[4], data[5], data[6]]);
    let len = HEAD + size as usize + 1;
    if data.len() < len {
        return None;
    }
    let method = (data[0] == FRAME_METHOD && size >= 4).then(|| {
        (
            u16::from_be_bytes([data[7], data[8]]),
            u16::from_be_bytes([data[9], data[10]]),
        )
    });
    Some((
        FrameStart {
            kind: data[0],
            channel: u16::from_be_bytes([data[1], data[2]]),
            size,
            method,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind];
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(FRAME_END);
        f
    }

    fn starts(scanner: &mut FrameScanner, data: &[u8]) -> Result<Vec<FrameStart>, String> {
        let mut seen = Vec::new();
        scanner.feed(data, |s| seen.push(s))?;
        Ok(seen)
    }

    #[test]
    fn good_frames_pass_in_any_split() {
        let mut stream = frame(1, 0, &[0, 10, 0, 11, 9, 9]);
        stream.extend(frame(2, 1, &[0; 14]));
        stream.extend(frame(3, 1, &[7; 300]));
        stream.extend(frame(8, 0, b""));
        stream.extend(frame(1, 1, &[0, 20]));
        let expected = vec![
            FrameStart {
                kind: 1,
                channel: 0,
                size: 6,
                method: Some((10, 11)),
            },
            FrameStart {
                kind: 2,
                channel: 1,
                size: 14,
                method: None,
            },
            FrameStart {
                kind: 3,
                channel: 1,
                size: 300,
                method: None,
            },
            FrameStart {
                kind: 8,
                channel: 0,
                size: 0,
                method: None,
            },
            // A method frame too short to name its method.
            FrameStart {
                kind: 1,
                channel: 1,
                size: 2,
                method: None,
            },
        ];
        for chunk in [1, 2, 5, 7, 8, 11, 64, 4096] {
            let mut scanner = FrameScanner::new(131_072);
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                seen.extend(starts(&mut scanner, part).unwrap());
            }
            assert_eq!(seen, expected, "chunk {chunk}");
            assert!(scanner.at_boundary());
        }
    }

    #[test]
    fn boundary_is_known_mid_frame() {
        let f = frame(3, 1, b"body");
        let mut scanner = FrameScanner::new(100);
        scanner.feed(&f[..3], |_| {}).unwrap();
        assert!(!scanner.at_boundary());
        scanner.feed(&f[3..f.len() - 1], |_| {}).unwrap();
        assert!(!scanner.at_boundary());
        scanner.feed(&f[f.len() - 1..], |_| {}).unwrap();
        assert!(scanner.at_boundary());
    }

    #[test]
    fn bad_frames_fail() {
        let mut scanner = FrameScanner::new(131_072);
        let err = starts(&mut scanner, b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
        assert!(err.contains("HTTP"), "{err}");
        let mut scanner = FrameScanner::new(131_072);
        assert!(starts(&mut scanner, b"AMQP\x00\x00\x09\x01")
            .unwrap_err()
            .contains("version"));
        let mut scanner = FrameScanner::new(10);
        assert!(starts(&mut scanner, &frame(3, 1, &[0; 11]))
            .unwrap_err()
            .contains("11-byte"));
        let mut scanner = FrameScanner::new(131_072);
        let mut bad_end = frame(1, 0, b"xxxx");
        *bad_end.last_mut().unwrap() = 0;
        assert!(starts(&mut scanner, &bad_end)
            .unwrap_err()
            .contains("end marker"));
    }

    #[test]
    fn whole_frames_are_found() {
        let mut data = frame(1, 2, &[0, 20, 0, 10, 0]);
        let len = data.len();
        data.extend(frame(8, 0, b""));
        let (start, n) = whole_frame(&data).unwrap();
        assert_eq!((start.channel, start.method, n), (2, Some((20, 10)), len));
        assert!(whole_frame(&data[..len - 1]).is_none());
        assert!(whole_frame(&data[..6]).is_none());
    }
}
