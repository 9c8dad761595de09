//! A client written by hand, for checks of what is on the wire that a client library hides:
//! amiquip reads a message's headers into a sorted map, which loses their order and repeated
//! keys. `raw_get_headers` takes one message and returns its headers as the broker holds them.

use crate::frames::{
    frame_bytes, longstr, method_payload, read_frame, shortstr, Frame, FRAME_END, FRAME_HEADER,
    FRAME_METHOD, PROTOCOL_HEADER,
};
use std::io::{Error, ErrorKind, Result, Write};
use std::net::TcpStream;
use std::time::Duration;

fn expect(conn: &mut TcpStream, channel: u16, method: (u16, u16)) -> Result<Frame> {
    loop {
        let frame = read_frame(conn)?;
        if frame.kind == FRAME_METHOD {
            if frame.channel == channel && frame.method() == Some(method) {
                return Ok(frame);
            }
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "expected {method:?} on channel {channel}, got {:?}",
                    frame.method()
                ),
            ));
        }
    }
}

fn send(conn: &mut TcpStream, channel: u16, class: u16, method: u16, args: &[u8]) -> Result<()> {
    let payload = method_payload(class, method, args);
    conn.write_all(&frame_bytes(FRAME_METHOD, channel, &payload, FRAME_END))
}

/// Takes one message off `queue` (no-ack) on the broker at `addr` (`host:port`, as guest) and
/// returns its headers in wire order, or None when the queue is empty or the message has no
/// headers property. Header values are shown as `S:text` for long strings, `?` for other types.
pub fn raw_get_headers(addr: &str, queue: &str) -> Result<Option<Vec<(String, String)>>> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(PROTOCOL_HEADER)?;
    expect(&mut conn, 0, (10, 10))?; // start
    let mut start_ok = 0u32.to_be_bytes().to_vec(); // no client properties (an empty table)
    shortstr(&mut start_ok, "PLAIN");
    longstr(&mut start_ok, b"\0guest\0guest");
    shortstr(&mut start_ok, "en_US");
    send(&mut conn, 0, 10, 11, &start_ok)?;
    let tune = expect(&mut conn, 0, (10, 30))?;
    // channel_max and frame_max as offered, no heartbeats
    let mut tune_ok = tune.payload[4..10].to_vec();
    tune_ok.extend_from_slice(&0u16.to_be_bytes());
    send(&mut conn, 0, 10, 31, &tune_ok)?;
    let mut open = Vec::new();
    shortstr(&mut open, "/");
    shortstr(&mut open, "");
    open.push(0);
    send(&mut conn, 0, 10, 40, &open)?;
    expect(&mut conn, 0, (10, 41))?;
    send(&mut conn, 1, 20, 10, &[0])?;
    expect(&mut conn, 1, (20, 11))?;
    let mut get = 0u16.to_be_bytes().to_vec();
    shortstr(&mut get, queue);
    get.push(1); // no-ack
    send(&mut conn, 1, 60, 70, &get)?;
    let answer = read_frame(&mut conn)?;
    let headers = match answer.method() {
        Some((60, 72)) => None, // get-empty
        Some((60, 71)) => {
            let header = read_frame(&mut conn)?;
            if header.kind != FRAME_HEADER {
                return Err(Error::new(ErrorKind::InvalidData, "no content header"));
            }
            headers_of(&header.payload)
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("basic.get answered with {other:?}"),
            ))
        }
    };
    let _ = conn.shutdown(std::net::Shutdown::Both);
    Ok(headers)
}

/// The headers table of a content header payload (class, weight, body size, flags, list).
fn headers_of(payload: &[u8]) -> Option<Vec<(String, String)>> {
    let flags = u16::from_be_bytes([payload[12], payload[13]]);
    let mut at = 14;
    if flags & (1 << 15) != 0 {
        at += 1 + payload[at] as usize; // content type
    }
    if flags & (1 << 14) != 0 {
        at += 1 + payload[at] as usize; // content encoding
    }
    if flags & (1 << 13) == 0 {
        return None;
    }
    let len = u32::from_be_bytes(payload[at..at + 4].try_into().ok()?) as usize;
    let table = &payload[at + 4..at + 4 + len];
    let mut out = Vec::new();
    let mut i = 0;
    while i < table.len() {
        let klen = table[i] as usize;
        let key = String::from_utf8_lossy(&table[i + 1..i + 1 + klen]).into_owned();
        i += 1 + klen;
        let kind = table[i];
        i += 1;
        if kind != b'S' {
            // Only string values are expected here; anything else ends the reading.
            out.push((key, "?".into()));
            break;
        }
        let vlen = u32::from_be_bytes(table[i..i + 4].try_into().ok()?) as usize;
        let value = String::from_utf8_lossy(&table[i + 4..i + 4 + vlen]).into_owned();
        i += 4 + vlen;
        out.push((key, format!("S:{value}")));
    }
    Some(out)
}
