//! The frames the tools write themselves, beside amiquip: the protocol header, a channel.open,
//! the client properties of connection.start-ok, basic.publish with its content, and on
//! channel 1 confirm.select, basic.get, basic.ack, basic.qos, channel.close-ok and
//! connection.close.
//!
//! Publishing is encoded here rather than by amiquip because every message of a run has the
//! same method frame and the same properties: both are encoded once, and each message costs a
//! copy of its body and a few bytes of framing (amiquip builds and allocates all of it anew for
//! every message, then hands it to its I/O thread). It also keeps `-H` headers in command-line
//! order, duplicates included, as the C tool sends them: amiquip's field table is a sorted map.

use super::scan::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD};
use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame};
use amq_protocol::protocol::connection::AMQPMethod as ConnectionMethod;
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldTable};

/// What a client sends first: AMQP 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Class and method ids the wire module looks for.
pub const CONNECTION_START_OK: (u16, u16) = (10, 11);
pub const CONNECTION_TUNE_OK: (u16, u16) = (10, 31);
pub const CONNECTION_OPEN: (u16, u16) = (10, 40);
pub const CONNECTION_CLOSE: (u16, u16) = (10, 50);
pub const CONNECTION_CLOSE_OK: (u16, u16) = (10, 51);
pub const CHANNEL_OPEN: (u16, u16) = (20, 10);
pub const CHANNEL_OPEN_OK: (u16, u16) = (20, 11);
pub const CHANNEL_CLOSE: (u16, u16) = (20, 40);
pub const CHANNEL_CLOSE_OK: (u16, u16) = (20, 41);
pub const BASIC_QOS_OK: (u16, u16) = (60, 11);
pub const BASIC_GET_OK: (u16, u16) = (60, 71);
pub const BASIC_GET_EMPTY: (u16, u16) = (60, 72);
pub const BASIC_RETURN: (u16, u16) = (60, 50);
pub const BASIC_ACK: (u16, u16) = (60, 80);
pub const BASIC_NACK: (u16, u16) = (60, 120);
const BASIC: u16 = 60;
const BASIC_PUBLISH: u16 = 40;

/// The capabilities the tools advertise in connection.start-ok. The broker's behaviour depends
/// on them: without `authentication_failure_close` RabbitMQ answers a refused login by closing
/// the socket three seconds later, instead of with ACCESS_REFUSED at once.
pub const CAPABILITIES: [&str; 7] = [
    "authentication_failure_close",
    "basic.nack",
    "connection.blocked",
    "consumer_cancel_notify",
    "exchange_exchange_bindings",
    "per_consumer_qos",
    "publisher_confirms",
];

/// A frame around `payload`.
fn push_frame(out: &mut Vec<u8>, kind: u8, channel: u16, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
}

/// channel.open for `channel`.
pub fn channel_open(channel: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    // class, method, and the reserved out-of-band short string (empty)
    push_frame(&mut out, FRAME_METHOD, channel, &[0, 20, 0, 10, 0]);
    out
}

/// confirm.select for `channel`, without an answer (nowait): the broker confirms every
/// publish on the channel after it, and closes the channel if it refuses.
pub fn confirm_select(channel: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    push_frame(&mut out, FRAME_METHOD, channel, &[0, 85, 0, 10, 1]);
    out
}

/// basic.get of one message from `queue`, to be acknowledged.
pub fn basic_get(channel: u16, queue: &str) -> Result<Vec<u8>, String> {
    let mut args = vec![0, 60, 0, 70, 0, 0]; // class, method, reserved (ticket)
    short_string(&mut args, "the queue name", queue)?;
    args.push(0); // no-ack off
    let mut out = Vec::with_capacity(args.len() + 8);
    push_frame(&mut out, FRAME_METHOD, channel, &args);
    Ok(out)
}

/// basic.ack of one delivery.
pub fn basic_ack(channel: u16, delivery_tag: u64) -> Vec<u8> {
    let mut args = vec![0, 60, 0, 80];
    args.extend_from_slice(&delivery_tag.to_be_bytes());
    args.push(0); // not multiple
    let mut out = Vec::with_capacity(21);
    push_frame(&mut out, FRAME_METHOD, channel, &args);
    out
}

/// basic.qos changing nothing (no size or count limit, this channel only): the broker answers
/// it after every method sent on the channel before it, which makes it a barrier.
pub fn basic_qos_barrier(channel: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(19);
    push_frame(
        &mut out,
        FRAME_METHOD,
        channel,
        &[0, 60, 0, 10, 0, 0, 0, 0, 0, 0, 0],
    );
    out
}

/// channel.close-ok, the answer to the broker's channel.close.
pub fn channel_close_ok(channel: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    push_frame(&mut out, FRAME_METHOD, channel, &[0, 20, 0, 41]);
    out
}

/// connection.close, as a client closes it (200, no failed method).
pub fn connection_close() -> Vec<u8> {
    let mut out = Vec::with_capacity(22);
    let mut args = vec![0, 10, 0, 50];
    args.extend_from_slice(&200u16.to_be_bytes());
    short_string_unchecked(&mut args, "goodbye");
    args.extend_from_slice(&[0, 0, 0, 0]);
    push_frame(&mut out, FRAME_METHOD, 0, &args);
    out
}

/// A short string known to fit (a constant of ours).
fn short_string_unchecked(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// The frame_max of a connection.tune-ok frame (the whole frame, header included).
pub fn tune_ok_frame_max(frame: &[u8]) -> Option<u32> {
    // header (7), class and method (4), channel_max (2), then frame_max
    let bytes = frame.get(13..17)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The reply code and text of a connection.close or a channel.close (the whole frame: both
/// start their arguments with them).
pub fn close_reason(frame: &[u8]) -> Option<(u16, String)> {
    Some((u16_at(frame, 11)?, short_at(frame, 13)?.0))
}

pub(super) fn u16_at(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
}

pub(super) fn u64_at(frame: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(frame.get(at..at + 8)?.try_into().ok()?))
}

/// A short string at `at`, and where the next field starts.
pub(super) fn short_at(frame: &[u8], at: usize) -> Option<(String, usize)> {
    let len = usize::from(*frame.get(at)?);
    let text = frame.get(at + 1..at + 1 + len)?;
    Some((String::from_utf8_lossy(text).into_owned(), at + 1 + len))
}

/// amiquip's connection.start-ok (the whole frame) with the client properties replaced: the
/// capabilities the tools rely on, and the product and connection name that the broker shows
/// to operators. The mechanism and the credentials are kept as they are. None when the frame
/// is not a start-ok that amq-protocol can read, in which case it is sent unchanged.
pub fn rewrite_start_ok(frame: &[u8], connection_name: &str) -> Option<Vec<u8>> {
    let (rest, parsed) = parse_frame(frame).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let AMQPFrame::Method(channel, AMQPClass::Connection(ConnectionMethod::StartOk(mut start_ok))) =
        parsed
    else {
        return None;
    };
    let mut capabilities = FieldTable::new();
    for name in CAPABILITIES {
        capabilities.insert(name.to_string(), AMQPValue::Boolean(true));
    }
    let text = |s: &str| AMQPValue::LongString(s.to_string());
    let properties = &mut start_ok.client_properties;
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    properties.insert("product".into(), text("amqp-tools-rs"));
    properties.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    properties.insert("platform".into(), text("Rust"));
    properties.insert("connection_name".into(), text(connection_name));
    let rewritten = AMQPFrame::Method(
        channel,
        AMQPClass::Connection(ConnectionMethod::StartOk(start_ok)),
    );
    let mut buf = vec![0u8; frame.len() + 1024 + connection_name.len()];
    let (_, len) = gen_frame((&mut buf, 0), &rewritten).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Basic properties of a published message. Headers are string values, in the order given;
/// a key may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub headers: Vec<(String, String)>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub expiration: Option<String>,
    pub message_id: Option<String>,
    pub timestamp: Option<u64>,
    pub type_: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
}

fn short_string(out: &mut Vec<u8>, what: &str, s: &str) -> Result<(), String> {
    let len = u8::try_from(s.len())
        .map_err(|_| format!("{what} is {} bytes long; AMQP allows at most 255", s.len()))?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn long_string(out: &mut Vec<u8>, what: &str, s: &[u8]) -> Result<(), String> {
    let len = u32::try_from(s.len()).map_err(|_| format!("{what} is too long for AMQP"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
    Ok(())
}

/// A property list being built, with its flags.
struct PropertyList {
    flags: u16,
    list: Vec<u8>,
}

impl PropertyList {
    fn short(&mut self, bit: u16, what: &str, value: &Option<String>) -> Result<(), String> {
        if let Some(v) = value {
            self.flags |= 1 << bit;
            short_string(&mut self.list, what, v)?;
        }
        Ok(())
    }

    fn octet(&mut self, bit: u16, value: Option<u8>) {
        if let Some(v) = value {
            self.flags |= 1 << bit;
            self.list.push(v);
        }
    }
}

impl Properties {
    /// The property flags and list of a content header (AMQP 0-9-1 section 4.2.6.1).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut p = PropertyList {
            flags: 0,
            list: Vec::new(),
        };
        p.short(15, "the content type", &self.content_type)?;
        p.short(14, "the content encoding", &self.content_encoding)?;
        if !self.headers.is_empty() {
            let mut table = Vec::new();
            for (key, value) in &self.headers {
                short_string(&mut table, &format!("the header key '{key}'"), key)?;
                table.push(b'S');
                long_string(&mut table, "a header value", value.as_bytes())?;
            }
            p.flags |= 1 << 13;
            long_string(&mut p.list, "the headers", &table)?;
        }
        p.octet(12, self.delivery_mode);
        p.octet(11, self.priority);
        p.short(10, "the correlation id", &self.correlation_id)?;
        p.short(9, "the reply-to queue", &self.reply_to)?;
        p.short(8, "the expiration", &self.expiration)?;
        p.short(7, "the message id", &self.message_id)?;
        if let Some(ts) = self.timestamp {
            p.flags |= 1 << 6;
            p.list.extend_from_slice(&ts.to_be_bytes());
        }
        p.short(5, "the type", &self.type_)?;
        p.short(4, "the user id", &self.user_id)?;
        p.short(3, "the app id", &self.app_id)?;
        let mut out = Vec::with_capacity(2 + p.list.len());
        out.extend_from_slice(&p.flags.to_be_bytes());
        out.extend_from_slice(&p.list);
        Ok(out)
    }
}

/// The frames of a basic.publish on one channel, to one exchange and routing key with the same
/// properties, encoded once; `push` adds one message's frames.
#[derive(Debug, Clone)]
pub struct PublishFrames {
    /// The method frame and the content header frame up to its body size field.
    head: Vec<u8>,
    /// The rest of the content header frame (the properties and the end byte).
    properties: Vec<u8>,
    /// The start of a body frame (type and channel).
    body_start: [u8; 3],
    body_max: usize,
}

impl PublishFrames {
    /// `frame_max` is the connection's (from connection.tune-ok): body frames are cut to fit.
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        properties: &Properties,
        frame_max: u32,
    ) -> Result<PublishFrames, String> {
        let mut args = Vec::new();
        args.extend_from_slice(&BASIC.to_be_bytes());
        args.extend_from_slice(&BASIC_PUBLISH.to_be_bytes());
        args.extend_from_slice(&0u16.to_be_bytes()); // reserved (ticket)
        short_string(&mut args, "the exchange name", exchange)?;
        short_string(&mut args, "the routing key", routing_key)?;
        args.push(u8::from(mandatory)); // immediate is never set: RabbitMQ refuses it
        let mut head = Vec::with_capacity(args.len() + 8 + 11);
        push_frame(&mut head, FRAME_METHOD, channel, &args);
        let mut encoded = properties.encode()?;
        let [c0, c1] = channel.to_be_bytes();
        head.extend_from_slice(&[FRAME_HEADER, c0, c1]);
        // class, weight and body size (12 bytes), then the properties
        head.extend_from_slice(&((12 + encoded.len()) as u32).to_be_bytes());
        head.extend_from_slice(&BASIC.to_be_bytes());
        head.extend_from_slice(&0u16.to_be_bytes()); // weight
        encoded.push(FRAME_END);
        // A frame_max of 0 means "no limit"; AMQP's minimum is 4096.
        let frame_max = if frame_max == 0 {
            u32::MAX
        } else {
            frame_max.max(4096)
        };
        Ok(PublishFrames {
            head,
            properties: encoded,
            body_start: [FRAME_BODY, c0, c1],
            body_max: frame_max as usize - 8,
        })
    }

    /// How many bytes `push` adds for a body of `len` bytes.
    pub fn encoded_len(&self, len: usize) -> usize {
        let frames = len.div_ceil(self.body_max);
        self.head.len() + 8 + self.properties.len() + len + 8 * frames
    }

    /// Appends the method, content header and body frames of one message to `out`.
    pub fn push(&self, body: &[u8], out: &mut Vec<u8>) {
        out.reserve(self.encoded_len(body.len()));
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.properties);
        for piece in body.chunks(self.body_max) {
            out.extend_from_slice(&self.body_start);
            out.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            out.extend_from_slice(piece);
            out.push(FRAME_END);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::AMQPMethod as BasicMethod;

    /// Every frame of `data`, as amq-protocol reads them.
    fn frames(mut data: &[u8]) -> Vec<AMQPFrame> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (rest, frame) = parse_frame(data).expect("amq-protocol reads the frame");
            out.push(frame);
            data = rest;
        }
        out
    }

    fn all_properties() -> Properties {
        Properties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("gzip".into()),
            headers: vec![("b".into(), "1".into()), ("a".into(), "2".into())],
            delivery_mode: Some(2),
            priority: Some(7),
            correlation_id: Some("corr".into()),
            reply_to: Some("replies".into()),
            expiration: Some("60000".into()),
            message_id: Some("m-1".into()),
            timestamp: Some(1_700_000_000),
            type_: Some("kind".into()),
            user_id: Some("guest".into()),
            app_id: Some("app".into()),
        }
    }

    #[test]
    fn publish_frames_read_back_as_sent() {
        let publish = PublishFrames::new(1, "ex", "key", true, &all_properties(), 4096).unwrap();
        let body = vec![b'x'; 10_000];
        let mut out = Vec::new();
        publish.push(&body, &mut out);
        assert_eq!(out.len(), publish.encoded_len(body.len()));
        let got = frames(&out);
        assert_eq!(got.len(), 2 + 3, "method, header and three body frames");
        match &got[0] {
            AMQPFrame::Method(1, AMQPClass::Basic(BasicMethod::Publish(p))) => {
                assert_eq!((p.exchange.as_str(), p.routing_key.as_str()), ("ex", "key"));
                assert!(p.mandatory && !p.immediate);
            }
            other => panic!("not a basic.publish: {other:?}"),
        }
        match &got[1] {
            AMQPFrame::Header(1, 60, header) => {
                assert_eq!(header.body_size, 10_000);
                let p = &header.properties;
                assert_eq!(p.content_type().as_deref(), Some("text/plain"));
                assert_eq!(p.content_encoding().as_deref(), Some("gzip"));
                assert_eq!(*p.delivery_mode(), Some(2));
                assert_eq!(*p.priority(), Some(7));
                assert_eq!(p.correlation_id().as_deref(), Some("corr"));
                assert_eq!(p.reply_to().as_deref(), Some("replies"));
                assert_eq!(p.expiration().as_deref(), Some("60000"));
                assert_eq!(p.message_id().as_deref(), Some("m-1"));
                assert_eq!(*p.timestamp(), Some(1_700_000_000));
                assert_eq!(p.type_().as_deref(), Some("kind"));
                assert_eq!(p.user_id().as_deref(), Some("guest"));
                assert_eq!(p.app_id().as_deref(), Some("app"));
                let headers = p.headers().clone().unwrap();
                assert_eq!(headers.get("a"), Some(&AMQPValue::LongString("2".into())));
                assert_eq!(headers.get("b"), Some(&AMQPValue::LongString("1".into())));
            }
            other => panic!("not a content header: {other:?}"),
        }
        let mut joined = Vec::new();
        for frame in &got[2..] {
            match frame {
                AMQPFrame::Body(1, piece) => {
                    assert!(piece.len() <= 4096 - 8);
                    joined.extend_from_slice(piece);
                }
                other => panic!("not a body frame: {other:?}"),
            }
        }
        assert_eq!(joined, body);
    }

    #[test]
    fn headers_keep_order_and_duplicates() {
        let properties = Properties {
            headers: vec![
                ("b".into(), "1".into()),
                ("a".into(), "2".into()),
                ("a".into(), "3".into()),
            ],
            ..Properties::default()
        };
        let encoded = properties.encode().unwrap();
        let mut table = Vec::new();
        for (k, v) in [("b", "1"), ("a", "2"), ("a", "3")] {
            table.push(1);
            table.extend_from_slice(k.as_bytes());
            table.push(b'S');
            table.extend_from_slice(&1u32.to_be_bytes());
            table.extend_from_slice(v.as_bytes());
        }
        let mut expected = (1u16 << 13).to_be_bytes().to_vec();
        expected.extend_from_slice(&(table.len() as u32).to_be_bytes());
        expected.extend_from_slice(&table);
        assert_eq!(encoded, expected);
    }

    #[test]
    fn empty_body_has_no_body_frame() {
        let publish =
            PublishFrames::new(1, "", "q", false, &Properties::default(), 131_072).unwrap();
        let mut out = Vec::new();
        publish.push(b"", &mut out);
        assert_eq!(frames(&out).len(), 2);
        assert_eq!(out.len(), publish.encoded_len(0));
    }

    #[test]
    fn names_too_long_are_refused() {
        let long = "x".repeat(256);
        assert!(PublishFrames::new(1, &long, "", false, &Properties::default(), 0).is_err());
        let properties = Properties {
            message_id: Some(long),
            ..Properties::default()
        };
        assert!(properties.encode().unwrap_err().contains("message id"));
    }

    #[test]
    fn start_ok_gets_capabilities() {
        let mut client_properties = FieldTable::new();
        client_properties.insert("product".into(), AMQPValue::LongString("amiquip".into()));
        let start_ok = AMQPFrame::Method(
            0,
            AMQPClass::Connection(ConnectionMethod::StartOk(
                amq_protocol::protocol::connection::StartOk {
                    client_properties,
                    mechanism: "PLAIN".into(),
                    response: "\0guest\0secret".into(),
                    locale: "en_US".into(),
                },
            )),
        );
        let mut buf = vec![0u8; 1024];
        let (_, len) = gen_frame((&mut buf, 0), &start_ok).unwrap();
        let rewritten = rewrite_start_ok(&buf[..len], "amqp-get").unwrap();
        match frames(&rewritten).remove(0) {
            AMQPFrame::Method(0, AMQPClass::Connection(ConnectionMethod::StartOk(s))) => {
                assert_eq!(s.response, "\0guest\0secret");
                assert_eq!(
                    (s.mechanism.as_str(), s.locale.as_str()),
                    ("PLAIN", "en_US")
                );
                let p = &s.client_properties;
                assert_eq!(
                    p.get("connection_name"),
                    Some(&AMQPValue::LongString("amqp-get".into()))
                );
                let Some(AMQPValue::FieldTable(caps)) = p.get("capabilities") else {
                    panic!("no capabilities table");
                };
                for name in CAPABILITIES {
                    assert_eq!(caps.get(name), Some(&AMQPValue::Boolean(true)), "{name}");
                }
            }
            other => panic!("not a start-ok: {other:?}"),
        }
        assert!(rewrite_start_ok(&channel_open(1), "x").is_none());
    }

    #[test]
    fn get_reads_back() {
        use amq_protocol::protocol::basic::AMQPMethod as B;
        match frames(&basic_get(1, "jobs").unwrap()).remove(0) {
            AMQPFrame::Method(1, AMQPClass::Basic(B::Get(g))) => {
                assert_eq!((g.queue.as_str(), g.no_ack), ("jobs", false))
            }
            other => panic!("not a basic.get: {other:?}"),
        }
        assert!(basic_get(1, &"q".repeat(256)).is_err());
    }

    #[test]
    fn ack_reads_back() {
        use amq_protocol::protocol::basic::AMQPMethod as B;
        match frames(&basic_ack(1, 42)).remove(0) {
            AMQPFrame::Method(1, AMQPClass::Basic(B::Ack(a))) => {
                assert_eq!((a.delivery_tag, a.multiple), (42, false))
            }
            other => panic!("not a basic.ack: {other:?}"),
        }
    }

    #[test]
    fn qos_and_close_ok_read_back() {
        use amq_protocol::protocol::basic::AMQPMethod as B;
        use amq_protocol::protocol::channel::AMQPMethod as C;
        match frames(&basic_qos_barrier(1)).remove(0) {
            AMQPFrame::Method(1, AMQPClass::Basic(B::Qos(q))) => {
                assert_eq!((q.prefetch_size, q.prefetch_count, q.global), (0, 0, false))
            }
            other => panic!("not a basic.qos: {other:?}"),
        }
        assert!(matches!(
            frames(&channel_close_ok(1)).remove(0),
            AMQPFrame::Method(1, AMQPClass::Channel(C::CloseOk(_)))
        ));
    }

    #[test]
    fn confirm_select_reads_back() {
        use amq_protocol::protocol::confirm::AMQPMethod as ConfirmMethod;
        match frames(&confirm_select(1)).remove(0) {
            AMQPFrame::Method(1, AMQPClass::Confirm(ConfirmMethod::Select(s))) => {
                assert!(s.nowait)
            }
            other => panic!("not a confirm.select: {other:?}"),
        }
    }

    #[test]
    fn connection_close_reads_back() {
        match frames(&connection_close()).remove(0) {
            AMQPFrame::Method(0, AMQPClass::Connection(ConnectionMethod::Close(c))) => {
                assert_eq!((c.reply_code, c.class_id, c.method_id), (200, 0, 0));
            }
            other => panic!("not a connection.close: {other:?}"),
        }
    }

    #[test]
    fn channel_open_and_tune_ok() {
        match frames(&channel_open(3)).remove(0) {
            AMQPFrame::Method(3, AMQPClass::Channel(_)) => {}
            other => panic!("not a channel.open: {other:?}"),
        }
        let mut tune_ok = vec![1, 0, 0, 0, 0, 0, 12, 0, 10, 0, 31, 7, 255];
        tune_ok.extend_from_slice(&131_072u32.to_be_bytes());
        tune_ok.extend_from_slice(&[0, 30, FRAME_END]);
        assert_eq!(tune_ok_frame_max(&tune_ok), Some(131_072));
    }
}
