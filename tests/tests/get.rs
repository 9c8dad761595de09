//! amqp-get against the real broker, ours and Debian's C tool side by side (docs/compatibility.md
//! C-GET-1 to C-GET-7): the body byte for byte on stdout, status 2 on
//! an empty queue, status 1 with one stderr line on errors.

use amqp_tools_tests::amiquip::AmqpProperties;
use amqp_tools_tests::{ours, require_reference, sides, unique, Broker, Cmd, Output, Proxy, Side};
use std::path::Path;
use std::time::Duration;

const GET: &str = "amqp-get";

fn cmd(bin: &Path, args: &[&str]) -> Cmd {
    Cmd::new(bin)
        .args(args)
        .arg("-u")
        .arg(amqp_tools_tests::broker_url())
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(30))
}

fn get(bin: &Path, q: &str) -> Output {
    cmd(bin, &["-q", q]).run()
}

/// Status 1, nothing on stdout; for ours, one stderr line naming each of `words`.
fn fails(side: &str, out: &Output, words: &[&str]) {
    out.expect_status(1);
    assert!(out.stdout.is_empty(), "{side}: {:?}", out.stdout_str());
    if side == "ours" {
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one stderr line expected:\n{}", out.stderr);
        assert!(lines[0].starts_with("amqp-get: "), "{}", lines[0]);
        for w in words {
            assert!(
                lines[0].contains(w),
                "stderr should mention {w:?}: {}",
                lines[0]
            );
        }
    }
}

/// Deterministic bytes covering every value (no external RNG needed).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn prints_the_body_exactly_then_reports_empty() {
    // compatibility.md C-GET-2, C-GET-3.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(GET) {
        let q = broker.temp_queue(&format!("get-hello-{side}"));
        broker.publish(&q, b"hello");
        broker.publish(&q, b"two\nlines\n");
        let out = get(&bin, &q);
        out.expect_status(0);
        assert_eq!(out.stdout, b"hello", "{side}: no newline added");
        assert!(out.stderr.is_empty(), "{side}: {}", out.stderr);
        let out = get(&bin, &q);
        out.expect_status(0);
        assert_eq!(out.stdout, b"two\nlines\n", "{side}");
        assert_eq!(broker.count(&q), Some(0), "{side}: both messages taken");
        let out = get(&bin, &q);
        out.expect_status(2);
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{side}: silent on empty"
        );
    }
}

#[test]
fn empty_body_and_properties() {
    // An empty body prints nothing with status 0; properties and headers are never printed.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(GET) {
        let q = broker.temp_queue(&format!("get-props-{side}"));
        broker.publish(&q, b"");
        let props = AmqpProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
            .with_message_id("id-1".into());
        broker.publish_with("", &q, b"body", props);
        let out = get(&bin, &q);
        out.expect_status(0);
        assert!(out.stdout.is_empty(), "{side}");
        let out = get(&bin, &q);
        out.expect_status(0);
        assert_eq!(out.stdout, b"body", "{side}");
        assert_eq!(broker.count(&q), Some(0));
    }
}

#[test]
fn binary_bodies_round_trip() {
    // compatibility.md C-GET-2: 300 KB of arbitrary bytes, several body frames.
    let broker = Broker::connect();
    let body = noise(300 * 1024);
    for Side { name: side, bin } in sides(GET) {
        let q = broker.temp_queue(&format!("get-bin-{side}"));
        broker.publish(&q, &body);
        let out = get(&bin, &q);
        out.expect_status(0);
        assert!(
            out.stdout == body,
            "{side}: {} bytes differ from the 300 KB sent",
            out.stdout.len()
        );
        assert_eq!(broker.count(&q), Some(0));
    }
}

#[test]
fn binary_round_trip_through_amqp_publish() {
    // compatibility.md C-GET-2, C-PUB-3: amqp-publish < file, then amqp-get > file, on each side.
    let broker = Broker::connect();
    let body = noise(300 * 1024);
    let mut publishers = vec![("ours", ours("amqp-publish"), ours(GET))];
    if let (Some(p), Some(g)) = (require_reference("amqp-publish"), require_reference(GET)) {
        publishers.push(("reference", p, g));
    }
    for (side, publish, get_bin) in publishers {
        let q = broker.temp_queue(&format!("get-pub-{side}"));
        cmd(&publish, &["-r", &q])
            .stdin(body.clone())
            .run()
            .expect_status(0);
        let out = get(&get_bin, &q);
        out.expect_status(0);
        assert!(
            out.stdout == body,
            "{side}: {} bytes came back",
            out.stdout.len()
        );
    }
}

#[test]
fn missing_queue_option_and_missing_queue() {
    // compatibility.md C-GET-1, C-GET-4.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(GET) {
        fails(side, &cmd(&bin, &[]).run(), &["queue"]);
        let q = unique(&format!("get-nosuch-{side}"));
        let out = get(&bin, &q);
        fails(side, &out, &["404", &format!("no queue '{q}'")]);
        if side == "reference" {
            assert!(
                out.stderr.contains("basic.get: server channel error 404"),
                "{}",
                out.stderr
            );
        }
        assert!(!broker.exists(&q), "{side}: nothing declared");
        // The empty name means "the last queue declared on this channel": none.
        fails(side, &get(&bin, ""), &["404"]);
    }
}

#[test]
fn long_queue_name() {
    // compatibility.md C-OWN-3: ours refuses before connecting, C fails to encode after connecting.
    let proxy = Proxy::to_broker();
    let long = "q".repeat(300);
    for Side { name: side, bin } in sides(GET) {
        let before = proxy.connections();
        let out = Cmd::new(&bin)
            .args(["-q", &long, "-u", &proxy.url()])
            .env_remove("AMQP_URL")
            .run();
        fails(side, &out, &["255"]);
        if side == "ours" {
            assert_eq!(proxy.connections(), before, "ours should not connect");
        }
    }
}

#[test]
fn only_one_message_is_taken() {
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(GET) {
        let q = broker.temp_queue(&format!("get-one-{side}"));
        for b in ["m1", "m2", "m3"] {
            broker.publish(&q, b.as_bytes());
        }
        let out = get(&bin, &q);
        out.expect_status(0);
        assert_eq!(out.stdout, b"m1", "{side}: FIFO");
        let rest: Vec<Vec<u8>> = broker.drain(&q).into_iter().map(|m| m.body).collect();
        assert_eq!(rest, vec![b"m2".to_vec(), b"m3".to_vec()], "{side}");
    }
}

#[test]
fn closed_stdout_ends_by_sigpipe() {
    // compatibility.md C-GET-7, C-FIX-14: both die of SIGPIPE (status 141). The C tool took
    // the message with no_ack, so it is lost; ours acks only after the body is written, so the
    // broker keeps it (redelivered).
    use std::os::unix::process::ExitStatusExt;
    let broker = Broker::connect();
    let url = amqp_tools_tests::broker_url();
    for Side { name: side, bin } in sides(GET) {
        let q = broker.temp_queue(&format!("get-pipe-{side}"));
        broker.publish(&q, b"precious");
        let (st, _) = amqp_tools_tests::run_into_closed_pipe(&bin, &["-q", &q, "-u", &url]);
        assert_eq!(st.signal(), Some(libc::SIGPIPE), "{side}: {st:?}");
        if side == "ours" {
            // The broker requeues the unacked message when it sees the connection go, which
            // may be a moment after the tool has died.
            amqp_tools_tests::wait_until(Duration::from_secs(10), || broker.count(&q) == Some(1));
        }
        let left = broker.drain(&q);
        if side == "ours" {
            assert_eq!(left.len(), 1, "ours keeps the message it could not deliver");
            assert_eq!(left[0].body, b"precious");
            assert!(left[0].redelivered);
        } else {
            assert!(left.is_empty(), "the C tool loses it (no_ack)");
        }
    }
}
