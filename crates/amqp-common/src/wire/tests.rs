//! The wire driven as amiquip drives it (its writes and reads), against a socket whose other
//! end the test reads and writes as the broker would.

use super::frames::{channel_open, CAPABILITIES, PROTOCOL_HEADER};
use super::*;
use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame};
use amq_protocol::protocol::connection::{AMQPMethod as Conn, StartOk};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::net::TcpListener;
use std::thread;

fn method_frame(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut f = vec![1];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xCE);
    f
}

fn start_ok() -> Vec<u8> {
    let mut properties = FieldTable::new();
    properties.insert("product".into(), AMQPValue::LongString("amiquip".into()));
    let frame = AMQPFrame::Method(
        0,
        AMQPClass::Connection(Conn::StartOk(StartOk {
            client_properties: properties,
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        })),
    );
    let mut buf = vec![0u8; 512];
    let (_, len) = gen_frame((&mut buf, 0), &frame).unwrap();
    buf.truncate(len);
    buf
}

fn tune_ok() -> Vec<u8> {
    let mut args = 2047u16.to_be_bytes().to_vec();
    args.extend_from_slice(&131_072u32.to_be_bytes());
    args.extend_from_slice(&30u16.to_be_bytes());
    method_frame(0, 10, 31, &args)
}

fn connection_open() -> Vec<u8> {
    method_frame(0, 10, 40, &[1, b'/', 0, 0])
}

fn open_ok(channel: u16) -> Vec<u8> {
    if channel == 0 {
        method_frame(0, 10, 41, &[0])
    } else {
        method_frame(channel, 20, 11, &[0, 0, 0, 0])
    }
}

/// A wire over one end of a loopback connection, and the other end as the broker.
fn connected() -> (Wire, WireControl, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (broker, _) = listener.accept().unwrap();
    broker
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut socket = Socket::new(client);
    socket.nonblocking().unwrap();
    let (wire, control) = Wire::new(
        Transport::Plain(socket),
        WireOptions {
            frame_max: 131_072,
            connection_name: "amqp-test".into(),
            open_channel: Some(1),
        },
    )
    .unwrap();
    (wire, control, broker)
}

/// What amiquip does with its output buffer: write until all is taken.
fn write_all(wire: &mut Wire, mut buf: &[u8]) {
    while !buf.is_empty() {
        match wire.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// What amiquip's reader gets within a moment (until the socket would block).
fn read_some(wire: &mut Wire) -> Vec<u8> {
    read_within(wire, Duration::from_secs(5))
}

/// What amiquip's reader gets, waiting at most `limit` for a first byte.
fn read_within(wire: &mut Wire, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match wire.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !out.is_empty() || Instant::now() > deadline {
                    return out;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Frames the broker side receives, parsed by amq-protocol.
fn receive(broker: &mut TcpStream, count: usize) -> Vec<AMQPFrame> {
    let mut data = Vec::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 4096];
    while frames.len() < count {
        let n = broker.read(&mut buf).unwrap();
        assert!(n > 0, "the wire closed the connection");
        data.extend_from_slice(&buf[..n]);
        while let Ok((rest, frame)) = parse_frame(&data) {
            let used = data.len() - rest.len();
            frames.push(frame);
            data.drain(..used);
        }
    }
    frames
}

/// Runs the client side of the handshake through the wire up to connection.open.
fn handshake(wire: &mut Wire, broker: &mut TcpStream) -> Vec<AMQPFrame> {
    write_all(wire, PROTOCOL_HEADER);
    write_all(wire, &start_ok());
    let mut both = tune_ok();
    both.extend_from_slice(&connection_open());
    write_all(wire, &both);
    // start-ok, tune-ok, connection.open and the early channel.open; not the header again.
    receive(broker, 4)
}

#[test]
fn handshake_is_rewritten_and_opens_channel_1_early() {
    let (mut wire, control, mut broker) = connected();
    let frames = handshake(&mut wire, &mut broker);
    match &frames[0] {
        AMQPFrame::Method(0, AMQPClass::Connection(Conn::StartOk(s))) => {
            assert_eq!(s.response, "\0guest\0guest");
            let Some(AMQPValue::FieldTable(caps)) = s.client_properties.get("capabilities") else {
                panic!("no capabilities: {s:?}");
            };
            assert_eq!(caps.len(), CAPABILITIES.len());
        }
        other => panic!("expected start-ok first, got {other:?}"),
    }
    assert!(matches!(
        frames[1],
        AMQPFrame::Method(0, AMQPClass::Connection(Conn::TuneOk(_)))
    ));
    assert!(matches!(
        frames[2],
        AMQPFrame::Method(0, AMQPClass::Connection(Conn::Open(_)))
    ));
    assert!(matches!(
        frames[3],
        AMQPFrame::Method(1, AMQPClass::Channel(_))
    ));
    assert_eq!(control.frame_max(), 131_072);

    // The broker answers both opens at once; amiquip sees only the connection's, until it
    // asks for channel 1, which is not sent again.
    let mut answers = open_ok(0);
    answers.extend_from_slice(&open_ok(1));
    broker.write_all(&answers).unwrap();
    assert_eq!(read_some(&mut wire), open_ok(0));
    write_all(&mut wire, &channel_open(1));
    assert_eq!(read_some(&mut wire), open_ok(1));
    broker.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(broker.read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "channel.open was sent twice"
    );
}

#[test]
fn open_ok_passes_when_amiquip_asked_first() {
    let (mut wire, _control, mut broker) = connected();
    handshake(&mut wire, &mut broker);
    broker.write_all(&open_ok(0)).unwrap();
    assert_eq!(read_some(&mut wire), open_ok(0));
    write_all(&mut wire, &channel_open(1));
    // Split across two writes, and followed by another frame.
    let mut rest = open_ok(1);
    let later = method_frame(0, 10, 60, &[]); // connection.blocked-ish filler on channel 0
    let tail = rest.split_off(5);
    broker.write_all(&rest).unwrap();
    thread::sleep(Duration::from_millis(20));
    let mut tail_and_later = tail;
    tail_and_later.extend_from_slice(&later);
    broker.write_all(&tail_and_later).unwrap();
    let mut expected = open_ok(1);
    expected.extend_from_slice(&later);
    let mut got = read_some(&mut wire);
    while got.len() < expected.len() {
        got.extend(read_some(&mut wire));
    }
    assert_eq!(got, expected);
}

#[test]
fn refusal_reason_is_kept() {
    let (mut wire, control, mut broker) = connected();
    write_all(&mut wire, PROTOCOL_HEADER);
    write_all(&mut wire, &start_ok());
    receive(&mut broker, 1);
    let text = b"ACCESS_REFUSED - Login was refused";
    let mut args = 403u16.to_be_bytes().to_vec();
    args.push(text.len() as u8);
    args.extend_from_slice(text);
    args.extend_from_slice(&[0, 0, 0, 0]);
    let close = method_frame(0, 10, 50, &args);
    broker.write_all(&close).unwrap();
    assert_eq!(read_some(&mut wire), close);
    assert_eq!(
        control.close_reason(),
        Some((403, "ACCESS_REFUSED - Login was refused".into()))
    );
}

#[test]
fn deadline_fails_reads_and_writes() {
    let (mut wire, control, _broker) = connected();
    control.set_deadline(Some(Instant::now() - Duration::from_millis(1)));
    let mut buf = [0u8; 16];
    let err = wire.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(control.timed_out());
    assert_eq!(
        wire.write(b"x").unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );
    control.set_deadline(None);
}

#[test]
fn frames_of_ours_go_between_amiquips() {
    let (mut wire, control, mut broker) = connected();
    handshake(&mut wire, &mut broker);
    broker.write_all(&open_ok(0)).unwrap();
    read_some(&mut wire);
    write_all(&mut wire, &channel_open(1));
    broker.write_all(&open_ok(1)).unwrap();
    read_some(&mut wire);

    // amiquip is halfway through a frame: ours wait for its end.
    let heartbeat_like = method_frame(1, 60, 10, &[0, 0, 0, 0, 0, 1, 0]); // basic.qos
    write_all(&mut wire, &heartbeat_like[..5]);
    let ours = method_frame(1, 85, 10, &[0]);
    let sender = {
        let control = control.clone();
        let ours = ours.clone();
        thread::spawn(move || control.send(&ours))
    };
    thread::sleep(Duration::from_millis(50));
    assert!(
        !sender.is_finished(),
        "sent in the middle of amiquip's frame"
    );
    write_all(&mut wire, &heartbeat_like[5..]);
    assert_eq!(sender.join().unwrap(), Ok(()));
    let frames = receive(&mut broker, 2);
    assert!(matches!(
        frames[0],
        AMQPFrame::Method(1, AMQPClass::Basic(_))
    ));
    assert!(matches!(
        frames[1],
        AMQPFrame::Method(1, AMQPClass::Confirm(_))
    ));

    // The broker closes the channel: nothing more of ours goes out.
    let mut args = 404u16.to_be_bytes().to_vec();
    args.extend_from_slice(&[3, b'n', b'o', b'!', 0, 60, 0, 40]);
    broker.write_all(&method_frame(1, 20, 40, &args)).unwrap();
    read_some(&mut wire);
    assert_eq!(control.send(&ours), Err(Gone));
}

#[test]
fn a_dropped_wire_refuses_frames() {
    let (wire, control, _broker) = connected();
    drop(wire);
    assert_eq!(control.send(b"x"), Err(Gone));
    assert_eq!(control.take_channel(), Err(Gone));
}

#[test]
fn confirms_and_returns_are_read_here_not_by_amiquip() {
    let (mut wire, control, mut broker) = open_session();
    control.take_channel().unwrap();
    let waiter = {
        let control = control.clone();
        thread::spawn(move || control.wait_confirmed(3))
    };
    let ack = |tag: u64, multiple: bool| {
        let mut args = tag.to_be_bytes().to_vec();
        args.push(u8::from(multiple));
        method_frame(1, 60, 80, &args)
    };
    // Two acks, something on channel 1 that is not amiquip's either, something for amiquip
    // on channel 0, then the third ack.
    let mut inbound = ack(1, false);
    inbound.extend_from_slice(&ack(2, false));
    inbound.extend_from_slice(&method_frame(1, 20, 20, &[1])); // channel.flow
    let for_amiquip = method_frame(0, 10, 60, &[0]); // connection.blocked
    inbound.extend_from_slice(&for_amiquip);
    broker.write_all(&inbound).unwrap();
    assert_eq!(
        read_some(&mut wire),
        for_amiquip,
        "channel 1 is not amiquip's"
    );
    thread::sleep(Duration::from_millis(20));
    assert!(!waiter.is_finished(), "woken before the third confirm");
    broker.write_all(&ack(3, false)).unwrap();
    assert!(read_within(&mut wire, Duration::from_millis(200)).is_empty());
    assert_eq!(waiter.join().unwrap(), Ok(3));
    assert_eq!(control.confirmed(), (3, None));

    // A return, with its content, is kept from amiquip too.
    let mut ret = 312u16.to_be_bytes().to_vec();
    for s in ["NO_ROUTE", "", "q"] {
        ret.push(s.len() as u8);
        ret.extend_from_slice(s.as_bytes());
    }
    let mut inbound = method_frame(1, 60, 50, &ret);
    let mut header = vec![1, 0, 1];
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&1u64.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    header.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    header[0] = 2;
    header.extend_from_slice(&payload);
    header.push(0xCE);
    inbound.extend_from_slice(&header);
    inbound.extend_from_slice(&[3, 0, 1, 0, 0, 0, 1, b'x', 0xCE]);
    inbound.extend_from_slice(&ack(4, false));
    broker.write_all(&inbound).unwrap();
    assert!(read_within(&mut wire, Duration::from_millis(200)).is_empty());
    assert_eq!(control.wait_confirmed(4), Ok(4));
    let returned = control.returned().expect("the return was read");
    assert_eq!((returned.code, returned.routing_key.as_str()), (312, "q"));
}

#[test]
fn inbound_garbage_fails_the_read() {
    let (mut wire, _control, mut broker) = connected();
    write_all(&mut wire, PROTOCOL_HEADER);
    broker
        .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(20));
    let mut buf = [0u8; 64];
    let err = loop {
        match wire.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("HTTP"), "{err}");
}

/// The wire after a handshake with channel 1 open, as amiquip leaves it.
fn open_session() -> (Wire, WireControl, TcpStream) {
    let (mut wire, control, mut broker) = connected();
    handshake(&mut wire, &mut broker);
    let mut answers = open_ok(0);
    answers.extend_from_slice(&open_ok(1));
    broker.write_all(&answers).unwrap();
    read_some(&mut wire);
    write_all(&mut wire, &channel_open(1));
    read_some(&mut wire);
    (wire, control, broker)
}

#[test]
fn close_waits_for_close_ok() {
    let (_wire, control, mut broker) = open_session();
    let closer = {
        let control = control.clone();
        thread::spawn(move || {
            control.close(
                &frames::connection_close(),
                Instant::now() + Duration::from_secs(5),
            )
        })
    };
    match receive(&mut broker, 1).remove(0) {
        AMQPFrame::Method(0, AMQPClass::Connection(Conn::Close(_))) => {}
        other => panic!("expected connection.close, got {other:?}"),
    }
    thread::sleep(Duration::from_millis(20));
    assert!(!closer.is_finished(), "done before the close-ok");
    broker.write_all(&method_frame(0, 10, 51, &[])).unwrap();
    assert_eq!(closer.join().unwrap(), Ok(()));
}

#[test]
fn close_is_bounded_and_notices_a_lost_connection() {
    let (_wire, control, broker) = open_session();
    let started = Instant::now();
    let silent = control.close(
        &frames::connection_close(),
        Instant::now() + Duration::from_millis(200),
    );
    assert_eq!(silent, Err(Closing::TimedOut));
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(broker);
    let (_wire, control, broker) = open_session();
    drop(broker);
    assert_eq!(
        control.close(
            &frames::connection_close(),
            Instant::now() + Duration::from_secs(5)
        ),
        Err(Closing::Gone)
    );
}
