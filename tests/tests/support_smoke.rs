//! Exercises the test-support library itself against the real broker, so a broken helper
//! shows up here rather than as a confusing failure in a tool's test.

use amqp_tools_tests::amiquip::{
    AmqpProperties, AmqpValue, Connection, ConsumerOptions, FieldTable, QueueDeclareOptions,
};
use amqp_tools_tests::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const AMQP_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";

#[test]
fn unique_names_differ_and_are_short_ascii() {
    let a = unique("x");
    let b = unique("x");
    assert_ne!(a, b);
    assert!(a.starts_with("t-x-") && a.is_ascii() && a.len() < 64, "{a}");
}

#[test]
fn broker_publish_count_drain_roundtrip() {
    let broker = Broker::connect();
    let q = broker.temp_queue("smoke");
    assert_eq!(broker.count(&q), Some(0));

    let mut headers = FieldTable::new();
    headers.insert("zeta".into(), AmqpValue::LongString("last".into()));
    headers.insert("alpha".into(), AmqpValue::LongInt(5));
    headers.insert("flag".into(), AmqpValue::Boolean(true));
    let props = AmqpProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into())
        .with_headers(headers);
    broker.publish(&q, b"one");
    broker.publish_with("", &q, b"two", props);
    assert_eq!(broker.count(&q), Some(2));

    let msgs = broker.drain(&q);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].body, b"one");
    assert_eq!(msgs[0].props, Props::default());
    assert_eq!(
        (msgs[0].exchange.as_str(), msgs[0].routing_key.as_str()),
        ("", q.as_str())
    );
    assert!(!msgs[1].redelivered);
    let p = &msgs[1].props;
    assert_eq!(p.delivery_mode, Some(2));
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    let h: Vec<(&str, &str)> = p
        .headers
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        h,
        [("alpha", "I:5"), ("flag", "t:true"), ("zeta", "S:last")]
    );
    assert_eq!(broker.count(&q), Some(0));

    broker.publish(&q, b"x");
    assert_eq!(broker.purge(&q), 1);
    broker.delete(&q);
    assert!(!broker.exists(&q));
    // A failed passive declare must not break the shared channel.
    broker.declare(&q);
    assert!(broker.exists(&q));
}

#[test]
fn broker_drop_deletes_what_it_declared() {
    let q = unique("cleanup");
    {
        let b = Broker::connect();
        b.declare_durable(&q);
        assert!(b.exists(&q));
    }
    assert!(!Broker::connect().exists(&q));
}

#[test]
#[should_panic(expected = "is RabbitMQ running")]
fn broker_connect_failure_is_explained() {
    Broker::connect_to(&format!("amqp://guest:guest@127.0.0.1:{}", refused_port()));
}

#[test]
fn rabbitmqctl_queue_bindings_consumers_connections() {
    let broker = Broker::connect();
    let q = unique("ctl");
    let mut args = FieldTable::new();
    args.insert("x-message-ttl".into(), AmqpValue::LongInt(60_000));
    broker.declare_with(
        &q,
        QueueDeclareOptions {
            durable: true,
            arguments: args,
            ..QueueDeclareOptions::default()
        },
    );
    let x = unique("ctl-x");
    broker.declare_exchange(&x, "direct");
    broker.bind(&q, &x, "rk");
    broker.publish(&q, b"m");

    let info = queue_info(&q).expect("queue listed");
    eprintln!("queue_info: {info:?}");
    assert!(info.durable && !info.auto_delete && !info.exclusive);
    assert_eq!(info.messages_ready, 1);
    assert_eq!(info.consumers, 0);
    assert_eq!(
        info.arguments.to_string(),
        r#"[["x-message-ttl","signedint",60000]]"#
    );
    assert!(queue_info(&unique("absent")).is_none());

    let mut b = bindings(&q);
    b.sort();
    assert_eq!(
        b,
        [(String::new(), q.clone()), (x.clone(), "rk".to_string())]
    );

    let ch = broker.channel();
    ch.qos(0, 7, false).unwrap();
    let opts = ConsumerOptions {
        exclusive: true,
        ..ConsumerOptions::default()
    };
    let consumer = ch.basic_consume(q.as_str(), opts).unwrap();
    let cs = consumers(&q);
    eprintln!("consumers: {cs:?}");
    assert_eq!(cs.len(), 1);
    assert_eq!(
        (cs[0].prefetch_count, cs[0].ack_required, cs[0].exclusive),
        (7, true, true)
    );
    cancel_consumer(consumer);

    let conns = connections();
    eprintln!("connections[0]: {}", conns[0]);
    assert!(conns
        .iter()
        .any(|c| client_property(c, "product").and_then(|v| v.as_str()) == Some("amiquip")));
}

#[test]
fn rabbitmqctl_closes_a_connection_by_port() {
    let proxy = Proxy::to_broker();
    let mut conn = Connection::insecure_open(&proxy.url()).unwrap();
    let ch = conn.open_channel(None).unwrap();
    let ports = proxy.upstream_ports();
    assert_eq!(ports.len(), 1);
    assert_eq!(close_connections_from_port(ports[0], "smoke test"), 1);
    assert!(wait_until(Duration::from_secs(5), || ch
        .queue_declare_passive("amq.none")
        .is_err()));
    assert_eq!(close_connections_from_port(ports[0], "again"), 0);
}

#[test]
fn wait_until_polls_and_gives_up() {
    let start = Instant::now();
    assert!(wait_until(Duration::from_secs(1), || start.elapsed()
        > Duration::from_millis(120)));
    assert!(!wait_until(Duration::from_millis(150), || false));
}

#[test]
fn proxy_forwards_cuts_pauses_and_refuses() {
    let proxy = Proxy::to_broker();

    // Forwarding: a real AMQP connection through the proxy works.
    let mut conn = Connection::insecure_open(&proxy.url()).expect("connect through proxy");
    let ch = conn.open_channel(None).unwrap();
    let q = ch
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(q.name().starts_with("amq.gen-"));
    assert_eq!((proxy.connections(), proxy.live()), (1, 1));

    // Cut: the client library notices promptly.
    proxy.cut();
    let start = Instant::now();
    assert!(wait_until(Duration::from_secs(5), || ch
        .queue_declare_passive(q.name())
        .is_err()));
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(ch);
    drop(conn);
    assert!(wait_until(Duration::from_secs(2), || proxy.live() == 0));

    // Pause: bytes stop flowing both ways until resume.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    proxy.pause();
    s.write_all(AMQP_HEADER).unwrap();
    let mut buf = [0u8; 1];
    let e = s.read(&mut buf).expect_err("paused proxy must stay silent");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    proxy.resume();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(s.read(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], 1, "connection.start is a method frame");
    assert_eq!(proxy.connections(), 2);
    drop(s);

    // Refuse: the port really refuses, then serves again.
    proxy.refuse(true);
    let e = TcpStream::connect(("127.0.0.1", proxy.port())).expect_err("refusing");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    proxy.refuse(false);
    assert!(wait_until(Duration::from_secs(2), || TcpStream::connect((
        "127.0.0.1",
        proxy.port()
    ))
    .is_ok()));
}

#[test]
fn fake_peers_misbehave_as_advertised() {
    let mut buf = [0u8; 64];

    let (port, _g) = silent_peer();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(AMQP_HEADER).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let e = s.read(&mut buf).expect_err("silent");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );

    let (port, _g) = closing_peer();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("closing peer: {other:?}"),
    }

    let (port, _g) = http_peer();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(AMQP_HEADER).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"HTTP/1.1 400 Bad Request\r\n\r\n");

    let e = TcpStream::connect(("127.0.0.1", refused_port())).expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn cmd_runs_with_stdin_env_and_status() {
    let out = Cmd::new("/bin/sh")
        .args(["-c", "cat; echo \"$FOO\" >&2; exit 3"])
        .env("FOO", "bar")
        .stdin("in")
        .run();
    assert_eq!((out.code, out.signal, out.status()), (Some(3), None, 3));
    assert_eq!(out.stdout, b"in");
    assert_eq!(out.stderr, "bar\n");

    let out = Cmd::new("/bin/sh").args(["-c", "kill -TERM $$"]).run();
    assert_eq!((out.code, out.signal, out.status()), (None, Some(15), 143));
}

#[test]
fn cmd_timeout_kills_the_group_and_panics() {
    let start = Instant::now();
    let err = std::panic::catch_unwind(|| {
        // The grandchild keeps stdout open: the timeout must reach it too.
        Cmd::new("/bin/sh")
            .args(["-c", "echo started; sleep 30 & wait"])
            .timeout(Duration::from_millis(300))
            .run()
    })
    .expect_err("must time out");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("timed out") && msg.contains("started"),
        "{msg}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn running_background_process_signal_and_wait() {
    let mut r = Cmd::new("/bin/sh")
        .args([
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .spawn();
    assert!(wait_until(Duration::from_secs(5), || r.stdout_now() == b"ready\n"));
    assert!(r.wait_timeout(Duration::from_millis(100)).is_none());
    r.signal(libc::SIGTERM);
    let out = r
        .wait_timeout(Duration::from_secs(5))
        .expect("exits on TERM");
    assert_eq!(out.status(), 7);
    assert_eq!(out.stdout_str(), "ready\ngot-term\n");
}

#[test]
fn reference_amqp_get_through_cmd() {
    let Some(get) = require_reference("amqp-get") else {
        return;
    };
    let broker = Broker::connect();
    let q = broker.temp_queue("ref-get");
    broker.publish(&q, b"hello");
    let out = Cmd::new(&get).args(["-u", &broker_url(), "-q", &q]).run();
    out.expect_status(0);
    assert_eq!(out.stdout, b"hello");
    assert_eq!(broker.count(&q), Some(0));

    let out = Cmd::new(&get).args(["-u", &broker_url(), "-q", &q]).run();
    eprintln!("empty get: status {} stderr {:?}", out.status(), out.stderr);
    assert_ne!(out.status(), 0);
}

#[test]
fn reference_consumer_in_background_is_visible_to_rabbitmqctl() {
    let Some(consume) = require_reference("amqp-consume") else {
        return;
    };
    let broker = Broker::connect();
    let q = broker.temp_queue("ref-consume");
    let mut r = Cmd::new(&consume)
        .args(["-u", &broker_url(), "-q", &q, "-p", "3", "cat"])
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || consumers(&q).len() == 1));
    let cs = consumers(&q);
    assert_eq!((cs[0].prefetch_count, cs[0].ack_required), (3, true));
    broker.publish(&q, b"one");
    broker.publish(&q, b"two");
    assert!(wait_until(Duration::from_secs(10), || r.stdout_now() == b"onetwo"));
    r.signal(libc::SIGTERM);
    let out = r
        .wait_timeout(Duration::from_secs(10))
        .expect("consumer exits on TERM");
    eprintln!(
        "amqp-consume on SIGTERM: status {} stderr {:?}",
        out.status(),
        out.stderr
    );
}

// `ours()`/`bin_dir()`/`sides()` are exercised by the tool tests: they need the whole
// workspace to build, which this file must not depend on.
#[test]
fn reference_lookup() {
    match reference("amqp-get") {
        Some(p) => assert!(p.is_file() && p.ends_with("amqp-get")),
        None => assert!(
            std::env::var_os("CI").is_none(),
            "CI must install amqp-tools"
        ),
    }
    assert_eq!(reference("amqp-no-such-tool"), None);
}
