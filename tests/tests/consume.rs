//! amqp-consume against the C reference: the C-CON entries of docs/compatibility.md run on
//! both tools with the same scenario, comparing exit status, stdout and what the broker holds
//! afterwards. Where the C tool crashes, hangs or loses messages, each side's own expected
//! result is asserted (the "fixed by default" list of the design).

use amqp_tools_tests::amiquip::{AmqpProperties, FieldTable, QueueDeclareOptions};
use amqp_tools_tests::{
    bindings, consumers, queue_info, sides, unique, wait_until, Broker, Cmd, Output, Side,
};
use std::collections::HashSet;
use std::time::Duration;

const TOOL: &str = "amqp-consume";

/// Commands that read the whole body first: the C tool dies of SIGPIPE when one does not.
const READ_OK: [&str; 3] = ["sh", "-c", "cat >/dev/null"];
const READ_FAIL: [&str; 3] = ["sh", "-c", "cat >/dev/null; exit 1"];

fn consume(side: &Side) -> Cmd {
    side.cmd().arg("-u").arg(amqp_tools_tests::broker_url())
}

fn is_ours(side: &Side) -> bool {
    side.name == "ours"
}

fn fill(b: &Broker, q: &str, bodies: &[&str]) {
    for body in bodies {
        b.publish(q, body.as_bytes());
    }
}

/// Consumers attached to `q`, by passive declare (much faster than rabbitmqctl).
fn consumer_count(b: &Broker, q: &str) -> Option<u32> {
    let ch = b.channel();
    let n = ch
        .queue_declare_passive(q)
        .ok()
        .map(|q| q.declared_consumer_count().unwrap_or(0));
    let _ = ch.close();
    n
}

fn wait_for_consumer(b: &Broker, q: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || consumer_count(b, q)
            .unwrap_or(0)
            > 0),
        "no consumer appeared on {q}"
    );
}

fn server_queue_name(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("Server provided queue name: "))
        .map(str::to_string)
}

fn bodies(msgs: &[amqp_tools_tests::Msg]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

fn assert_one_line_error(out: &Output) {
    assert_eq!(out.status(), 1, "{}: {}", out.cmdline, out.stderr);
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "{}: {}",
        out.cmdline,
        out.stderr
    );
    assert!(out.stderr.starts_with("amqp-consume: "), "{}", out.stderr);
}

// compatibility.md C-CON-1: no command is a usage error before any connection.
#[test]
fn no_command_is_a_usage_error() {
    for side in sides(TOOL) {
        for args in [vec![], vec!["-q", "x"], vec!["-q", "x", "--"]] {
            // Port 1 refuses connections: a connection attempt would change the message.
            let out = side.cmd().args(["--port", "1"]).args(&args).run();
            assert_eq!(out.status(), 1, "{} {args:?}", side.name);
            assert!(out.stdout.is_empty());
            assert!(
                out.stderr.contains("command"),
                "{} {args:?}: {}",
                side.name,
                out.stderr
            );
        }
    }
}

// compatibility.md C-CON-16, C-CON-17, C-FIX-3: the message after the Nth is not touched by ours.
#[test]
fn count_stops_after_n_and_leaves_the_rest() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-count");
        fill(&b, &q, &["msg1", "msg2", "msg3"]);
        let out = consume(&side).args(["-q", &q, "-c", "2", "cat"]).run();
        out.expect_status(0);
        assert_eq!(out.stdout, b"msg1msg2", "{}", side.name);
        let left = b.drain(&q);
        assert_eq!(bodies(&left), ["msg3"], "{}", side.name);
        // C: the broker pushed msg3 too (prefetch 2, one slot freed by the first ack).
        assert_eq!(left[0].redelivered, !is_ours(&side), "{}", side.name);
    }
}

// The -c N fix with messages arriving while the command runs: prefetch N alone would let the
// broker push more after the first ack.
#[test]
fn count_never_takes_more_than_n_when_messages_trickle_in() {
    let b = Broker::connect();
    let Some(ours) = sides(TOOL).into_iter().find(is_ours_side) else {
        return;
    };
    let q = b.temp_queue("c-trickle");
    fill(&b, &q, &["m1"]);
    let run = consume(&ours)
        .args(["-q", &q, "-c", "2", "--", "sh", "-c", "cat; sleep 1"])
        .spawn();
    assert!(wait_until(Duration::from_secs(5), || !run
        .stdout_now()
        .is_empty()));
    fill(&b, &q, &["m2", "m3", "m4"]);
    let out = run.wait();
    out.expect_status(0);
    assert_eq!(out.stdout, b"m1m2");
    let left = b.drain(&q);
    assert_eq!(bodies(&left), ["m3", "m4"]);
    assert!(left.iter().all(|m| !m.redelivered), "{left:?}");
}

fn is_ours_side(s: &Side) -> bool {
    is_ours(s)
}

// compatibility.md C-CON-2, C-CON-4: one process per message, argv passed verbatim.
#[test]
fn one_process_per_message_with_verbatim_argv() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-pids");
        fill(&b, &q, &["a", "b", "c"]);
        let out = consume(&side)
            .args(["-q", &q, "-c", "3", "--", "sh", "-c"])
            .arg(r#"echo "pid=$$ args=$# 0=$0 1=$1 body=$(cat)""#)
            .args(["zero", "one"])
            .run();
        out.expect_status(0);
        let text = out.stdout_str();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{}: {text}", side.name);
        let pids: HashSet<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(pids.len(), 3, "{}: {text}", side.name);
        for (line, body) in lines.iter().zip(["a", "b", "c"]) {
            assert!(
                line.ends_with(&format!("args=1 0=zero 1=one body={body}")),
                "{}: {line}",
                side.name
            );
        }
        assert_eq!(b.count(&q), Some(0));
    }
}

// compatibility.md C-CON-14: acked only on exit status 0; a failed message comes back redelivered.
#[test]
fn ack_only_on_success() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-ack");
        fill(&b, &q, &["ok"]);
        consume(&side)
            .args(["-q", &q, "-c", "1", "--"])
            .args(READ_OK)
            .run()
            .expect_status(0);
        assert_eq!(b.count(&q), Some(0), "{}", side.name);
        fill(&b, &q, &["f1", "f2", "f3"]);
        let out = consume(&side)
            .args(["-q", &q, "-c", "3", "--"])
            .args(READ_FAIL)
            .run();
        out.expect_status(0);
        let left = b.drain(&q);
        assert_eq!(bodies(&left), ["f1", "f2", "f3"], "{}", side.name);
        assert!(left.iter().all(|m| m.redelivered), "{}", side.name);
    }
}

// compatibility.md C-CON-18: -A acknowledges whatever the command does.
#[test]
fn no_ack_loses_a_failed_message() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-noack");
        fill(&b, &q, &["x"]);
        consume(&side)
            .args(["-q", &q, "-A", "-c", "1", "--"])
            .args(READ_FAIL)
            .run()
            .expect_status(0);
        assert_eq!(b.count(&q), Some(0), "{}", side.name);
    }
}

// compatibility.md C-FIX-2: with -A -c 1, C takes all 5 off the queue and loses 4.
#[test]
fn no_ack_with_count_takes_at_most_n() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-noack-n");
        fill(&b, &q, &["1", "2", "3", "4", "5"]);
        let out = consume(&side)
            .args(["-q", &q, "-A", "-c", "1", "cat"])
            .run();
        out.expect_status(0);
        assert_eq!(out.stdout, b"1", "{}", side.name);
        let left = b.drain(&q);
        if is_ours(&side) {
            assert_eq!(bodies(&left), ["2", "3", "4", "5"]);
            assert!(left.iter().all(|m| !m.redelivered));
        } else {
            assert!(left.is_empty(), "C loses the rest: {left:?}");
        }
    }
}

/// Arguments after `-q Q`, POSIXLY_CORRECT, expected status and stdout.
type WordsCase<'a> = (Vec<&'a str>, Option<&'a str>, i32, &'a [u8]);

// compatibility.md C-POPT-10 to C-POPT-12, C-CON-2: popt option separation, on both tools.
#[test]
fn options_and_command_words() {
    let b = Broker::connect();
    let cases: Vec<WordsCase> = vec![
        (vec!["-c", "1", "echo", "-n", "x"], None, 1, b""),
        (vec!["-c", "1", "--", "echo", "-n", "x"], None, 0, b"x"),
        (vec!["echo", "-c", "1", "ARG"], None, 0, b"ARG\n"),
        (
            vec!["-c", "1", "echo", "--", "-n", "ARG2"],
            None,
            0,
            b"ARG2",
        ),
        (
            vec!["-c", "1", "echo", "--", "--", "X3"],
            None,
            0,
            b"-- X3\n",
        ),
        (vec!["-c", "1", "--", "echo", "-n", "["], None, 0, b"["),
        (
            vec!["-c", "1", "echo", "-n", "POSIX"],
            Some("1"),
            0,
            b"POSIX",
        ),
        (
            vec![
                "-c",
                "1",
                "--",
                "sh",
                "-c",
                r#"printf "%s|" "$0" "$@"; cat"#,
                "a",
                "b c",
                "",
            ],
            None,
            0,
            b"a|b c||body",
        ),
        (vec!["-c", "1", "sh", "-c", "cat"], None, 1, b""),
    ];
    for side in sides(TOOL) {
        for (args, posix, status, stdout) in &cases {
            let q = b.temp_queue("c-words");
            fill(&b, &q, &["body"]);
            let mut cmd = consume(&side).args(["-q", &q]).args(args);
            cmd = match posix {
                Some(v) => cmd.env("POSIXLY_CORRECT", v),
                None => cmd.env_remove("POSIXLY_CORRECT"),
            };
            let out = cmd.run();
            if side.name == "reference" && *status == 0 && out.status() == 141 {
                // The C tool loses a race with `echo`, which exits without reading its stdin:
                // the body write gets SIGPIPE (see C-FIX-5). The message is then requeued.
                assert_eq!(b.count(&q), Some(1), "{} {args:?}", side.name);
                continue;
            }
            assert_eq!(
                out.status(),
                *status,
                "{} {args:?}: {}",
                side.name,
                out.stderr
            );
            assert_eq!(out.stdout, *stdout, "{} {args:?}", side.name);
            let left = b.count(&q);
            assert_eq!(
                left,
                Some(if *status == 0 { 0 } else { 1 }),
                "{} {args:?}",
                side.name
            );
        }
    }
}

// compatibility.md C-CON-5: a command that cannot be started is an error; the message stays queued.
#[test]
fn command_not_found() {
    let b = Broker::connect();
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let noshebang = dir.path().join("noshebang.sh");
    std::fs::write(&noshebang, "echo hi\n").unwrap();
    std::fs::set_permissions(
        &noshebang,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for side in sides(TOOL) {
        for (cmd, reason) in [
            ("nosuchcmd-xyz", "No such file or directory"),
            ("./", "Permission denied"),
            ("./noshebang.sh", "Exec format error"),
        ] {
            let q = b.temp_queue("c-enoent");
            fill(&b, &q, &["x"]);
            let out = consume(&side)
                .args(["-q", &q, "-c", "1", cmd])
                .current_dir(dir.path())
                .run();
            assert_eq!(out.status(), 1, "{} {cmd}", side.name);
            assert!(out.stdout.is_empty(), "{} {cmd}", side.name);
            assert!(
                out.stderr.contains(cmd),
                "{} {cmd}: {}",
                side.name,
                out.stderr
            );
            assert!(
                out.stderr.contains(reason),
                "{} {cmd}: {}",
                side.name,
                out.stderr
            );
            if is_ours(&side) {
                assert_one_line_error(&out);
            }
            // The broker requeues the unacked message when it sees the connection go, which
            // may be a moment after the tool has exited.
            amqp_tools_tests::wait_until(Duration::from_secs(10), || b.count(&q) == Some(1));
            let left = b.drain(&q);
            assert_eq!(bodies(&left), ["x"], "{} {cmd}", side.name);
        }
    }
}

// compatibility.md C-CON-6, C-CON-8, C-CON-13: setup errors.
#[test]
fn setup_errors() {
    let b = Broker::connect();
    let missing = unique("c-missing");
    for side in sides(TOOL) {
        let out = consume(&side).args(["-q", &missing, "cat"]).run();
        assert_eq!(out.status(), 1, "{}", side.name);
        assert!(out.stderr.contains("404"), "{}: {}", side.name, out.stderr);
        assert!(
            out.stderr.contains(&format!("no queue '{missing}'")),
            "{}",
            out.stderr
        );

        for args in [vec!["-r", "k", "cat"], vec!["-q", "q", "-r", "foo", "cat"]] {
            let out = consume(&side).args(&args).run();
            assert_eq!(out.status(), 1, "{} {args:?}", side.name);
            assert!(out.stderr.contains("--exchange"), "{}", out.stderr);
        }

        let out = consume(&side).args(["-q", "", "cat"]).run();
        assert_eq!(out.status(), 1, "{}", side.name);
        assert!(
            out.stderr.contains("no previously declared queue"),
            "{}",
            out.stderr
        );

        if is_ours(&side) {
            assert_one_line_error(&out);
        }
    }
    drop(b);
}

// compatibility.md C-CON-7, C-CON-10: a server-named, auto-delete queue, one binding per key.
#[test]
fn exchange_and_routing_keys() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let run = consume(&side)
            .args(["-e", "amq.direct", "-r", "k1,k2,,k3", "-c", "3", "cat"])
            .spawn();
        assert!(wait_until(Duration::from_secs(10), || server_queue_name(
            &run.stderr_now()
        )
        .is_some()));
        let q = server_queue_name(&run.stderr_now()).unwrap();
        b.cleanup_queue(&q);
        assert!(q.starts_with("amq.gen-"), "{q}");
        wait_for_consumer(&b, &q);
        let info = queue_info(&q).expect("queue exists");
        assert!(
            !info.durable && info.auto_delete && !info.exclusive,
            "{}: {info:?}",
            side.name
        );
        let mut keys: Vec<String> = bindings(&q)
            .into_iter()
            .filter(|(x, _)| x == "amq.direct")
            .map(|(_, k)| k)
            .collect();
        keys.sort();
        assert_eq!(keys, ["k1", "k2", "k3"], "{}", side.name);
        for k in ["k1", "k2", "k3"] {
            b.publish_with("amq.direct", k, k.as_bytes(), AmqpProperties::default());
        }
        let out = run.wait();
        out.expect_status(0);
        assert_eq!(out.stdout, b"k1k2k3", "{}", side.name);
        assert!(
            wait_until(Duration::from_secs(5), || !b.exists(&q)),
            "{}: auto-delete queue {q} left behind",
            side.name
        );
    }
}

// compatibility.md C-CON-10: -r ",," binds nothing.
#[test]
fn empty_routing_key_list_binds_nothing() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let mut run = consume(&side)
            .args(["-e", "amq.direct", "-r", ",,", "cat"])
            .spawn();
        assert!(wait_until(Duration::from_secs(10), || server_queue_name(
            &run.stderr_now()
        )
        .is_some()));
        let q = server_queue_name(&run.stderr_now()).unwrap();
        b.cleanup_queue(&q);
        wait_for_consumer(&b, &q);
        assert!(
            bindings(&q).iter().all(|(x, _)| x.is_empty()),
            "{}: {:?}",
            side.name,
            bindings(&q)
        );
        run.kill();
    }
}

// compatibility.md C-FIX-1: -e without -r binds with the empty key instead of crashing.
#[test]
fn exchange_without_routing_key() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let mut run = consume(&side)
            .args(["-e", "amq.fanout", "-c", "1", "cat"])
            .spawn();
        assert!(wait_until(Duration::from_secs(10), || server_queue_name(
            &run.stderr_now()
        )
        .is_some()
            || run.exited()));
        let q = server_queue_name(&run.stderr_now()).expect("queue name printed");
        b.cleanup_queue(&q);
        if is_ours(&side) {
            wait_for_consumer(&b, &q);
            let fanout = ("amq.fanout".to_string(), String::new());
            // rabbitmqctl can lag behind the broker under load: poll before judging.
            assert!(
                wait_until(Duration::from_secs(10), || bindings(&q).contains(&fanout)),
                "no amq.fanout binding with the empty key: {:?}",
                bindings(&q)
            );
            b.publish_with("amq.fanout", "any", b"fanned", AmqpProperties::default());
            let out = run.wait();
            out.expect_status(0);
            assert_eq!(out.stdout, b"fanned");
        } else {
            let out = run.wait();
            assert_eq!(out.status(), 139, "C crashes with SIGSEGV: {out:?}");
            assert!(b.exists(&q), "C leaves its queue behind");
        }
    }
}

// compatibility.md C-FIX-9: -d / -e on a queue made by amqp-declare-queue (or durable).
#[test]
fn declare_on_an_existing_queue() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        for durable in [false, true] {
            for extra in [vec!["-d"], vec!["-e", "amq.fanout", "-r", "x"]] {
                let q = unique("c-existing");
                if durable {
                    b.declare_durable(&q);
                } else {
                    b.declare(&q);
                }
                fill(&b, &q, &["kept"]);
                let out = consume(&side)
                    .args(["-q", &q, "-c", "1"])
                    .args(&extra)
                    .arg("cat")
                    .run();
                let info = queue_info(&q).expect("queue still there");
                assert_eq!((info.durable, info.auto_delete), (durable, false));
                if is_ours(&side) {
                    out.expect_status(0);
                    assert_eq!(out.stdout, b"kept");
                    assert_eq!(b.count(&q), Some(0));
                } else {
                    assert_eq!(out.status(), 1, "{extra:?} durable={durable}");
                    assert!(out.stderr.contains("406"), "{}", out.stderr);
                    let field = if durable { "durable" } else { "auto_delete" };
                    assert!(out.stderr.contains(field), "{}", out.stderr);
                    assert_eq!(b.count(&q), Some(1));
                }
            }
        }
    }
}

// compatibility.md C-CON-7 to C-CON-9: -x declares exclusive, auto-delete; an existing queue: 405.
#[test]
fn exclusive_declare() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = unique("c-excl");
        b.cleanup_queue(&q);
        let mut run = consume(&side).args(["-q", &q, "-x", "cat"]).spawn();
        // Exclusive to the tool's connection: only rabbitmqctl may look at it.
        assert!(wait_until(Duration::from_secs(10), || queue_info(&q).is_some()));
        let info = queue_info(&q).expect("declared");
        assert!(
            info.exclusive && info.auto_delete && !info.durable,
            "{}: {info:?}",
            side.name
        );
        run.kill();
        assert!(wait_until(Duration::from_secs(5), || queue_info(&q).is_none()));

        let q = b.temp_queue("c-excl-locked");
        let out = consume(&side).args(["-q", &q, "-x", "cat"]).run();
        assert_eq!(out.status(), 1, "{}", side.name);
        assert!(out.stderr.contains("405"), "{}: {}", side.name, out.stderr);

        // -q "" -x: a silent server-named exclusive queue.
        let mut run = consume(&side).args(["-q", "", "-x", "cat"]).spawn();
        std::thread::sleep(Duration::from_millis(700));
        assert!(!run.exited(), "{}", side.name);
        assert!(
            run.stderr_now().is_empty(),
            "{}: {}",
            side.name,
            run.stderr_now()
        );
        run.kill();
    }
}

// compatibility.md C-CON-12: the prefetch table.
#[test]
fn prefetch_table() {
    let b = Broker::connect();
    let table: [(&[&str], u64); 7] = [
        (&[], 0),
        (&["-c", "5"], 5),
        (&["-p", "3"], 3),
        (&["-c", "5", "-p", "10"], 5),
        (&["-c", "5", "-p", "3"], 3),
        (&["-p", "70000"], 0),
        (&["-c", "70000", "-p", "7"], 7),
    ];
    for side in sides(TOOL) {
        let mut runs = Vec::new();
        for (args, expected) in table {
            let q = b.temp_queue("c-prefetch");
            let run = consume(&side)
                .args(["-q", &q])
                .args(args)
                .arg("cat")
                .spawn();
            runs.push((q, args, expected, run));
        }
        for (q, args, expected, _run) in &runs {
            wait_for_consumer(&b, q);
            let cs = consumers(q);
            assert_eq!(cs.len(), 1, "{} {args:?}", side.name);
            assert_eq!(cs[0].prefetch_count, *expected, "{} {args:?}", side.name);
            assert!(cs[0].ack_required, "{} {args:?}", side.name);
        }
    }
}

// compatibility.md C-FIX-4: -c 0 runs nothing; C takes the messages, gives them back redelivered.
#[test]
fn count_zero() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-zero");
        fill(&b, &q, &["a", "b"]);
        let out = consume(&side)
            .args(["-q", &q, "-c", "0", "echo", "ran"])
            .run();
        out.expect_status(0);
        assert!(out.stdout.is_empty(), "{}", side.name);
        let left = b.drain(&q);
        assert_eq!(bodies(&left), ["a", "b"], "{}", side.name);
        // C's consumer got them before it exited; ours never consumed.
        if is_ours(&side) {
            assert!(left.iter().all(|m| !m.redelivered));
        }
        let out = consume(&side)
            .args(["-q", &unique("c-zero-missing"), "-c", "0", "cat"])
            .run();
        assert_eq!(
            out.status(),
            1,
            "{}: a missing queue is still an error",
            side.name
        );
    }
}

// compatibility.md C-CON-3: the command's environment is ours, unchanged.
#[test]
fn command_environment_is_inherited_unchanged() {
    let b = Broker::connect();
    // The command reads its stdin first: the C tool dies of SIGPIPE when the command exits
    // before the body is written (C-FIX-5), which a bare `env` sometimes does. The shell sees
    // the same environment in both runs, so what it adds is in both lists.
    let print_env = ["sh", "-c", "cat >/dev/null; exec /usr/bin/env"];
    let direct = Cmd::new(print_env[0])
        .args(&print_env[1..])
        .env("C_TEST_MARK", "1")
        .run();
    let mut expected: Vec<String> = direct.stdout_str().lines().map(str::to_string).collect();
    expected.sort();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-env");
        fill(&b, &q, &["x"]);
        let out = consume(&side)
            .args(["-q", &q, "-c", "1", "--"])
            .args(print_env)
            .env("C_TEST_MARK", "1")
            .run();
        out.expect_status(0);
        let mut got: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
        got.sort();
        assert_eq!(got, expected, "{}", side.name);
    }
}

// compatibility.md C-CON-3: bodies on either side of the sizes where the body is written
// differently (up to PIPE_BUF at once; beyond, without blocking; beyond the pipe's buffer, by a
// thread) reach the command whole and in order.
#[test]
fn bodies_of_every_size_reach_the_command_whole() {
    let b = Broker::connect();
    let sizes = [0usize, 1, 4095, 4096, 4097, 65535, 65536, 65537, 300_000];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| b'a' + ((i + j) % 26) as u8).collect())
        .collect();
    let expected: Vec<u8> = bodies.concat();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-sizes");
        for body in &bodies {
            b.publish(&q, body);
        }
        let count = sizes.len().to_string();
        let out = consume(&side).args(["-q", &q, "-c", &count, "cat"]).run();
        out.expect_status(0);
        assert!(
            out.stdout == expected,
            "{}: {} bytes out, {} expected",
            side.name,
            out.stdout.len(),
            expected.len()
        );
        assert_eq!(b.count(&q), Some(0), "{}", side.name);
    }
}

// compatibility.md C-FIX-5: a command that does not read a 1 MB body.
#[test]
fn command_that_does_not_read_stdin() {
    let b = Broker::connect();
    let big = vec![b'z'; 1 << 20];
    for side in sides(TOOL) {
        let q = b.temp_queue("c-epipe");
        b.publish(&q, &big);
        let out = consume(&side).args(["-q", &q, "-c", "1", "true"]).run();
        if is_ours(&side) {
            out.expect_status(0);
            assert_eq!(b.count(&q), Some(0), "settled by true's status 0");
        } else {
            assert_eq!(out.status(), 141, "C dies of SIGPIPE");
            assert_eq!(b.count(&q), Some(1));
        }
    }
}

// compatibility.md C-CON-21: SIGTERM while idle.
#[test]
fn sigterm_while_idle() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-term");
        let mut run = consume(&side).args(["-q", &q, "cat"]).spawn();
        wait_for_consumer(&b, &q);
        run.signal(libc::SIGTERM);
        let out = run.wait();
        assert_eq!(out.status(), 143, "{}: {}", side.name, out.stderr);
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{}: {out:?}",
            side.name
        );
        assert!(wait_until(Duration::from_secs(5), || consumer_count(
            &b, &q
        ) == Some(0)));
    }
}

// compatibility.md C-CON-15: a command killed by a signal counts as failed.
#[test]
fn killed_command_message_requeued() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-kill9");
        fill(&b, &q, &["k"]);
        let out = consume(&side)
            .args(["-q", &q, "-c", "1", "--", "sh", "-c", "cat; kill -9 $$"])
            .run();
        out.expect_status(0);
        assert_eq!(out.stdout, b"k");
        let left = b.drain(&q);
        assert_eq!(bodies(&left), ["k"], "{}", side.name);
        assert!(left[0].redelivered);
    }
}

// compatibility.md C-CON-20: binary bodies pass byte for byte.
#[test]
fn binary_body_round_trip() {
    let b = Broker::connect();
    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-binary");
        b.publish(&q, &body);
        let out = consume(&side).args(["-q", &q, "-c", "1", "cat"]).run();
        out.expect_status(0);
        assert!(out.stdout == body, "{}: body differs", side.name);
    }
}

// compatibility.md C-FIX-6: the queue deleted under the consumer.
#[test]
fn queue_deleted_under_the_consumer() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-deleted");
        let mut run = consume(&side).args(["-q", &q, "cat"]).spawn();
        wait_for_consumer(&b, &q);
        b.delete(&q);
        let out = run.wait_timeout(Duration::from_secs(3));
        if is_ours(&side) {
            let out = out.expect("ours exits at once");
            assert_one_line_error(&out);
            assert!(out.stderr.contains(&q), "{}", out.stderr);
        } else {
            assert!(out.is_none(), "C keeps waiting forever");
            run.kill();
        }
    }
}

// compatibility.md C-FIX-8: heartbeats go on while the command runs.
#[test]
fn heartbeats_continue_while_the_command_runs() {
    let b = Broker::connect();
    let handles: Vec<_> = sides(TOOL)
        .into_iter()
        .map(|side| {
            let q = b.temp_queue("c-heartbeat");
            fill(&b, &q, &["hb"]);
            let run = consume(&side)
                .args([
                    "--heartbeat",
                    "2",
                    "-q",
                    &q,
                    "-c",
                    "1",
                    "--",
                    "sh",
                    "-c",
                    "cat; sleep 9",
                ])
                .timeout(Duration::from_secs(40))
                .spawn();
            (side, q, run)
        })
        .collect();
    for (side, q, run) in handles {
        let out = run.wait();
        assert_eq!(out.stdout, b"hb");
        if is_ours(&side) {
            out.expect_status(0);
            assert_eq!(b.count(&q), Some(0), "acked after 9 s with heartbeat 2");
        } else {
            assert_eq!(out.status(), 1, "C misses heartbeats: {}", out.stderr);
            assert_eq!(b.count(&q), Some(1));
        }
    }
}

// Declaring a queue of our own with arguments is not touched by -e (uses it as it is).
#[test]
fn existing_queue_with_arguments_is_used_as_is() {
    let b = Broker::connect();
    let Some(ours) = sides(TOOL).into_iter().find(is_ours_side) else {
        return;
    };
    let q = unique("c-args");
    let mut arguments = FieldTable::new();
    arguments.insert(
        "x-max-length".to_string(),
        amqp_tools_tests::amiquip::AmqpValue::LongInt(10),
    );
    b.declare_with(
        &q,
        QueueDeclareOptions {
            arguments,
            ..QueueDeclareOptions::default()
        },
    );
    let run = consume(&ours)
        .args(["-q", &q, "-e", "amq.direct", "-r", &q, "-c", "1", "cat"])
        .spawn();
    wait_for_consumer(&b, &q);
    b.publish_with("amq.direct", &q, b"routed", AmqpProperties::default());
    let out = run.wait();
    out.expect_status(0);
    assert_eq!(out.stdout, b"routed");
    assert!(run_exists_args(&q));
}

fn run_exists_args(q: &str) -> bool {
    queue_info(q).is_some_and(|i| i.arguments.to_string().contains("x-max-length"))
}

// compatibility.md C-CON-19: with -p 1 and --on-failure hold (the default, as C), a failed message
// stays unacked, so the broker sends no other: the tool waits until it is stopped, and the
// messages are all back in the queue afterwards.
#[test]
fn prefetch_one_with_a_failing_command_stalls_until_stopped() {
    let b = Broker::connect();
    for side in sides(TOOL) {
        let q = b.temp_queue("c-stall");
        fill(&b, &q, &["m1", "m2", "m3"]);
        let mut run = consume(&side)
            .args(["-q", &q, "-p", "1", "--", "sh", "-c", "cat; exit 1"])
            .spawn();
        assert!(
            wait_until(Duration::from_secs(10), || !run.stdout_now().is_empty()),
            "{}: nothing consumed",
            side.name
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            run.stdout_now(),
            b"m1",
            "{}: only the first message",
            side.name
        );
        assert!(!run.exited(), "{}: still waiting", side.name);
        // The reason: the failed message holds the only prefetch slot.
        let info = queue_info(&q).unwrap();
        assert_eq!(
            (info.messages_ready, info.messages_unacknowledged),
            (2, 1),
            "{}",
            side.name
        );
        run.signal(libc::SIGTERM);
        let out = run.wait();
        assert_eq!(out.status(), 143, "{}: {}", side.name, out.stderr);
        assert!(
            wait_until(Duration::from_secs(5), || b.count(&q) == Some(3)),
            "{}: {:?} ready",
            side.name,
            b.count(&q)
        );
    }
}
