//! amqp-consume beyond the C tool: --on-failure, --fail-fast, --exit-when-empty, --idle-timeout,
//! --export-env, -j, signal handling, lost connections, the Kubernetes Job pattern and a ledger
//! run with random failures and restarts. Ours only: the C tool has none of this.

use amqp_tools_tests::amiquip::{AmqpProperties, AmqpValue, FieldTable, QueueDeclareOptions};
use amqp_tools_tests::{
    close_connections_from_port, ours, queue_info, unique, wait_until, Broker, Cmd, Proxy,
};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn consume() -> Cmd {
    Cmd::new(ours("amqp-consume"))
        .arg("-u")
        .arg(amqp_tools_tests::broker_url())
}

fn consume_via(url: &str) -> Cmd {
    Cmd::new(ours("amqp-consume")).arg("-u").arg(url)
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A queue that dead-letters rejected messages into a second queue; returns (queue, dlq).
fn queue_with_dlq(b: &Broker) -> (String, String) {
    let q = unique("f-dlx");
    let dlq = b.temp_queue("f-dlq");
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AmqpValue::LongString(String::new()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AmqpValue::LongString(dlq.clone()),
    );
    b.declare_with(
        &q,
        QueueDeclareOptions {
            arguments,
            ..QueueDeclareOptions::default()
        },
    );
    (q, dlq)
}

// A failing command's message under each --on-failure: hold keeps it unacked until exit,
// requeue gives it back at once (so it comes round again), reject dead-letters it.
#[test]
fn on_failure_policies() {
    let b = Broker::connect();
    let failing: [(&str, &[&str]); 3] = [
        ("exit 3", &["sh", "-c", "cat; echo; exit 3"]),
        ("killed", &["sh", "-c", "cat; echo; kill -9 $$"]),
        // Reads nothing of a 1 MB body and fails.
        ("no read", &["sh", "-c", "echo x; exit 3"]),
    ];
    for (what, cmd) in failing {
        for policy in ["hold", "requeue", "reject"] {
            let (q, dlq) = queue_with_dlq(&b);
            let body: Vec<u8> = if what == "no read" {
                vec![b'x'; 1 << 20]
            } else {
                b"x".to_vec()
            };
            b.publish(&q, &body);
            let out = consume()
                .args([
                    "-q",
                    &q,
                    "-c",
                    "2",
                    "--idle-timeout",
                    "1",
                    "--on-failure",
                    policy,
                ])
                .arg("--")
                .args(cmd)
                .run();
            out.expect_status(0);
            let runs = out.stdout_str().lines().count();
            let expected_runs = if policy == "requeue" { 2 } else { 1 };
            assert_eq!(runs, expected_runs, "{what} {policy}: {}", out.stdout_str());
            let left = b.drain(&q);
            let dead = b.drain(&dlq);
            match policy {
                "reject" => {
                    assert!(left.is_empty(), "{what} {policy}");
                    assert_eq!(dead.len(), 1, "{what} {policy}: dead-lettered");
                }
                _ => {
                    assert_eq!(left.len(), 1, "{what} {policy}");
                    assert!(left[0].redelivered, "{what} {policy}");
                    assert!(left[0].body == body, "{what} {policy}");
                    assert!(dead.is_empty(), "{what} {policy}");
                }
            }
        }
    }
}

// --fail-fast: the failed command's status (128+N for a signal), its message settled by
// --on-failure; a command that cannot be started is an error (1) under every policy.
#[test]
fn fail_fast_statuses() {
    let b = Broker::connect();
    let cases: [(&[&str], i32); 3] = [
        (&["sh", "-c", "cat >/dev/null; exit 7"], 7),
        (&["sh", "-c", "cat >/dev/null; kill -9 $$"], 137),
        (&["nosuch-command-for-amqp-consume"], 1),
    ];
    for (cmd, status) in cases {
        for policy in ["hold", "requeue", "reject"] {
            let (q, dlq) = queue_with_dlq(&b);
            b.publish(&q, b"first");
            b.publish(&q, b"second");
            let out = consume()
                .args(["-q", &q, "--fail-fast", "--on-failure", policy, "--"])
                .args(cmd)
                .run();
            assert_eq!(out.status(), status, "{cmd:?} {policy}: {}", out.stderr);
            if status == 1 {
                assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
                assert!(out.stderr.contains("nosuch-command-for-amqp-consume"));
            }
            let left: Vec<Vec<u8>> = b.drain(&q).into_iter().map(|m| m.body).collect();
            let dead = b.drain(&dlq);
            // Only the first message was touched: the second was never processed.
            if policy == "reject" {
                assert_eq!(left, [b"second".to_vec()], "{cmd:?} {policy}");
                assert_eq!(dead.len(), 1, "{cmd:?} {policy}");
            } else {
                assert_eq!(left.len(), 2, "{cmd:?} {policy}");
                assert!(dead.is_empty());
            }
        }
    }
}

// A command that does not read a 1 MB body and succeeds: acked under every policy.
#[test]
fn command_ignoring_a_big_body_is_judged_by_its_status() {
    let b = Broker::connect();
    for policy in ["hold", "requeue", "reject"] {
        let q = b.temp_queue("f-big");
        b.publish(&q, &vec![b'y'; 1 << 20]);
        let out = consume()
            .args(["-q", &q, "-c", "1", "--on-failure", policy, "true"])
            .run();
        out.expect_status(0);
        assert_eq!(b.count(&q), Some(0), "{policy}");
    }
}

fn first_line_pid(out: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(out)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

// SIGTERM while a command runs: the command gets it, its message is settled by its status,
// the tool exits 143 and leaves no process behind.
#[test]
fn sigterm_while_a_command_runs() {
    let b = Broker::connect();
    for (script, acked) in [
        (
            "echo $$; trap 'exit 0' TERM; cat >/dev/null; while :; do sleep 0.1; done",
            true,
        ),
        ("echo $$; cat >/dev/null; exec sleep 30", false),
    ] {
        let q = b.temp_queue("f-term");
        b.publish(&q, b"work");
        let mut run = consume()
            .args(["-q", &q, "-c", "1", "--", "sh", "-c", script])
            .spawn();
        assert!(wait_until(Duration::from_secs(10), || first_line_pid(
            &run.stdout_now()
        )
        .is_some()));
        let child = first_line_pid(&run.stdout_now()).unwrap();
        run.signal(libc::SIGTERM);
        let out = run.wait();
        assert_eq!(out.status(), 143, "{script}: {}", out.stderr);
        assert!(!pid_alive(child), "{script}: command {child} left running");
        assert_eq!(b.count(&q), Some(if acked { 0 } else { 1 }), "{script}");
    }
}

// The broker closes the connection (rabbitmqctl close_connection): exit 1 at once, naming it.
#[test]
fn broker_closes_the_connection() {
    let b = Broker::connect();
    let q = b.temp_queue("f-closed");
    let proxy = Proxy::to_broker();
    let mut run = consume_via(&proxy.url()).args(["-q", &q, "cat"]).spawn();
    assert!(wait_until(Duration::from_secs(10), || !proxy
        .upstream_ports()
        .is_empty()
        && queue_info(&q).is_some_and(|i| i.consumers == 1)));
    let port = proxy.upstream_ports()[0];
    assert_eq!(close_connections_from_port(port, "test says bye"), 1);
    let out = run
        .wait_timeout(Duration::from_secs(5))
        .expect("exits at once");
    assert_eq!(out.status(), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("test says bye"), "{}", out.stderr);
}

/// amqp-consume through a fault proxy, busy with a long-running command that has printed the
/// one message's body: the moment to break the connection. (The command's output is redirected
/// so that the test's pipes close when amqp-consume exits.)
fn consuming_through_proxy(
    b: &Broker,
    prefix: &str,
    body: &str,
    extra: &[&str],
) -> (String, Proxy, amqp_tools_tests::Running) {
    let q = b.temp_queue(prefix);
    b.publish(&q, body.as_bytes());
    let proxy = Proxy::to_broker();
    let run = consume_via(&proxy.url())
        .args(["-q", &q])
        .args(extra)
        .args(["--", "sh", "-c", "cat; exec sleep 60 >/dev/null 2>&1"])
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || run.stdout_now()
        == body.as_bytes()));
    (q, proxy, run)
}

// The connection is cut while a command runs: exit 1 with a clear error, message back.
#[test]
fn connection_cut_mid_consume() {
    let b = Broker::connect();
    let (q, proxy, mut run) = consuming_through_proxy(&b, "f-cut", "cut", &["-c", "1"]);
    let cut_at = Instant::now();
    proxy.cut();
    let out = run
        .wait_timeout(Duration::from_secs(10))
        .expect("exits after the cut");
    assert!(cut_at.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status(), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("connection"), "{}", out.stderr);
    assert!(wait_until(Duration::from_secs(10), || b.count(&q) == Some(1)));
}

// A broker that goes silent (no FIN, no RST: a dead host, a partition) while a command runs
// is noticed by its missing heartbeats: exit 1 after about two intervals, not when the command
// ends; the message goes back to the queue.
#[test]
fn silent_broker_is_noticed_by_heartbeats() {
    let b = Broker::connect();
    let (q, proxy, mut run) =
        consuming_through_proxy(&b, "f-silent", "silent", &["--heartbeat", "1"]);
    let silent_at = Instant::now();
    proxy.pause();
    let out = run
        .wait_timeout(Duration::from_secs(20))
        .expect("exits once the heartbeats stop");
    assert!(
        silent_at.elapsed() < Duration::from_secs(10),
        "took {:?}",
        silent_at.elapsed()
    );
    assert_eq!(out.status(), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("connection"), "{}", out.stderr);
    // The broker misses our heartbeats too, drops the connection and requeues the message.
    assert!(wait_until(Duration::from_secs(20), || b.count(&q) == Some(1)));
}

// The Job pattern: 8 items, 11 runs two at a time with -c 1 --exit-when-empty.
#[test]
fn job_pattern_more_completions_than_items() {
    let b = Broker::connect();
    let q = b.temp_queue("f-job");
    let items: Vec<String> = (1..=8).map(|i| format!("item{i}")).collect();
    for item in &items {
        b.publish(&q, item.as_bytes());
    }
    let mut processed = Vec::new();
    let mut idle_runs = 0;
    for round in 0..6 {
        let n = if round == 5 { 1 } else { 2 };
        let runs: Vec<_> = (0..n)
            .map(|_| {
                consume()
                    .args(["-q", &q, "-c", "1", "--exit-when-empty", "--", "sh", "-c"])
                    .arg("cat; echo")
                    .spawn()
            })
            .collect();
        for run in runs {
            let out = run.wait();
            out.expect_status(0);
            match out.stdout_str().trim() {
                "" => idle_runs += 1,
                item => processed.push(item.to_string()),
            }
        }
    }
    processed.sort();
    let mut expected = items.clone();
    expected.sort();
    assert_eq!(processed, expected);
    assert_eq!(idle_runs, 3);
    assert_eq!(b.count(&q), Some(0));
}

// A worker failing on one item with --fail-fast exits with its status; the item is back.
#[test]
fn job_pattern_failing_item() {
    let b = Broker::connect();
    let q = b.temp_queue("f-job-bad");
    b.publish(&q, b"bad");
    let out = consume()
        .args([
            "-q",
            &q,
            "-c",
            "1",
            "--exit-when-empty",
            "--fail-fast",
            "--",
        ])
        .args(["sh", "-c", r#"b=$(cat); [ "$b" = bad ] && exit 7; exit 0"#])
        .run();
    assert_eq!(out.status(), 7, "{}", out.stderr);
    let left = b.drain(&q);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body, b"bad");
}

// --exit-when-empty on an empty queue and --idle-timeout: exit 0 without running anything.
#[test]
fn exit_when_empty_and_idle_timeout() {
    let b = Broker::connect();
    let q = b.temp_queue("f-empty");
    for args in [
        vec!["-c", "1", "--exit-when-empty"],
        vec!["--exit-when-empty"],
        vec!["--idle-timeout", "0.5"],
    ] {
        let out = consume()
            .args(["-q", &q])
            .args(&args)
            .args(["echo", "ran"])
            .run();
        out.expect_status(0);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Three messages: all processed, then exit.
    for i in 0..3 {
        b.publish(&q, format!("m{i}").as_bytes());
    }
    let out = consume().args(["-q", &q, "--exit-when-empty", "cat"]).run();
    out.expect_status(0);
    assert_eq!(out.stdout, b"m0m1m2");
    assert_eq!(b.count(&q), Some(0));
}

// --export-env: metadata and properties as AMQP_* variables.
#[test]
fn export_env() {
    let b = Broker::connect();
    let q = b.temp_queue("f-env");
    let mut headers = FieldTable::new();
    headers.insert("x-retry.count".into(), AmqpValue::LongInt(3));
    headers.insert("who".into(), AmqpValue::LongString("me".into()));
    let props = AmqpProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_priority(4)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_message_id("mid-1".into())
        .with_timestamp(1_700_000_000)
        .with_type_("kind".into())
        .with_app_id("app".into())
        .with_headers(headers);
    b.publish_with("", &q, b"body", props);
    let out = consume()
        .args(["-q", &q, "-c", "1", "--export-env", "/usr/bin/env"])
        .run();
    out.expect_status(0);
    let vars: HashSet<String> = out.stdout_str().lines().map(str::to_string).collect();
    for expected in [
        format!("AMQP_ROUTING_KEY={q}"),
        "AMQP_EXCHANGE=".to_string(),
        "AMQP_REDELIVERED=false".to_string(),
        "AMQP_DELIVERY_TAG=1".to_string(),
        "AMQP_CONTENT_TYPE=text/plain".to_string(),
        "AMQP_DELIVERY_MODE=2".to_string(),
        "AMQP_PRIORITY=4".to_string(),
        "AMQP_CORRELATION_ID=corr".to_string(),
        "AMQP_REPLY_TO=replies".to_string(),
        "AMQP_MESSAGE_ID=mid-1".to_string(),
        "AMQP_TIMESTAMP=1700000000".to_string(),
        "AMQP_TYPE=kind".to_string(),
        "AMQP_APP_ID=app".to_string(),
        "AMQP_HEADER_X_RETRY_COUNT=3".to_string(),
        "AMQP_HEADER_WHO=me".to_string(),
    ] {
        assert!(
            vars.contains(&expected),
            "{expected} missing from:\n{}",
            out.stdout_str()
        );
    }
    assert!(!vars.iter().any(|v| v.starts_with("AMQP_EXPIRATION=")));
    assert!(!vars.iter().any(|v| v.starts_with("AMQP_USER_ID=")));
}

// -j N runs N commands at once: each waits until all N have started (a barrier), which a
// one-at-a-time consumer could never pass.
#[test]
fn jobs_run_concurrently() {
    let b = Broker::connect();
    let q = b.temp_queue("f-jobs");
    for i in 0..4 {
        b.publish(&q, format!("{i}").as_bytes());
    }
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let barrier = r#"touch "$0/$(cat)"; i=0; while [ "$(ls "$0" | wc -l)" -lt 4 ]; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done"#;
    let out = consume()
        .args([
            "-q",
            &q,
            "-c",
            "4",
            "-j",
            "4",
            "--fail-fast",
            "--",
            "sh",
            "-c",
            barrier,
        ])
        .arg(dir.path())
        .run();
    out.expect_status(0);
    assert_eq!(b.count(&q), Some(0));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ledger_worker(q: &str, ledger: &Path) -> Cmd {
    // Fails about 20% of the time, after reading the body; successes are logged.
    let script = r#"n=$(cat); r=$(od -An -N1 -tu1 /dev/urandom); if [ "$r" -lt 51 ]; then echo "$n" >> "$0.failed"; exit 1; fi; echo "$n" >> "$0""#;
    consume()
        .args([
            "-q",
            q,
            "-j",
            "4",
            "--on-failure",
            "requeue",
            "--",
            "sh",
            "-c",
            script,
        ])
        .arg(ledger)
        .timeout(Duration::from_secs(120))
}

// 1,000 numbered messages, three consumers whose commands fail at random (requeued), consumers
// SIGTERMed at random and restarted until the queue is empty: every number is processed
// successfully at least once and nothing is left unacknowledged.
#[test]
fn ledger_with_random_failures_and_restarts() {
    let b = Broker::connect();
    let q = b.temp_queue("f-ledger");
    for i in 1..=1000 {
        b.publish(&q, i.to_string().as_bytes());
    }
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut workers: Vec<_> = (0..3).map(|_| ledger_worker(&q, &ledger).spawn()).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut restarts = 0;
    // At least one consumer is killed (the first round always runs); then until the queue is
    // empty with nothing unacknowledged (an unreadable queue_info is not taken for done).
    loop {
        assert!(Instant::now() < deadline, "ledger run did not finish");
        std::thread::sleep(Duration::from_millis(200 + rng.next() % 400));
        let i = (rng.next() % 3) as usize;
        workers[i].signal(libc::SIGTERM);
        let out = workers[i]
            .wait_timeout(Duration::from_secs(15))
            .expect("SIGTERMed consumer exits");
        assert!(
            out.status() == 143,
            "consumer ended with {}: {}",
            out.status(),
            out.stderr
        );
        workers[i] = ledger_worker(&q, &ledger).spawn();
        restarts += 1;
        let done = b.count(&q) == Some(0)
            && queue_info(&q).is_some_and(|i| i.messages_unacknowledged == 0);
        if done {
            break;
        }
    }
    for w in &mut workers {
        w.signal(libc::SIGTERM);
        let out = w.wait_timeout(Duration::from_secs(15)).expect("exits");
        assert_eq!(out.status(), 143, "{}", out.stderr);
    }
    let info = queue_info(&q).expect("queue");
    assert_eq!((info.messages_ready, info.messages_unacknowledged), (0, 0));
    let text = std::fs::read_to_string(&ledger).unwrap();
    let seen: HashSet<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
    let missing: Vec<u32> = (1..=1000).filter(|n| !seen.contains(n)).collect();
    let failures =
        std::fs::read_to_string(dir.path().join("ledger.failed")).map_or(0, |t| t.lines().count());
    eprintln!(
        "ledger: published 1000, processed successfully {} times ({} distinct), failures \
         injected {failures}, consumers killed {restarts}, lost {}",
        text.lines().count(),
        seen.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "never processed: {missing:?}");
    assert!(restarts > 0);
    assert!(
        failures > 0,
        "the worker never failed: the test proved nothing"
    );
}

/// Pids of the processes whose parent is `parent`, with their command names.
fn children_of(parent: i32) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("PPid:").and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            found.push((pid, field("Name:").unwrap_or_default()));
        }
    }
    found
}

// As PID 1 (a container's entrypoint): a command's orphaned background process is re-parented
// to the tool, which must reap it (no zombie left), and SIGTERM (what the kubelet sends) still
// stops the tool gracefully: the running command gets it, its message is settled, exit 143.
#[test]
fn as_pid_1_orphans_are_reaped_and_sigterm_is_graceful() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set, so this must not be skipped: a new PID namespace needs root"
        );
        eprintln!("SKIPPED: a new PID namespace (unshare --pid) needs root");
        return;
    }
    let b = Broker::connect();
    let q = b.temp_queue("f-pid1");
    b.publish(&q, b"first");
    let script = "body=$(cat); \
        if [ \"$body\" = first ]; then sleep 1 >/dev/null 2>&1 & exit 0; fi; \
        echo $$; trap 'exit 0' TERM; while :; do sleep 0.1; done";
    let run = Cmd::new("unshare")
        .args(["--fork", "--pid", "--"])
        .arg(ours("amqp-consume"))
        .args(["-u", &amqp_tools_tests::broker_url(), "-q", &q, "-c", "2"])
        .args(["--", "sh", "-c", script])
        .spawn();
    let unshare = run.pid() as i32;
    let mut tool = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            tool = children_of(unshare).first().map(|c| c.0);
            tool.is_some()
        }),
        "unshare started no process"
    );
    let tool = tool.unwrap();
    // The first command exits at once; its background `sleep 1` is now the tool's child.
    assert!(
        wait_until(Duration::from_secs(10), || children_of(tool)
            .iter()
            .any(|(_, name)| name == "sleep")),
        "no orphan was re-parented to the tool: {:?}",
        children_of(tool)
    );
    assert!(
        wait_until(Duration::from_secs(5), || children_of(tool).is_empty()),
        "the orphan was not reaped (zombie left): {:?}",
        children_of(tool)
    );
    b.publish(&q, b"second");
    assert!(
        wait_until(Duration::from_secs(10), || first_line_pid(
            &run.stdout_now()
        )
        .is_some()),
        "second command did not start: {}",
        run.stderr_now()
    );
    // SAFETY: plain kill of the tool, a process this test started (through unshare).
    unsafe { libc::kill(tool, libc::SIGTERM) };
    let out = run.wait();
    assert_eq!(out.status(), 143, "{}", out.stderr);
    // Both commands exited 0 (the second on TERM), so both messages were acked; an unacked
    // one would be back in the queue now that the connection is closed.
    assert_eq!(b.count(&q), Some(0), "{}", out.stderr);
}
