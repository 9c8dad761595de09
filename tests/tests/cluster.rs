//! Clusters: several addresses for every tool, and amqp-consume / amqp-publish --reconnect,
//! proven on a private 3-node RabbitMQ cluster (started once for this file, see
//! `amqp_tools_tests::cluster`) by killing and restarting its nodes. Each scenario keeps a
//! ledger of message ids: nothing may be missing; duplicates are allowed (at-least-once),
//! counted and printed.

use amqp_tools_tests::cluster::{cluster, Cluster};
use amqp_tools_tests::{ours, refused_port, silent_peer, unique, wait_until, Broker, Cmd};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn tool(name: &str) -> Cmd {
    Cmd::new(ours(name)).env_remove("AMQP_URL")
}

/// `n` message bodies `id-00001`, `id-00002`, ...
fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("id-{i:05}")).collect()
}

/// How many times each id appears in the ledger (one id per line, maybe followed by a space
/// and more words).
fn ledger(path: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = BTreeMap::new();
    for line in text.lines() {
        let id = line.split(' ').next().unwrap_or_default();
        *seen.entry(id.to_string()).or_insert(0) += 1;
    }
    seen
}

fn ledger_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Every expected id was seen at least once and nothing else was; returns the duplicates
/// (processings beyond the first).
fn assert_all_seen(expected: &[String], seen: &BTreeMap<String, usize>, what: &str) -> usize {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "{what}: ids lost: {missing:?}");
    let unknown: Vec<&String> = seen.keys().filter(|k| !expected.contains(k)).collect();
    assert!(unknown.is_empty(), "{what}: unexpected lines: {unknown:?}");
    seen.values().map(|n| n - 1).sum()
}

/// The command each message runs: appends its body (an id) to the ledger, after a short
/// pause so that several are in flight when a node dies.
fn worker(ledger: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        r#"id=$(cat); sleep 0.02; echo "$id" >> "$0""#.into(),
        ledger.display().to_string(),
    ]
}

fn need_cluster() -> Option<&'static Cluster> {
    cluster()
}

// Every address failing: one line per address, in the order given, saying why, without the
// passwords; exit 1.
#[test]
fn all_addresses_failing_give_one_line_each() {
    let refused = refused_port();
    let (silent, _peer) = silent_peer();
    let out = tool("amqp-get")
        .args(["-q", "x", "--connect-timeout", "1"])
        .args(["-u", &format!("amqp://u:s3cret@127.0.0.1:{refused}/v")])
        .args(["-u", &format!("amqp://127.0.0.1:{silent}")])
        .run();
    out.expect_status(1);
    assert_eq!(
        out.stderr,
        format!(
            "amqp-get: cannot connect to amqp://u:****@127.0.0.1:{refused}/v: connection refused\n\
             amqp-get: cannot connect to amqp://127.0.0.1:{silent}: no AMQP handshake within 1 s \
             (see --connect-timeout)\n"
        )
    );
    // The same from AMQP_URL, several URLs separated by whitespace.
    let out = Cmd::new(ours("amqp-get"))
        .args(["-q", "x", "--connect-timeout", "1"])
        .env(
            "AMQP_URL",
            format!("amqp://127.0.0.1:{refused}\n amqp://u:pw@127.0.0.1:{refused}"),
        )
        .run();
    out.expect_status(1);
    assert_eq!(
        out.stderr,
        format!(
            "amqp-get: cannot connect to amqp://127.0.0.1:{refused}: connection refused\n\
             amqp-get: cannot connect to amqp://u:****@127.0.0.1:{refused}: connection refused\n"
        )
    );
    // One address: the error is exactly the single-broker one.
    let out = tool("amqp-get")
        .args(["-q", "x", "-u", &format!("amqp://127.0.0.1:{refused}")])
        .run();
    out.expect_status(1);
    assert_eq!(
        out.stderr,
        format!("amqp-get: cannot connect to 127.0.0.1:{refused}: connection refused\n")
    );
}

// Scenario 4: the first addresses dead (a refused port, then a host that never answers), a
// node of the cluster after them: every tool connects, each dead address costing at most
// --connect-timeout.
#[test]
fn dead_addresses_first_then_a_live_node() {
    let Some(c) = need_cluster() else { return };
    let _steady = c.steady();
    let admin = Broker::connect_to(&c.url(1));
    let q = unique("clu-addr");
    admin.declare_quorum(&q);
    admin.publish(&q, b"first");
    let refused = refused_port();
    let (silent, _peer) = silent_peer();
    let dead = [
        "-u".to_string(),
        format!("amqp://127.0.0.1:{refused}"),
        "-u".into(),
        format!("amqp://127.0.0.1:{silent}"),
    ];
    let started = Instant::now();
    let out = tool("amqp-get")
        .args(["-q", &q, "--connect-timeout", "2"])
        .args(&dead)
        .args(["-u", &c.url(1)])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout, b"first");
    assert_eq!(out.stderr, "");
    // The silent address takes its whole 2 s; with the default timeout it would take 30.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        out.elapsed
    );

    let out = tool("amqp-publish")
        .args(["-r", &q, "-b", "second", "--connect-timeout", "2"])
        .args(&dead)
        .args(["-u", &c.url(2)])
        .run();
    out.expect_status(0);
    let out = tool("amqp-consume")
        .args(["-q", &q, "-c", "1", "--connect-timeout", "2"])
        .args(&dead)
        .args(["-u", &c.url(0), "cat"])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout, b"second");
    let out = tool("amqp-declare-queue")
        .args(["-q", &q, "--passive", "--connect-timeout", "2"])
        .args(&dead)
        .args(["-u", &c.url(2)])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), format!("{q}\n"));
    let out = tool("amqp-delete-queue")
        .args(["-q", &q, "--connect-timeout", "2"])
        .args(&dead)
        .args(["-u", &c.url(0)])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "0\n");
}

// Scenario 5: without --reconnect, the node the consumer is connected to is killed: exit 1 at
// once, and nothing is lost: every message is processed or back in the queue.
#[test]
fn killed_node_without_reconnect_exits_1_and_loses_nothing() {
    let Some(c) = need_cluster() else { return };
    let _disrupting = c.disrupt();
    let admin = Broker::connect_to(&c.url(1));
    let q = unique("clu-noreconnect");
    admin.declare_quorum(&q);
    let expected = ids(200);
    admin.publish_all(&q, &expected);
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger");
    let mut consumer = tool("amqp-consume")
        .args(["-q", &q, "-j", "2", "-u", &c.url(0), "--"])
        .args(worker(&ledger_path))
        .timeout(Duration::from_secs(60))
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || ledger_lines(&ledger_path) >= 50),
        "the consumer did not get going: {}",
        consumer.stderr_now()
    );
    c.kill(0);
    let out = consumer
        .wait_timeout(Duration::from_secs(10))
        .expect("amqp-consume must exit at once when its node dies");
    out.expect_status(1);
    assert!(
        out.stderr.starts_with("amqp-consume: consuming from queue") && out.stderr.contains("lost"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // A message is acked only after its command wrote the ledger, so every id is in the ledger
    // or back in the queue (the commands left running have theirs in the queue).
    let mut seen = ledger(&ledger_path);
    let processed = seen.len();
    for m in admin.drain(&q) {
        *seen.entry(String::from_utf8(m.body).unwrap()).or_insert(0) += 1;
    }
    let duplicates = assert_all_seen(&expected, &seen, "without --reconnect");
    eprintln!(
        "scenario 5 (kill -9, no --reconnect): {} ids, {processed} processed before the kill, \
         the rest back in the queue; {duplicates} both processed and back",
        expected.len()
    );
    c.restart(0);
}

/// The lines of a ledger whose command saw AMQP_REDELIVERED=true (the worker writes
/// "ID REDELIVERED").
fn redelivered_ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.ends_with(" true"))
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

// Scenario 1: amqp-consume --reconnect on a quorum queue, the node it is connected to (the
// first address, where the queue's leader is too) killed with -9 in the middle: it connects to
// another node and finishes with exit 0; every id processed at least once; the queue empty.
#[test]
fn reconnect_survives_a_killed_node() {
    let Some(c) = need_cluster() else { return };
    let _disrupting = c.disrupt();
    let admin = Broker::connect_to(&c.url(1));
    let q = unique("clu-reconnect");
    admin.declare_quorum(&q);
    let expected = ids(300);
    admin.publish_all(&q, &expected);
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger");
    let worker = vec![
        "sh".to_string(),
        "-c".into(),
        r#"id=$(cat); sleep 0.02; echo "$id $AMQP_REDELIVERED" >> "$0""#.into(),
        ledger_path.display().to_string(),
    ];
    // With a prefetch (-p), as a work queue has: without one the consumer takes every message
    // at once, finds the queue empty at its first check and cancels itself (--exit-when-empty)
    // while it works through them, and RabbitMQ 3.10 gives the messages of a cancelled
    // quorum-queue consumer back only once its dead node is up again (see the README).
    let consumer = tool("amqp-consume")
        .args([
            "-q",
            &q,
            "-j",
            "4",
            "-p",
            "10",
            "--reconnect",
            "--exit-when-empty",
        ])
        .arg("--export-env")
        .args(c.url_args())
        .arg("--")
        .args(&worker)
        .timeout(Duration::from_secs(120))
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || ledger_lines(&ledger_path)
            >= 100),
        "the consumer did not get going: {}",
        consumer.stderr_now()
    );
    c.kill(0);
    let out = consumer.wait();
    out.expect_status(0);
    let seen = ledger(&ledger_path);
    let duplicates = assert_all_seen(&expected, &seen, "--reconnect, kill -9");
    assert_eq!(admin.count(&q), Some(0), "the queue must be empty");
    // The loss and the reconnect are said on stderr, with the messages that come again.
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(
        lines[0].starts_with(&format!(
            "amqp-consume: connection to {} lost (",
            c.url(0).replace("guest:guest", "guest:****")
        )) && lines[0].contains("; reconnecting"),
        "{}",
        out.stderr
    );
    assert!(
        lines[1].starts_with(&format!(
            "amqp-consume: reconnected to {} after ",
            c.url(1).replace("guest:guest", "guest:****")
        )),
        "{}",
        out.stderr
    );
    // Whatever ran twice ran the second time as a redelivery, and the command was told.
    let redelivered = redelivered_ids(&ledger_path);
    for (id, n) in &seen {
        if *n > 1 {
            assert!(
                redelivered.contains(id),
                "{id} ran {n} times, never as redelivered"
            );
        }
    }
    eprintln!(
        "scenario 1 (kill -9 of the consumer's node, --reconnect -j 4): {} ids, {duplicates} \
         duplicates, {} deliveries marked redelivered; {}",
        expected.len(),
        redelivered.len(),
        lines[0]
    );
    c.restart(0);
}
