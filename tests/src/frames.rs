//! AMQP 0-9-1 frames written and read by hand, for the fake broker (`badpeer`) and the raw
//! client (`raw`): both need to see or send what a real client library would hide or refuse.

use std::io::{ErrorKind, Read};

pub(crate) const FRAME_METHOD: u8 = 1;
pub(crate) const FRAME_HEADER: u8 = 2;
pub(crate) const FRAME_BODY: u8 = 3;
pub(crate) const FRAME_END: u8 = 0xCE;
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// One frame, without its header and end byte.
pub(crate) struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn method(&self) -> Option<(u16, u16)> {
        if self.kind != FRAME_METHOD || self.payload.len() < 4 {
            return None;
        }
        let p = &self.payload;
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    }
}

pub(crate) fn frame_bytes(kind: u8, ch: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.push(kind);
    frame.extend_from_slice(&ch.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(end);
    frame
}

pub(crate) fn method_payload(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(args.len() + 4);
    p.extend_from_slice(&class.to_be_bytes());
    p.extend_from_slice(&method.to_be_bytes());
    p.extend_from_slice(args);
    p
}

pub(crate) fn shortstr(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn longstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads one frame with `read_exact` (frames over 16 MiB are refused as garbage).
pub(crate) fn read_frame_with(
    mut read_exact: impl FnMut(usize) -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Frame> {
    let head = read_exact(7)?;
    let kind = head[0];
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    if size > 16 * 1024 * 1024 {
        return Err(std::io::Error::new(ErrorKind::InvalidData, "frame too big"));
    }
    let mut payload = read_exact(size + 1)?;
    payload.pop(); // frame end
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

/// `read_frame_with` over a blocking reader.
pub(crate) fn read_frame(conn: &mut impl Read) -> std::io::Result<Frame> {
    read_frame_with(|n| {
        let mut buf = vec![0u8; n];
        conn.read_exact(&mut buf)?;
        Ok(buf)
    })
}
