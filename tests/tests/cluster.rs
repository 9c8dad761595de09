//! Clusters: several addresses for every tool, and amqp-consume / amqp-publish --reconnect,
//! proven on a private 3-node RabbitMQ cluster (started once for this file, see
//! `amqp_tools_tests::cluster`) by killing and restarting its nodes. Each scenario keeps a
//! ledger of message ids: nothing may be missing; duplicates are allowed (at-least-once),
//! counted and printed.

use amqp_tools_tests::cluster::{cluster, Cluster};
use amqp_tools_tests::{
    broker_url, ours, refused_port, silent_peer, unique, wait_until, Broker, Cmd, Proxy, Running,
};
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

/// The command each message runs: appends its body (an id) to the ledger, and with
/// --export-env whether it was redelivered, after a short pause so that several are in flight
/// when a node dies.
fn worker(ledger: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        r#"id=$(cat); sleep 0.02; echo "$id $AMQP_REDELIVERED" >> "$0""#.into(),
        ledger.display().to_string(),
    ]
}

fn need_cluster() -> Option<&'static Cluster> {
    cluster()
}

/// A quorum queue filled with `n` ids, declared through node 2 (so that its leader is not on
/// node 1, the one these scenarios kill), and a scratch directory for the ledger.
struct Filled {
    admin: Broker,
    q: String,
    expected: Vec<String>,
    ledger: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn filled_quorum_queue(c: &Cluster, prefix: &str, n: usize) -> Filled {
    let admin = Broker::connect_to(&c.url(1));
    let q = unique(prefix);
    admin.declare_quorum(&q);
    let expected = ids(n);
    admin.publish_all(&q, &expected);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    Filled {
        admin,
        q,
        expected,
        _dir: dir,
        ledger,
    }
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
    let filled = filled_quorum_queue(c, "clu-noreconnect", 200);
    let (admin, q, expected) = (&filled.admin, &filled.q, &filled.expected);
    let ledger_path = &filled.ledger;
    let mut consumer = tool("amqp-consume")
        .args(["-q", q, "-j", "2", "-u", &c.url(0), "--"])
        .args(worker(ledger_path))
        .timeout(Duration::from_secs(60))
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || ledger_lines(ledger_path) >= 50),
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
    let mut seen = ledger(ledger_path);
    let processed = seen.len();
    for m in admin.drain(q) {
        *seen.entry(String::from_utf8(m.body).unwrap()).or_insert(0) += 1;
    }
    let duplicates = assert_all_seen(expected, &seen, "without --reconnect");
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
// first address) killed with -9 in the middle: it connects to another node and finishes with
// exit 0; every id processed at least once; the queue empty. (The queue's leader is on another
// node here; the quorum Job test kills the leader's node.)
#[test]
fn reconnect_survives_a_killed_node() {
    let Some(c) = need_cluster() else { return };
    let _disrupting = c.disrupt();
    let filled = filled_quorum_queue(c, "clu-reconnect", 300);
    let (admin, q, expected) = (&filled.admin, &filled.q, &filled.expected);
    let ledger_path = &filled.ledger;
    // With a prefetch (-p), as a work queue has: without one the consumer takes every message
    // at once, finds the queue empty at its first check and cancels itself (--exit-when-empty)
    // while it works through them, and RabbitMQ 3.10 gives the messages of a cancelled
    // quorum-queue consumer back only once its dead node is up again (see the README).
    let consumer = tool("amqp-consume")
        .args([
            "-q",
            q,
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
        .args(worker(ledger_path))
        .timeout(Duration::from_secs(120))
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || ledger_lines(ledger_path) >= 100),
        "the consumer did not get going: {}",
        consumer.stderr_now()
    );
    c.kill(0);
    let out = consumer.wait();
    out.expect_status(0);
    let seen = ledger(ledger_path);
    let duplicates = assert_all_seen(expected, &seen, "--reconnect, kill -9");
    assert_eq!(admin.count(q), Some(0), "the queue must be empty");
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
    let redelivered = redelivered_ids(ledger_path);
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

// Scenario 3: a rolling restart of all three nodes (each stopped cleanly, as an upgrade does,
// and started again before the next) while a consumer with --reconnect works through a quorum
// queue: each restart takes its connection away (it moves on to the next address each time),
// it keeps going, and nothing is lost.
#[test]
fn reconnect_survives_a_rolling_restart() {
    let Some(c) = need_cluster() else { return };
    let _disrupting = c.disrupt();
    let q = unique("clu-rolling");
    let expected = ids(2000);
    {
        let admin = Broker::connect_to(&c.url(1));
        admin.declare_quorum(&q);
        admin.publish_all(&q, &expected);
        // Its connection would not survive the restarts; the queue is deleted at the end.
        std::mem::forget(admin);
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger");
    // While this file exists each command takes a little time, so that the work outlasts the
    // restarts; then the rest goes quickly.
    let slow = dir.path().join("slow");
    std::fs::write(&slow, "").unwrap();
    let consumer = tool("amqp-consume")
        .args([
            "-q",
            &q,
            "-j",
            "2",
            "-p",
            "10",
            "--reconnect",
            "--exit-when-empty",
        ])
        .args(c.url_args())
        .args(["--", "sh", "-c"])
        .arg(r#"id=$(cat); [ -e "$1" ] && sleep 0.05; echo "$id" >> "$0""#)
        .arg(&ledger_path)
        .arg(&slow)
        .timeout(Duration::from_secs(400))
        .spawn();
    for i in 0..3 {
        let before = ledger_lines(&ledger_path);
        c.stop(i);
        c.restart(i);
        // Progress after each restart: the consumer is still at work.
        assert!(
            wait_until(Duration::from_secs(60), || ledger_lines(&ledger_path)
                > before + 20),
            "no progress after restarting node {}: {}",
            i + 1,
            consumer.stderr_now()
        );
    }
    std::fs::remove_file(&slow).unwrap();
    let out = consumer.wait();
    out.expect_status(0);
    let seen = ledger(&ledger_path);
    let duplicates = assert_all_seen(&expected, &seen, "rolling restart");
    let admin = Broker::connect_to(&c.url(1));
    admin.cleanup_queue(&q);
    assert_eq!(admin.count(&q), Some(0), "the queue must be empty");
    // Each node's restart took the connection: from node 1 to 2, 2 to 3, 3 back to 1.
    let lost: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(" lost ("))
        .collect();
    let moved: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": reconnected to "))
        .collect();
    assert_eq!((lost.len(), moved.len()), (3, 3), "{}", out.stderr);
    for (k, line) in moved.iter().enumerate() {
        let to = c.url((k + 1) % 3).replace("guest:guest", "guest:****");
        assert!(
            line.contains(&format!("reconnected to {to} after")),
            "{line}"
        );
    }
    assert!(
        lost.iter().all(|l| l.contains("320 CONNECTION_FORCED")),
        "a clean stop closes the connection with 320: {}",
        out.stderr
    );
    eprintln!(
        "scenario 3 (rolling restart of 3 nodes, --reconnect -j 2): {} ids, {duplicates} \
         duplicates",
        expected.len()
    );
}

fn consume_via(url: &str) -> Cmd {
    tool("amqp-consume").args(["-u", url])
}

/// `amqp-consume -q Q --reconnect ARGS` through a fault proxy, on a new queue, once its
/// consumer is on.
fn reconnecting_consumer(prefix: &str, args: &[&str]) -> (Broker, String, Proxy, Running) {
    let b = Broker::connect();
    let q = b.temp_queue(prefix);
    let proxy = Proxy::to_broker();
    let run = consume_via(&proxy.url())
        .args(["-q", &q, "--reconnect"])
        .args(args)
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || b.consumers(&q) == Some(1)));
    (b, q, proxy, run)
}

// --reconnect keeps the queue it consumes from: a server-named or exclusive one would not
// outlive the connection, and --reconnect-timeout means nothing without --reconnect.
#[test]
fn reconnect_refuses_what_cannot_survive_a_reconnect() {
    for (args, message) in [
        (
            &["--reconnect", "cat"][..],
            "--reconnect needs a queue name (-q): a server-named queue is deleted with the \
             connection, and its messages with it",
        ),
        (
            &["--reconnect", "-q", "x", "-x", "cat"],
            "--reconnect cannot be used with -x: the broker deletes an exclusive queue, and its \
             messages, with the connection",
        ),
        (
            &["-q", "x", "--reconnect-timeout", "5", "cat"],
            "--reconnect-timeout needs --reconnect",
        ),
    ] {
        let out = consume_via(&format!("amqp://127.0.0.1:{}", refused_port()))
            .args(args)
            .run();
        out.expect_status(1);
        assert_eq!(out.stderr, format!("amqp-consume: {message}\n"), "{args:?}");
    }
}

// -c counts across a reconnect: a message whose command was running when the connection was
// cut comes back marked redelivered, waits for that command's job slot, runs again, and only
// messages whose result reached the broker count. The queue keeps the rest.
#[test]
fn count_holds_across_a_reconnect() {
    let b = Broker::connect();
    let q = b.temp_queue("clu-count");
    let bodies: Vec<String> = (1..=10).map(|i| format!("m{i}")).collect();
    b.publish_all(&q, &bodies);
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger");
    let go = dir.path().join("go");
    // m3's first run waits for "go": the connection is cut while it runs.
    let script = r#"id=$(cat); echo "$id $AMQP_REDELIVERED" >> "$0"
        if [ "$id" = m3 ] && [ "$AMQP_REDELIVERED" = false ]; then
            n=0; while [ ! -e "$1" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done
        fi"#;
    let proxy = Proxy::to_broker();
    let run = consume_via(&proxy.url())
        .args(["-q", &q, "-c", "6", "--reconnect", "--export-env", "--"])
        .args(["sh", "-c", script])
        .arg(&ledger_path)
        .arg(&go)
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&ledger_path).is_ok_and(|t| t.contains("m3 false"))
    }));
    proxy.cut();
    assert!(wait_until(Duration::from_secs(10), || run
        .stderr_now()
        .contains(": reconnected to ")));
    std::fs::write(&go, "").unwrap();
    let out = run.wait();
    out.expect_status(0);
    let text = std::fs::read_to_string(&ledger_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["m1 false", "m2 false", "m3 false", "m3 true", "m4 true", "m5 true", "m6 true"],
        "{}",
        out.stderr
    );
    assert_eq!(b.count(&q), Some(4), "six messages done, four left");
    let lost = out.stderr.lines().next().unwrap_or_default();
    assert!(
        lost.ends_with(
            "; reconnecting; 1 message(s) whose command was running will come again, marked \
             redelivered (a delivery cannot be acknowledged on another connection)"
        ),
        "{}",
        out.stderr
    );
}

// While no connection can be made, SIGTERM still ends the tool: the command still running
// from the lost connection gets the signal and is waited for; status 128+15.
#[test]
fn signal_while_reconnecting() {
    let b = Broker::connect();
    let q = b.temp_queue("clu-sigterm");
    b.publish(&q, b"one");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let proxy = Proxy::to_broker();
    let mut run = consume_via(&proxy.url())
        .args(["-q", &q, "--reconnect", "--", "sh", "-c"])
        .arg(r#"trap 'echo TERM >> "$0"; exit 0' TERM; cat >/dev/null; echo started >> "$0"; sleep 30 & wait"#)
        .arg(&marker)
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || marker.exists()));
    proxy.refuse(true);
    proxy.cut();
    assert!(wait_until(Duration::from_secs(10), || run
        .stderr_now()
        .contains("; reconnecting")));
    run.signal(libc::SIGTERM);
    let out = run
        .wait_timeout(Duration::from_secs(10))
        .expect("SIGTERM ends the tool while it reconnects");
    assert_eq!(out.status(), 128 + libc::SIGTERM, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "started\nTERM\n");
    assert!(wait_until(Duration::from_secs(10), || b.count(&q) == Some(1)));
}

// --reconnect-timeout bounds the trying: exit 1, saying why, after that long without a
// connection.
#[test]
fn reconnect_timeout_gives_up() {
    let (_b, q, proxy, run) =
        reconnecting_consumer("clu-giveup", &["--reconnect-timeout", "1.5", "cat"]);
    proxy.refuse(true);
    proxy.cut();
    let out = run.wait();
    out.expect_status(1);
    let shown = proxy.url().replace("guest:guest", "guest:****");
    assert_eq!(
        out.stderr,
        format!(
            "amqp-consume: connection to {shown} lost (consuming from queue '{q}': the \
             connection to the broker was lost); reconnecting\n\
             amqp-consume: the connection was lost and could not be made again within 1.5 s \
             (see --reconnect-timeout)\n\
             amqp-consume: cannot connect to 127.0.0.1:{}: connection refused\n",
            proxy.port()
        )
    );
}

// --idle-timeout counts time without a delivery while connected: an outage longer than it does
// not end the tool, and a message published meanwhile is processed after the reconnect.
#[test]
fn idle_timeout_pauses_while_reconnecting() {
    let (b, q, proxy, run) = reconnecting_consumer("clu-idle", &["--idle-timeout", "1", "cat"]);
    proxy.refuse(true);
    proxy.cut();
    assert!(wait_until(Duration::from_secs(10), || run
        .stderr_now()
        .contains("; reconnecting")));
    b.publish(&q, b"during the outage");
    // Longer than --idle-timeout without a connection.
    std::thread::sleep(Duration::from_millis(1500));
    proxy.refuse(false);
    let out = run.wait();
    out.expect_status(0);
    assert_eq!(out.stdout, b"during the outage");
    assert!(out.stderr.contains(": reconnected to "), "{}", out.stderr);
    assert_eq!(b.count(&q), Some(0));
}

// Missed heartbeats (a peer gone silent) are a lost connection too: --reconnect connects again
// once the peer answers.
#[test]
fn reconnect_after_missed_heartbeats() {
    let (b, q, proxy, run) = reconnecting_consumer(
        "clu-silent",
        &[
            "--heartbeat",
            "1",
            "--connect-timeout",
            "2",
            "-c",
            "1",
            "cat",
        ],
    );
    proxy.pause();
    assert!(
        wait_until(Duration::from_secs(20), || run
            .stderr_now()
            .contains("; reconnecting")),
        "{}",
        run.stderr_now()
    );
    proxy.cut();
    proxy.resume();
    b.publish(&q, b"after the silence");
    let out = run.wait();
    out.expect_status(0);
    assert_eq!(out.stdout, b"after the silence");
}

// A deleted queue is not a lost connection: --reconnect or not, exit 1 at once.
#[test]
fn deleted_queue_ends_a_reconnecting_consumer() {
    let b = Broker::connect();
    let q = b.temp_queue("clu-deleted");
    let mut run = consume_via(&broker_url())
        .args(["-q", &q, "--reconnect", "cat"])
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || b.consumers(&q) == Some(1)));
    b.delete(&q);
    let out = run
        .wait_timeout(Duration::from_secs(10))
        .expect("exits at once");
    out.expect_status(1);
    assert_eq!(
        out.stderr,
        format!(
            "amqp-consume: consuming from queue '{q}': the broker cancelled the consumer (the \
             queue was deleted?)\n"
        )
    );
}

// With -d, a queue that --reconnect would redeclare after a loss is declared auto-delete (as
// the C tool declares it): said on stderr, since its messages do not survive the loss.
#[test]
fn reconnect_warns_about_a_queue_it_declares() {
    let b = Broker::connect();
    let q = unique("clu-declared");
    b.cleanup_queue(&q);
    let out = consume_via(&broker_url())
        .args([
            "-q",
            &q,
            "-d",
            "--reconnect",
            "--idle-timeout",
            "0.3",
            "cat",
        ])
        .run();
    out.expect_status(0);
    assert_eq!(
        out.stderr,
        format!(
            "amqp-consume: warning: queue '{q}' did not exist and was declared non-durable and \
             auto-delete: it is deleted with a lost connection, and its messages with it \
             (declare it beforehand, e.g. amqp-declare-queue -d or --queue-type quorum)\n"
        )
    );
}

/// Declares a quorum queue with `--arg`s through amqp-declare-queue on node `node`.
fn declare_quorum_with(c: &Cluster, node: usize, q: &str, args: &[&str]) {
    let mut cmd =
        tool("amqp-declare-queue").args(["-u", &c.url(node), "-q", q, "--queue-type", "quorum"]);
    for a in args {
        cmd = cmd.args(["--arg", a]);
    }
    cmd.run().expect_status(0);
}

// Quorum queues with every tool: publish, get, consume with -c (never a message more than N
// taken off the queue, although a quorum queue ignores the channel-wide prefetch limit) and
// with -j.
#[test]
fn quorum_queue_with_every_tool() {
    let Some(c) = need_cluster() else { return };
    let _steady = c.steady();
    let admin = Broker::connect_to(&c.url(2));
    let q = unique("clu-qq");
    declare_quorum_with(c, 0, &q, &[]);
    admin.cleanup_queue(&q);
    let bodies = ids(20);
    tool("amqp-publish")
        .args(["-u", &c.url(1), "-r", &q, "-l"])
        .stdin(bodies.join("\n") + "\n")
        .run()
        .expect_status(0);
    let out = tool("amqp-get").args(["-u", &c.url(2), "-q", &q]).run();
    out.expect_status(0);
    assert_eq!(out.stdout, b"id-00001\n");
    // -c 3, one command at a time: three messages processed, and no fourth one delivered (it
    // would come back marked redelivered).
    let out = tool("amqp-consume")
        .args(["-u", &c.url(0), "-q", &q, "-c", "3", "cat"])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "id-00002\nid-00003\nid-00004\n");
    let next = admin.get(&q).expect("a message");
    assert_eq!(
        (next.body.as_slice(), next.redelivered),
        (&b"id-00005\n"[..], false),
        "a message beyond -c was taken off the queue"
    );
    // -j 4 through the rest, each once (and a -c beyond the 65535 a prefetch limit can say).
    let out = tool("amqp-consume")
        .args([
            "-u",
            &c.url(1),
            "-q",
            &q,
            "-j",
            "4",
            "-c",
            "70000",
            "--exit-when-empty",
        ])
        .arg("cat")
        .run();
    out.expect_status(0);
    let mut got: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, bodies[5..].to_vec());
    assert_eq!(admin.count(&q), Some(0));
}

// --on-failure with a quorum queue and its delivery limit: requeue gives the message back at
// once until the broker's delivery limit dead-letters it; reject dead-letters it at once; hold
// leaves it unacknowledged until exit, which counts as a delivery too.
#[test]
fn quorum_queue_on_failure_and_delivery_limit() {
    let Some(c) = need_cluster() else { return };
    let _steady = c.steady();
    let admin = Broker::connect_to(&c.url(1));
    for (policy, runs, dead_lettered) in [
        ("requeue", 3, true),
        ("reject", 1, true),
        ("hold", 1, false),
    ] {
        let q = unique("clu-qq-limit");
        let dlq = unique("clu-qq-dlq");
        declare_quorum_with(c, 1, &dlq, &[]);
        declare_quorum_with(
            c,
            1,
            &q,
            &[
                "x-delivery-limit=2",
                "x-dead-letter-exchange=",
                &format!("x-dead-letter-routing-key={dlq}"),
            ],
        );
        admin.cleanup_queue(&q);
        admin.cleanup_queue(&dlq);
        admin.publish(&q, b"poison");
        let out = tool("amqp-consume")
            .args(["-u", &c.url(0), "-q", &q, "--on-failure", policy])
            .args(["--idle-timeout", "1", "--", "sh", "-c", "cat; echo; exit 3"])
            .run();
        out.expect_status(0);
        assert_eq!(
            out.stdout_str(),
            "poison\n".repeat(runs),
            "--on-failure {policy}"
        );
        if dead_lettered {
            assert!(
                wait_until(Duration::from_secs(10), || admin.count(&dlq) == Some(1)),
                "--on-failure {policy}: not dead-lettered"
            );
            assert_eq!(admin.count(&q), Some(0), "--on-failure {policy}");
        } else {
            // Back in the queue after the exit; its delivery count is now 1.
            let m = admin.get(&q).expect("held message back in the queue");
            assert!(m.redelivered, "--on-failure {policy}");
            assert_eq!(admin.count(&dlq), Some(0));
        }
    }
}

// k8s/job-quorum.yaml's init container and pods, run on the private cluster with the three
// nodes in AMQP_URL: the queue is declared (quorum, its leader on the first node), then pods
// run three at a time as the Job runs them, and the node they are connected to is killed while
// the first three work. Every pod ends with 0, every item is processed, the queue ends empty.
#[test]
fn quorum_job_survives_a_killed_node() {
    use amqp_tools_tests::k8s::{
        kubelet_expand, QUORUM_DECLARE_ARGS, QUORUM_DECLARE_COMMAND, QUORUM_JOB_ARGS,
        QUORUM_JOB_COMMAND,
    };
    let Some(c) = need_cluster() else { return };
    let _disrupting = c.disrupt();
    let urls: Vec<String> = (0..3).map(|i| c.url(i)).collect();
    let amqp_url = urls.join(" ");
    let q = unique("clu-job");
    let worker = ours("worker").display().to_string();
    let expand = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| kubelet_expand(a, &[("QUEUE", &q)]).replace("/usr/bin/worker", &worker))
            .collect()
    };
    let base = |command: &str| tool(Path::new(command).file_name().unwrap().to_str().unwrap());
    let out = base(QUORUM_DECLARE_COMMAND)
        .env("AMQP_URL", &amqp_url)
        .args(expand(&QUORUM_DECLARE_ARGS))
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), format!("{q}\n"));
    let admin = Broker::connect_to(&c.url(1));
    admin.cleanup_queue(&q);
    let items: Vec<String> = (1..=6).map(|i| format!("item{i}")).collect();
    admin.publish_all(&q, &items);
    let pod = || {
        base(QUORUM_JOB_COMMAND)
            .env("AMQP_URL", &amqp_url)
            .env("WORKER_SLEEP", "1")
            .args(expand(&QUORUM_JOB_ARGS))
            .timeout(Duration::from_secs(150))
            .spawn()
    };
    let mut outputs = Vec::new();
    let first: Vec<_> = (0..3).map(|_| pod()).collect();
    assert!(wait_until(Duration::from_secs(20), || first
        .iter()
        .all(|p| p.stdout_now().starts_with(b"Processing"))));
    c.kill(0);
    outputs.extend(first.into_iter().map(|p| p.wait()));
    // More rounds until one finds nothing left (completions beyond the items exit 0 at once).
    for _ in 0..4 {
        let round: Vec<_> = (0..3).map(|_| pod()).map(|p| p.wait()).collect();
        let idle = round.iter().all(|o| o.stdout.is_empty());
        outputs.extend(round);
        if idle {
            break;
        }
    }
    let mut seen = BTreeMap::new();
    for out in &outputs {
        out.expect_status(0);
        for line in out.stdout_str().lines() {
            let item = line.strip_prefix("Processing ").unwrap_or(line).to_string();
            *seen.entry(item).or_insert(0) += 1;
        }
    }
    let duplicates = assert_all_seen(&items, &seen, "quorum Job");
    assert_eq!(admin.count(&q), Some(0), "the queue must be empty");
    eprintln!(
        "k8s/job-quorum.yaml on the cluster (kill -9 of the pods' node): {} items, {} pods, \
         {duplicates} duplicates",
        items.len(),
        outputs.len()
    );
    c.restart(0);
}

/// How many file descriptors process `pid` has open.
fn open_fds(pid: u32) -> usize {
    let dir = format!("/proc/{pid}/fd");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .count()
}

// A lost connection leaves nothing behind: after five cuts and reconnects the consumer holds
// no more descriptors (sockets, timers) than with its first connection.
#[test]
fn reconnects_release_the_lost_connections() {
    let (b, q, proxy, run) = reconnecting_consumer("clu-fds", &["cat"]);
    let first = open_fds(run.pid());
    for n in 1..=5 {
        proxy.cut();
        assert!(
            wait_until(Duration::from_secs(10), || run
                .stderr_now()
                .matches(": reconnected to ")
                .count()
                == n
                && b.consumers(&q) == Some(1)),
            "{}",
            run.stderr_now()
        );
    }
    assert!(
        open_fds(run.pid()) <= first,
        "{} descriptors after five reconnects, {first} before",
        open_fds(run.pid())
    );
    b.publish(&q, b"still consuming");
    assert!(wait_until(Duration::from_secs(10), || run.stdout_now()
        == b"still consuming"));
}

/// Takes every message off `q` (at least `at_least` of them, waiting up to a minute for
/// them to be there) with a consumer, faster than one basic.get each; returns their bodies.
fn drain_all(b: &Broker, q: &str, at_least: usize) -> Vec<Vec<u8>> {
    use amqp_tools_tests::amiquip::{ConsumerMessage, ConsumerOptions};
    assert!(
        wait_until(Duration::from_secs(60), || b
            .count(q)
            .is_some_and(|n| n as usize >= at_least)),
        "{q}: {:?} messages, expected at least {at_least}",
        b.count(q)
    );
    let total = b.count(q).unwrap_or(0) as usize;
    let channel = b.channel();
    channel.qos(0, 2000, false).unwrap();
    let consumer = channel
        .basic_consume(
            q,
            ConsumerOptions {
                no_ack: true,
                ..ConsumerOptions::default()
            },
        )
        .unwrap();
    let mut bodies = Vec::with_capacity(total);
    while bodies.len() < total {
        match consumer
            .receiver()
            .recv_timeout(Duration::from_secs(20))
            .expect("a delivery")
        {
            ConsumerMessage::Delivery(d) => bodies.push(d.body),
            other => panic!("{q}: {other:?}"),
        }
    }
    amqp_tools_tests::cancel_consumer(consumer);
    bodies
}

/// How many times each line of `seq 1 n` (as amqp-publish -l sends it, newline kept) is in
/// `bodies`; panics naming what is missing or unexpected. Returns the duplicates.
fn count_lines(n: usize, bodies: &[Vec<u8>], what: &str) -> usize {
    let expected: Vec<String> = (1..=n).map(|i| format!("{i}\n")).collect();
    let mut seen = BTreeMap::new();
    for b in bodies {
        *seen
            .entry(String::from_utf8_lossy(b).into_owned())
            .or_insert(0) += 1;
    }
    assert_all_seen(&expected, &seen, what)
}

fn seq(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

// --reconnect through a fault proxy: the connection is cut twice while lines stream in; every
// line ends up in the queue (at least once), the tool says what it published again, exit 0.
#[test]
fn publish_reconnect_after_cuts() {
    let b = Broker::connect();
    let q = b.temp_queue("clu-pub");
    let proxy = Proxy::to_broker();
    let n = 20_000;
    let mut run = tool("amqp-publish")
        .args(["-u", &proxy.url(), "-r", &q, "-l", "--reconnect"])
        .stdin_stream()
        .spawn();
    let mut writer = run.take_stdin().unwrap();
    use std::io::Write;
    let input = seq(n);
    let (first, rest) = input.split_at(input.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    for (k, part) in [first, second, third].into_iter().enumerate() {
        let before = b.count(&q).unwrap_or(0);
        writer.write_all(part.as_bytes()).unwrap();
        if k > 0 {
            // The tool notices the cut when it next publishes, connects again and publishes
            // again what was not confirmed.
            assert!(
                wait_until(Duration::from_secs(10), || run
                    .stderr_now()
                    .matches(": reconnected to ")
                    .count()
                    == k),
                "{}",
                run.stderr_now()
            );
        }
        // Some of this part is in, maybe not all confirmed: cut (not after the last).
        assert!(wait_until(Duration::from_secs(10), || b
            .count(&q)
            .is_some_and(|c| c > before)));
        if k < 2 {
            proxy.cut();
        }
    }
    drop(writer);
    let out = run.wait();
    out.expect_status(0);
    let duplicates = count_lines(n, &drain_all(&b, &q, n), "publish --reconnect, cut twice");
    let lost_lines = out.stderr.lines().filter(|l| l.contains(" lost (")).count();
    assert_eq!(lost_lines, 2, "{}", out.stderr);
    eprintln!("publish --reconnect through two cuts: {n} lines, {duplicates} duplicates");
}

// amqp-publish --reconnect needs confirms to know what to publish again; it gives up after
// --reconnect-timeout, saying how many messages were confirmed.
#[test]
fn publish_reconnect_refusals_and_timeout() {
    let out = tool("amqp-publish")
        .args(["-r", "x", "-b", "y", "--reconnect", "--no-confirm"])
        .run();
    out.expect_status(1);
    assert_eq!(
        out.stderr,
        "amqp-publish: --reconnect needs publisher confirms (drop --no-confirm): without them, \
         what to publish again after a lost connection is not known\n"
    );
    let out = tool("amqp-publish")
        .args(["-r", "x", "-b", "y", "--reconnect-timeout", "3"])
        .run();
    out.expect_status(1);
    assert_eq!(
        out.stderr,
        "amqp-publish: --reconnect-timeout needs --reconnect\n"
    );

    let b = Broker::connect();
    let q = b.temp_queue("clu-pub-giveup");
    let proxy = Proxy::to_broker();
    let mut run = tool("amqp-publish")
        .args(["-u", &proxy.url(), "-r", &q, "-l", "--reconnect"])
        .args(["--reconnect-timeout", "1"])
        .stdin_stream()
        .spawn();
    let mut writer = run.take_stdin().unwrap();
    use std::io::Write;
    writer.write_all(b"one\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || b.count(&q) == Some(1)));
    proxy.refuse(true);
    proxy.cut();
    writer.write_all(b"two\n").unwrap();
    drop(writer);
    let out = run.wait();
    out.expect_status(1);
    let shown = proxy.url().replace("guest:guest", "guest:****");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stderr);
    // "one" may or may not have been confirmed to the tool before the cut: the lines agree.
    let again = |n: u32| {
        format!("; reconnecting; {n} message(s) not confirmed yet will be published again")
    };
    let unconfirmed = (1..=2).find(|&n| lines[0].ends_with(&again(n)));
    assert!(
        lines[0].starts_with(&format!("amqp-publish: connection to {shown} lost ("))
            && unconfirmed.is_some(),
        "{}",
        out.stderr
    );
    let n = unconfirmed.unwrap_or_default();
    assert_eq!(
        lines[1..],
        [
            "amqp-publish: the connection was lost and could not be made again within 1 s (see \
             --reconnect-timeout)",
            &format!(
                "amqp-publish: cannot connect to 127.0.0.1:{}: connection refused",
                proxy.port()
            ),
            &format!(
                "amqp-publish: {} message(s) were confirmed, {n} were not",
                2 - n
            ),
        ]
    );
}

// Scenario 2: `seq 1 50000 | amqp-publish -l --reconnect` to a quorum queue, the node it is
// connected to killed with -9 mid-stream: exit 0, and every line is in the queue, at least
// once.
#[test]
fn publish_reconnect_survives_a_killed_node() {
    let Some(c) = need_cluster() else { return };
    let _disrupting = c.disrupt();
    let q = unique("clu-pub-kill");
    let admin = Broker::connect_to(&c.url(1));
    admin.declare_quorum(&q);
    let n = 50_000;
    let mut run = tool("amqp-publish")
        .args(["-r", &q, "-l", "--reconnect"])
        .args(c.url_args())
        .stdin_stream()
        .timeout(Duration::from_secs(120))
        .spawn();
    let mut writer = run.take_stdin().unwrap();
    // The lines stream in from a thread, as from `seq`; the kill comes in the middle.
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        for chunk in (1..=n).collect::<Vec<_>>().chunks(500) {
            let text: String = chunk.iter().map(|i| format!("{i}\n")).collect();
            writer.write_all(text.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert!(
        wait_until(Duration::from_secs(30), || admin
            .count(&q)
            .is_some_and(|c| c >= 10_000)),
        "{}",
        run.stderr_now()
    );
    c.kill(0);
    feeder.join().unwrap();
    let out = run.wait();
    out.expect_status(0);
    let duplicates = count_lines(n, &drain_all(&admin, &q, n), "publish --reconnect, kill -9");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(lines[0].contains(" lost ("), "{}", out.stderr);
    assert!(
        lines[1].starts_with(&format!(
            "amqp-publish: reconnected to {} after ",
            c.url(1).replace("guest:guest", "guest:****")
        )),
        "{}",
        out.stderr
    );
    eprintln!(
        "scenario 2 (seq 1 {n} | amqp-publish -l --reconnect, kill -9 of its node): every line \
         there, {duplicates} duplicates; {}",
        lines[0]
    );
    admin.cleanup_queue(&q);
    c.restart(0);
}
