//! Every tool against a peer that misbehaves (tests/src/badpeer.rs): each must exit 1 quickly
//! with one clear line on stderr, never panic, never hang. Each test runs all five tools and
//! reports every tool that failed, not just the first.

use amqp_tools_tests::badpeer::{huge_body, BadPeer, Misbehaviour, HUGE_BODY_LEN};
use amqp_tools_tests::{ours, reference, Cmd, Output};
use std::time::Duration;

/// The tools and the operation each is asked to do.
const TOOLS: &[(&str, &[&str])] = &[
    ("amqp-get", &["-q", "q"]),
    ("amqp-publish", &["-r", "q", "-b", "x"]),
    ("amqp-consume", &["-q", "q", "-c", "1", "cat"]),
    ("amqp-declare-queue", &["-q", "q"]),
    ("amqp-delete-queue", &["-q", "q"]),
];

/// --connect-timeout given to every tool: the deadline a silent peer must be given up within.
const CONNECT_TIMEOUT_SECS: u64 = 3;
/// Longer than any correct run (connect deadline plus process start and a bounded close); a
/// tool still running then is hanging.
const HANG: Duration = Duration::from_secs(15);

/// Runs `tool` against `peer`; `None` when it had to be killed (it hung).
fn run(tool: &str, args: &[&str], url: &str) -> Result<Output, String> {
    let mut running = Cmd::new(ours(tool))
        .args([
            "--url",
            url,
            "--connect-timeout",
            &CONNECT_TIMEOUT_SECS.to_string(),
        ])
        .args(args)
        .env_remove("AMQP_URL")
        .timeout(HANG + Duration::from_secs(5))
        .spawn();
    match running.wait_timeout(HANG) {
        Some(out) => Ok(out),
        None => {
            let out = running.kill();
            Err(format!(
                "{tool}: still running after {HANG:?} (hang); stderr so far: {:?}",
                out.stderr
            ))
        }
    }
}

/// What every failure must look like: status 1, one stderr line naming the tool, no panic.
fn check_clean_failure(tool: &str, out: &Output, must_mention: &[&str]) -> Result<(), String> {
    let mut problems = Vec::new();
    if out.status() != 1 {
        problems.push(format!("status {} (want 1)", out.status()));
    }
    // A panic caught by the tools' hook reads "internal error ... (please report this)".
    if out.stderr.contains("panicked")
        || out.stderr.contains("internal error")
        || matches!(out.status(), 101 | 134)
    {
        problems.push("panicked".to_string());
    }
    let lines: Vec<&str> = out.stderr.lines().collect();
    if lines.len() != 1 || !out.stderr.ends_with('\n') {
        problems.push(format!("stderr is {} lines (want exactly 1)", lines.len()));
    }
    if !out.stderr.starts_with(&format!("{tool}: ")) {
        problems.push(format!("stderr does not start with '{tool}: '"));
    }
    for word in must_mention {
        if !out.stderr.contains(word) {
            problems.push(format!("stderr does not mention {word:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{tool}: {} [stderr: {:?}, {} stdout bytes, {:?}]",
            problems.join(", "),
            out.stderr,
            out.stdout.len(),
            out.elapsed
        ))
    }
}

/// Runs every tool against a fresh peer misbehaving as `how` and panics listing all failures.
fn every_tool_fails_cleanly(how: Misbehaviour, must_mention: &[&str], max: Duration) {
    let peer = BadPeer::start(how);
    let url = peer.url();
    let mut failures = Vec::new();
    for (tool, args) in TOOLS {
        match run(tool, args, &url) {
            Err(hang) => failures.push(hang),
            Ok(out) => {
                if let Err(e) = check_clean_failure(tool, &out, must_mention) {
                    failures.push(e);
                } else if out.elapsed > max {
                    failures.push(format!(
                        "{tool}: took {:?} (want under {max:?})",
                        out.elapsed
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{how:?}: {} of {} tools misbehaved:\n{}",
        failures.len(),
        TOOLS.len(),
        failures.join("\n")
    );
}

/// Within the connect deadline plus process start-up and a bounded close.
fn deadline() -> Duration {
    Duration::from_secs(CONNECT_TIMEOUT_SECS) + Duration::from_secs(4)
}

/// Failures that need no deadline: well under it.
fn prompt() -> Duration {
    Duration::from_secs(CONNECT_TIMEOUT_SECS)
}

#[test]
fn peer_that_never_answers() {
    every_tool_fails_cleanly(Misbehaviour::NeverAnswers, &[], deadline());
}

#[test]
fn peer_that_stalls_after_connection_start() {
    every_tool_fails_cleanly(Misbehaviour::StallAfterStart, &[], deadline());
}

#[test]
fn peer_that_closes_after_the_protocol_header() {
    every_tool_fails_cleanly(Misbehaviour::CloseAfterHeader, &[], prompt());
}

#[test]
fn peer_that_answers_http() {
    every_tool_fails_cleanly(Misbehaviour::Http, &[], prompt());
}

#[test]
fn peer_that_sends_an_oversized_frame() {
    every_tool_fails_cleanly(Misbehaviour::OversizedFrame, &[], deadline());
}

#[test]
fn peer_that_sends_a_bad_frame_end() {
    every_tool_fails_cleanly(Misbehaviour::BadFrameEnd, &[], deadline());
}

#[test]
fn peer_that_uses_an_unopened_channel() {
    every_tool_fails_cleanly(Misbehaviour::UnopenedChannel, &[], deadline());
}

#[test]
fn peer_that_closes_the_connection_mid_operation() {
    // The broker's reason must reach the user: code and text.
    every_tool_fails_cleanly(
        Misbehaviour::CloseMidOperation,
        &["320", "CONNECTION_FORCED"],
        deadline(),
    );
}

#[test]
fn consumer_whose_broker_closes_the_connection_mid_consume() {
    let peer = BadPeer::start(Misbehaviour::CloseMidConsume);
    let out = run("amqp-consume", &["-q", "q", "-c", "1", "cat"], &peer.url())
        .unwrap_or_else(|hang| panic!("{hang}"));
    check_clean_failure("amqp-consume", &out, &["320", "CONNECTION_FORCED"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.stdout.is_empty(), "no message was delivered");
    assert!(out.elapsed < deadline(), "took {:?}", out.elapsed);
}

/// A 10 MiB body is an ordinary message (RabbitMQ 3.10 accepts up to 128 MiB by default):
/// amqp-get prints it byte for byte and exits 0, as the C tool does.
#[test]
fn amqp_get_prints_a_10_mib_body() {
    let peer = BadPeer::start(Misbehaviour::HugeBody);
    let want = huge_body();
    let mut bins = vec![("ours", ours("amqp-get"))];
    bins.extend(reference("amqp-get").map(|b| ("reference", b)));
    for (side, bin) in bins {
        let out = Cmd::new(bin)
            .args(["--url", &peer.url(), "-q", "q"])
            .env_remove("AMQP_URL")
            .timeout(Duration::from_secs(60))
            .run();
        out.expect_status(0);
        assert_eq!(out.stdout.len(), HUGE_BODY_LEN, "{side}");
        assert!(out.stdout == want, "{side}: the body was altered");
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("internal error"),
            "{side}: {}",
            out.stderr
        );
    }
}

#[test]
fn amqp_consume_hands_a_10_mib_body_to_its_command() {
    let peer = BadPeer::start(Misbehaviour::HugeBody);
    let out = Cmd::new(ours("amqp-consume"))
        .args(["--url", &peer.url(), "-q", "q", "-c", "1", "cat"])
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(60))
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout.len(), HUGE_BODY_LEN);
    assert!(out.stdout == huge_body(), "the body was altered");
}

/// The fake broker itself must be faithful where it behaves, or the failures above would prove
/// nothing: the other tools succeed against the HugeBody peer (which only misbehaves by
/// sending a large message).
#[test]
fn the_fake_broker_is_good_enough_for_a_successful_run() {
    let peer = BadPeer::start(Misbehaviour::HugeBody);
    for (tool, args, stdout) in [
        ("amqp-publish", &["-r", "q", "-b", "x"][..], &b""[..]),
        ("amqp-declare-queue", &["-q", "q"][..], &b"q\n"[..]),
        ("amqp-delete-queue", &["-q", "q"][..], &b"0\n"[..]),
    ] {
        let out = Cmd::new(ours(tool))
            .args(["--url", &peer.url()])
            .args(args)
            .env_remove("AMQP_URL")
            .timeout(Duration::from_secs(20))
            .run();
        out.expect_status(0);
        assert_eq!(out.stdout, stdout, "{tool}");
    }
}
