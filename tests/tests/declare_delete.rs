//! amqp-declare-queue and amqp-delete-queue against the real broker, ours and Debian's C tools
//! side by side (docs/compatibility.md C-DECL-1 to C-DECL-5, C-DEL-1 to C-DEL-5), plus the flags
//! only ours has (--queue-type, --arg, --auto-delete, --passive).
//!
//! Each side works on its own unique queue names, so the two runs cannot disturb each other;
//! what is compared is the exit status, stdout (with the queue name put back in place) and
//! what the broker holds afterwards.

use amqp_tools_tests::amiquip::ConsumerOptions;
use amqp_tools_tests::{
    cancel_consumer, ours, queue_info, require_reference, sides, unique, Broker, Cmd, Output,
    Proxy, QueueInfo, Side,
};
use std::path::Path;
use std::time::Duration;

const DECLARE: &str = "amqp-declare-queue";
const DELETE: &str = "amqp-delete-queue";

fn run(bin: &Path, args: &[&str]) -> Output {
    Cmd::new(bin)
        .args(args)
        .arg("-u")
        .arg(amqp_tools_tests::broker_url())
        .env_remove("AMQP_URL")
        .env_remove("POSIXLY_CORRECT")
        .timeout(Duration::from_secs(30))
        .run()
}

/// Runs without adding -u (for command lines that must not get one).
fn run_bare(bin: &Path, args: &[&str]) -> Output {
    Cmd::new(bin)
        .args(args)
        .env_remove("AMQP_URL")
        .env_remove("POSIXLY_CORRECT")
        .timeout(Duration::from_secs(30))
        .run()
}

/// Whether `out` came from one of our binaries (only ours has a stderr format to check).
fn is_ours(out: &Output) -> bool {
    out.cmdline
        .starts_with(&*amqp_tools_tests::bin_dir().to_string_lossy())
}

/// Status `rc`, and for ours: empty stdout and one stderr line naming each of `words`.
fn fails(out: &Output, words: &[&str]) {
    out.expect_status(1);
    assert!(
        out.stdout.is_empty(),
        "`{}` printed {:?}",
        out.cmdline,
        out.stdout_str()
    );
    if is_ours(out) {
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: one stderr line expected:\n{}",
            out.cmdline,
            out.stderr
        );
        for w in words {
            assert!(
                lines[0].to_lowercase().contains(&w.to_lowercase()),
                "`{}`: stderr should mention {w:?}: {}",
                out.cmdline,
                lines[0]
            );
        }
    }
}

fn info(q: &str) -> QueueInfo {
    queue_info(q).unwrap_or_else(|| panic!("queue {q} should exist"))
}

fn flags(i: &QueueInfo) -> (bool, bool, bool) {
    (i.durable, i.auto_delete, i.exclusive)
}

// ------------------------------------------------------------------------ amqp-declare-queue

#[test]
fn declare_prints_the_name_and_is_idempotent() {
    // compatibility.md C-DECL-2.
    let broker = Broker::connect();
    let mut seen = Vec::new();
    for Side { name: side, bin } in sides(DECLARE) {
        let q = unique(&format!("dd-decl-{side}"));
        broker.cleanup_queue(&q);
        for _ in 0..2 {
            let out = run(&bin, &["-q", &q]);
            out.expect_status(0);
            assert_eq!(out.stdout_str(), format!("{q}\n"), "{side}");
        }
        let i = info(&q);
        assert_eq!(flags(&i), (false, false, false), "{side}: {i:?}");
        assert_eq!(
            i.arguments,
            amqp_tools_tests::serde_json::json!([]),
            "{side}: no arguments"
        );
        seen.push(flags(&i));
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "both sides make the same queue");
}

#[test]
fn declare_durable() {
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(DECLARE) {
        let q = unique(&format!("dd-dur-{side}"));
        broker.cleanup_queue(&q);
        let out = run(&bin, &["-d", "-q", &q]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), format!("{q}\n"));
        assert_eq!(flags(&info(&q)), (true, false, false), "{side}");
        // compatibility.md C-DECL-4: redeclaring without -d is refused by the broker.
        let out = run(&bin, &["-q", &q]);
        fails(&out, &["406", "inequivalent arg 'durable'", &q]);
        if side == "reference" {
            assert!(
                out.stderr
                    .contains("received 'false' but current is 'true'"),
                "{}",
                out.stderr
            );
        }
        assert!(info(&q).durable, "{side}: the queue is unchanged");
    }
}

#[test]
fn declare_server_named() {
    // compatibility.md C-DECL-3: the queue stays (not auto-delete, not exclusive).
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(DECLARE) {
        let out = run(&bin, &["-q", ""]);
        out.expect_status(0);
        let text = out.stdout_str();
        let name = text
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{side}: {text:?}"));
        broker.cleanup_queue(name);
        let tail = name
            .strip_prefix("amq.gen-")
            .unwrap_or_else(|| panic!("{side}: {name:?}"));
        assert!(
            !tail.is_empty()
                && tail
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{side}: {name:?}"
        );
        assert!(
            broker.exists(name),
            "{side}: {name} should outlive the tool"
        );
        assert_eq!(flags(&info(name)), (false, false, false), "{side}");
    }
}

#[test]
fn declare_without_queue() {
    // compatibility.md C-DECL-1.
    for Side { name: _, bin } in sides(DECLARE) {
        fails(&run(&bin, &[]), &["queue"]);
    }
}

#[test]
fn declare_reserved_prefix() {
    // compatibility.md C-DECL-5: amq.* names are the broker's.
    for Side { name: _, bin } in sides(DECLARE) {
        fails(&run(&bin, &["-q", "amq.x"]), &["403", "amq."]);
    }
}

#[test]
fn names_over_255_bytes() {
    // compatibility.md C-OWN-3: C connects and fails to encode; ours refuses first (nothing sent).
    let long = "x".repeat(300);
    let proxy = Proxy::to_broker();
    let url = proxy.url();
    for tool in [DECLARE, DELETE] {
        for Side { name: side, bin } in sides(tool) {
            let before = proxy.connections();
            let out = run_bare(&bin, &["-q", &long, "-u", &url]);
            fails(&out, &["255"]);
            if side == "ours" {
                assert_eq!(
                    proxy.connections(),
                    before,
                    "{tool}: ours should not connect"
                );
            } else {
                assert!(out.stderr.contains("invalid AMQP data"), "{}", out.stderr);
            }
        }
    }
}

#[test]
fn declare_then_operand_is_refused() {
    for Side { name: _, bin } in sides(DECLARE) {
        let q = unique("dd-operand");
        fails(&run(&bin, &["-q", &q, "extra"]), &["extra"]);
        assert!(queue_info(&q).is_none(), "nothing declared");
    }
}

// ------------------------------------------------------------------------ amqp-delete-queue

#[test]
fn delete_prints_the_message_count() {
    // compatibility.md C-DEL-2, C-DEL-4.
    let broker = Broker::connect();
    for Side {
        name: side,
        bin: delete,
    } in sides(DELETE)
    {
        let q = broker.temp_queue(&format!("dd-del3-{}", side));
        for body in ["a", "b", "c"] {
            broker.publish(&q, body.as_bytes());
        }
        let out = run(&delete, &["-q", &q]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "3\n", "{}", side);
        assert!(!broker.exists(&q), "{}: deleted", side);

        // An empty queue: 0.
        let q = broker.temp_queue(&format!("dd-del0-{}", side));
        let out = run(&delete, &["-q", &q]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "0\n");
        assert!(!broker.exists(&q));

        // --if-unused on a queue without consumers: deleted, count printed.
        let q = broker.temp_queue(&format!("dd-del2-{}", side));
        broker.publish(&q, b"1");
        broker.publish(&q, b"2");
        let out = run(&delete, &["-q", &q, "--if-unused"]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "2\n");
        assert!(!broker.exists(&q));
    }
}

#[test]
fn delete_missing_queue_succeeds() {
    // compatibility.md C-DEL-2.
    for Side { name: side, bin } in sides(DELETE) {
        let q = unique(&format!("dd-never-{side}"));
        let out = run(&bin, &["-q", &q]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "0\n", "{side}");
        assert!(queue_info(&q).is_none());
    }
}

#[test]
fn delete_if_empty_keeps_a_full_queue() {
    // compatibility.md C-DEL-3, with the long and the short flag.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(DELETE) {
        let q = broker.temp_queue(&format!("dd-ifempty-{side}"));
        for body in ["a", "b", "c"] {
            broker.publish(&q, body.as_bytes());
        }
        for flag in ["--if-empty", "-e"] {
            let out = run(&bin, &["-q", &q, flag]);
            fails(&out, &["406", "not empty", &q]);
            assert_eq!(broker.count(&q), Some(3), "{side} {flag}: queue untouched");
        }
        // On an empty queue the condition holds.
        broker.purge(&q);
        let out = run(&bin, &["-q", &q, "-e"]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "0\n");
        assert!(!broker.exists(&q));
    }
}

#[test]
fn delete_if_unused_keeps_a_consumed_queue() {
    // compatibility.md C-DEL-4.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(DELETE) {
        let q = broker.temp_queue(&format!("dd-inuse-{side}"));
        let channel = broker.channel();
        let consumer = channel
            .basic_consume(q.as_str(), ConsumerOptions::default())
            .unwrap();
        let out = run(&bin, &["-q", &q, "--if-unused"]);
        fails(&out, &["406", "in use", &q]);
        assert!(broker.exists(&q), "{side}: queue kept");
        cancel_consumer(consumer);
    }
}

#[test]
fn delete_dash_u_is_url() {
    // compatibility.md C-DEL-5: -u is --url in amqp-delete-queue too.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(DELETE) {
        let q = broker.temp_queue(&format!("dd-dashu-{side}"));
        fails(&run_bare(&bin, &["-q", &q, "-u"]), &["-u"]);
        let out = run_bare(&bin, &["-u", "-q", &q]);
        fails(&out, &[&q]);
        if side == "reference" {
            assert!(
                out.stderr.contains(&format!("unexpected operand: {q}")),
                "{}",
                out.stderr
            );
        }
        assert!(broker.exists(&q), "{side}: nothing deleted");
    }
}

#[test]
fn delete_requires_a_non_empty_queue() {
    // compatibility.md C-DEL-1.
    for Side { name: _, bin } in sides(DELETE) {
        fails(&run(&bin, &["-q", ""]), &["queue"]);
        fails(&run(&bin, &[]), &["queue"]);
    }
}

#[test]
fn delete_clustered_flags() {
    // compatibility.md C-POPT-4: -eq Q is -e -q Q; -qe Q is queue "e" plus the operand Q.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(DELETE) {
        let q = broker.temp_queue(&format!("dd-cluster-{side}"));
        let out = run(&bin, &["-eq", &q]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "0\n", "{side}");
        assert!(!broker.exists(&q));
        let q = broker.temp_queue(&format!("dd-cluster2-{side}"));
        fails(&run(&bin, &["-qe", &q]), &[&q]);
        assert!(broker.exists(&q), "{side}: nothing deleted");
    }
}

// ------------------------------------------------------------------------ ours only

#[test]
fn queue_type_quorum_makes_a_durable_quorum_queue() {
    let broker = Broker::connect();
    let q = unique("dd-quorum");
    broker.cleanup_queue(&q);
    let out = run(&ours(DECLARE), &["-q", &q, "--queue-type", "quorum"]);
    out.expect_status(0);
    assert_eq!(out.stdout_str(), format!("{q}\n"));
    let i = info(&q);
    assert!(i.durable, "quorum implies durable: {i:?}");
    assert_eq!(
        i.arguments,
        amqp_tools_tests::serde_json::json!([["x-queue-type", "longstr", "quorum"]])
    );
    // Same declaration again: fine. Auto-delete is not allowed for quorum queues.
    run(&ours(DECLARE), &["-q", &q, "--queue-type", "quorum", "-d"]).expect_status(0);
    let out = run(
        &ours(DECLARE),
        &["-q", &q, "--queue-type", "quorum", "--auto-delete"],
    );
    fails(&out, &["406"]);
    // The C tool has no such option: a parse error, nothing declared.
    if let Some(c) = require_reference(DECLARE) {
        let q2 = unique("dd-quorum-c");
        let out = run(&c, &["-q", &q2, "--queue-type", "quorum"]);
        out.expect_status(1);
        assert!(
            out.stderr.contains("--queue-type: unknown option"),
            "{}",
            out.stderr
        );
        assert!(queue_info(&q2).is_none());
    }
}

#[test]
fn queue_type_stream_and_classic() {
    let broker = Broker::connect();
    let q = unique("dd-stream");
    broker.cleanup_queue(&q);
    run(&ours(DECLARE), &["-q", &q, "--queue-type", "stream"]).expect_status(0);
    let i = info(&q);
    assert!(i.durable);
    assert_eq!(
        i.arguments,
        amqp_tools_tests::serde_json::json!([["x-queue-type", "longstr", "stream"]])
    );
    let q = unique("dd-classic");
    broker.cleanup_queue(&q);
    run(&ours(DECLARE), &["-q", &q, "--queue-type", "classic"]).expect_status(0);
    let i = info(&q);
    assert!(!i.durable, "classic stays transient without -d");
    // Unknown types are a usage error before connecting.
    fails(
        &run(&ours(DECLARE), &["-q", &q, "--queue-type", "lazy"]),
        &["lazy"],
    );
}

#[test]
fn queue_arguments_are_typed() {
    let broker = Broker::connect();
    let q = unique("dd-args");
    broker.cleanup_queue(&q);
    let out = run(
        &ours(DECLARE),
        &[
            "-q",
            &q,
            "--arg",
            "x-max-length=10",
            "--arg",
            "x-dead-letter-exchange=dlx",
            "--arg",
            "x-single-active-consumer=true",
            "--arg",
            "x-message-ttl=-1",
            "--arg",
            "x-message-ttl=60000",
        ],
    );
    out.expect_status(0);
    assert_eq!(
        info(&q).arguments,
        amqp_tools_tests::serde_json::json!([
            ["x-dead-letter-exchange", "longstr", "dlx"],
            ["x-max-length", "long", 10],
            ["x-message-ttl", "long", 60000],
            ["x-single-active-consumer", "bool", true]
        ])
    );
    // x-max-length really applies: the 11th message pushes out the first.
    for i in 0..11 {
        broker.publish(&q, format!("m{i}").as_bytes());
    }
    assert_eq!(broker.count(&q), Some(10));
    assert_eq!(broker.get(&q).map(|m| m.body), Some(b"m1".to_vec()));
    // Malformed --arg values are refused before connecting.
    for bad in ["novalue", "=5"] {
        fails(&run(&ours(DECLARE), &["-q", &q, "--arg", bad]), &["--arg"]);
    }
}

#[test]
fn auto_delete_flag() {
    let broker = Broker::connect();
    let q = unique("dd-autodel");
    broker.cleanup_queue(&q);
    run(&ours(DECLARE), &["-q", &q, "--auto-delete"]).expect_status(0);
    assert_eq!(flags(&info(&q)), (false, true, false));
}

#[test]
fn passive_checks_without_creating() {
    let broker = Broker::connect();
    let missing = unique("dd-passive-missing");
    let out = run(&ours(DECLARE), &["-q", &missing, "--passive"]);
    fails(&out, &["404", &missing]);
    assert!(
        !broker.exists(&missing),
        "--passive must not create the queue"
    );

    let q = broker.temp_queue("dd-passive");
    broker.publish(&q, b"kept");
    let out = run(&ours(DECLARE), &["-q", &q, "--passive"]);
    out.expect_status(0);
    assert_eq!(out.stdout_str(), format!("{q}\n"));
    assert_eq!(broker.count(&q), Some(1), "the queue is untouched");
    // A durable queue passes the check too: passive ignores the settings.
    let d = unique("dd-passive-durable");
    broker.declare_durable(&d);
    run(&ours(DECLARE), &["-q", &d, "--passive"]).expect_status(0);
    // Settings with --passive would not be checked by the broker: refused.
    fails(
        &run(&ours(DECLARE), &["-q", &q, "--passive", "-d"]),
        &["--passive"],
    );
    fails(
        &run(&ours(DECLARE), &["-q", &q, "--passive", "--arg", "k=1"]),
        &["--passive"],
    );
}

#[test]
fn declare_help_lists_the_extra_flags() {
    let out = run_bare(&ours(DECLARE), &["--help"]);
    out.expect_status(0);
    let help = out.stdout_str();
    for flag in [
        "--queue-type",
        "--arg",
        "--auto-delete",
        "--passive",
        "--durable",
        "--queue",
    ] {
        assert!(help.contains(flag), "{flag} missing from help:\n{help}");
    }
    let out = run_bare(&ours(DELETE), &["--help"]);
    let help = out.stdout_str();
    for flag in ["--if-unused", "--if-empty", "--queue"] {
        assert!(help.contains(flag), "{flag} missing from help:\n{help}");
    }
}
