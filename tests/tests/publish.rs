//! amqp-publish against the real broker, ours and Debian's C tool side by side
//! (docs/compatibility.md C-PUB-1 to C-PUB-14), plus what only ours does: publisher confirms by
//! default (--no-confirm to opt out), --mandatory, the extra properties, and a connection lost
//! in the middle of a `-l` stream.
//!
//! Each side publishes to its own fresh queue; what is compared is the exit status, stdout and
//! the messages the broker holds afterwards (bodies and properties; headers as the support
//! library renders them, sorted by key with repeated keys collapsed to the last value).

use amqp_tools_tests::amiquip::{AmqpValue, FieldTable, QueueDeclareOptions};
use amqp_tools_tests::tempfile::TempDir;
use amqp_tools_tests::{
    broker_url, ours, refused_port, sides, unique, wait_until, Broker, Cmd, Output, Props, Proxy,
    Running, Side,
};
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PUBLISH: &str = "amqp-publish";

fn cmd(bin: &Path, args: &[&str]) -> Cmd {
    Cmd::new(bin)
        .args(args)
        .arg("-u")
        .arg(broker_url())
        .env_remove("AMQP_URL")
        .env_remove("POSIXLY_CORRECT")
        .timeout(Duration::from_secs(60))
}

/// What one run did: its status and output, and what the queue held afterwards.
#[derive(Debug)]
struct Run {
    out: Output,
    msgs: Vec<(Vec<u8>, Props)>,
}

/// Runs `bin` with `args(queue)` on a fresh queue (stdin: `stdin`, or /dev/null), then drains
/// the queue.
fn scenario(
    broker: &Broker,
    side: &str,
    bin: &Path,
    args: impl Fn(&str) -> Vec<String>,
    stdin: Option<&[u8]>,
) -> Run {
    let q = broker.temp_queue(&format!("pub-{side}"));
    let argv = args(&q);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut c = cmd(bin, &argv);
    if let Some(bytes) = stdin {
        c = c.stdin(bytes.to_vec());
    }
    let out = c.run();
    let msgs = drain(broker, &q);
    Run { out, msgs }
}

fn drain(broker: &Broker, q: &str) -> Vec<(Vec<u8>, Props)> {
    broker
        .drain(q)
        .into_iter()
        .map(|m| (m.body, m.props))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Runs the scenario on every side and checks that they agree with each other and with
/// `expected` (status, and the message bodies in order); stdout is always empty.
fn same_everywhere(
    args: impl Fn(&str) -> Vec<String>,
    stdin: Option<&[u8]>,
    status: i32,
    bodies: &[&[u8]],
) -> Vec<Run> {
    let broker = Broker::connect();
    let runs: Vec<Run> = sides(PUBLISH)
        .iter()
        .map(|s| scenario(&broker, s.name, &s.bin, &args, stdin))
        .collect();
    for (Side { name: side, .. }, run) in sides(PUBLISH).iter().zip(&runs) {
        run.out.expect_status(status);
        assert!(
            run.out.stdout.is_empty(),
            "{side}: stdout {:?}",
            run.out.stdout_str()
        );
        let got: Vec<&[u8]> = run.msgs.iter().map(|(b, _)| b.as_slice()).collect();
        assert_eq!(got, bodies, "{side}: bodies in the queue");
    }
    if let [ours, reference] = runs.as_slice() {
        assert_eq!(
            ours.msgs, reference.msgs,
            "ours and the C tool left different messages"
        );
    }
    runs
}

/// Our run failed the way ours fails: status 1, no stdout, one stderr line naming `words`.
fn ours_fails(out: &Output, words: &[&str]) {
    out.expect_status(1);
    assert!(out.stdout.is_empty(), "stdout {:?}", out.stdout_str());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one stderr line expected:\n{}", out.stderr);
    assert!(lines[0].starts_with("amqp-publish: "), "{}", lines[0]);
    for w in words {
        assert!(
            lines[0].contains(w),
            "stderr should mention {w:?}: {}",
            lines[0]
        );
    }
}

fn only_delivery_mode(mode: u8) -> Props {
    Props {
        delivery_mode: Some(mode),
        ..Props::default()
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

/// A named pipe in a scratch directory, for stdin the test feeds at its own pace.
fn fifo(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("stdin");
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other effect.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    path
}

fn tempdir() -> TempDir {
    amqp_tools_tests::tempfile::tempdir().unwrap()
}

/// Starts `bin args` through sh with stdin redirected as `redirect` (e.g. `<&-`, `< /`).
fn with_stdin_redirect(bin: &Path, args: &[&str], redirect: &str) -> Cmd {
    Cmd::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {redirect}"))
        .arg(bin)
        .args(args)
        .arg("-u")
        .arg(broker_url())
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(30))
}

fn spawn_reading_fifo(bin: &Path, args: &[&str], fifo: &Path) -> Running {
    with_stdin_redirect(bin, args, &format!("< '{}'", fifo.display())).spawn()
}

// ---------------------------------------------------------------------------------------------
// compatibility.md C-PUB-1 to C-PUB-13: bodies, properties, errors
// ---------------------------------------------------------------------------------------------

#[test]
fn neither_exchange_nor_routing_key_is_a_usage_error() {
    // compatibility.md C-PUB-1: checked before connecting (a refused port is never reached).
    let port = refused_port().to_string();
    for Side { name: side, bin } in sides(PUBLISH) {
        let out = Cmd::new(&bin)
            .args(["-b", "x", "-s", "127.0.0.1", "--port", &port])
            .env_remove("AMQP_URL")
            .run();
        out.expect_status(1);
        assert!(out.stdout.is_empty(), "{side}");
        assert!(!out.stderr.contains("socket"), "{side}: {}", out.stderr);
        if side == "ours" {
            ours_fails(&out, &["exchange", "routing key"]);
        }
    }
}

#[test]
fn body_from_b_is_exact() {
    // compatibility.md C-PUB-2.
    let runs = same_everywhere(|q| strings(&["-r", q, "-b", "hello"]), None, 0, &[b"hello"]);
    for run in &runs {
        assert!(run.out.stderr.is_empty(), "{}", run.out.stderr);
    }
    // -b takes the argument's bytes, UTF-8 or not.
    let broker = Broker::connect();
    let raw = std::ffi::OsStr::from_bytes(b"\xff\xfe\x80 raw");
    for Side { name: side, bin } in sides(PUBLISH) {
        let q = broker.temp_queue(&format!("pub-raw-{side}"));
        cmd(&bin, &["-r", &q])
            .arg("-b")
            .arg(raw)
            .run()
            .expect_status(0);
        let bodies: Vec<Vec<u8>> = drain(&broker, &q).into_iter().map(|m| m.0).collect();
        assert_eq!(bodies, vec![raw.as_bytes().to_vec()], "{side}");
    }
    // -b "" is one empty message.
    same_everywhere(|q| strings(&["-r", q, "-b", ""]), None, 0, &[b""]);
}

#[test]
fn all_of_stdin_is_one_message() {
    // compatibility.md C-PUB-3.
    same_everywhere(|q| strings(&["-r", q]), Some(b"a\nb\n"), 0, &[b"a\nb\n"]);
    // compatibility.md C-PUB-6: without -l a NUL is just a byte.
    same_everywhere(
        |q| strings(&["-r", q]),
        Some(b"x\0y\nz\n"),
        0,
        &[b"x\0y\nz\n"],
    );
}

#[test]
fn line_mode_makes_one_message_per_line() {
    // compatibility.md C-PUB-4.
    same_everywhere(
        |q| strings(&["-l", "-r", q]),
        Some(b"a\n\nb"),
        0,
        &[b"a\n", b"\n", b"b"],
    );
    same_everywhere(
        |q| strings(&["-r", q, "-l"]),
        Some(b"l1\nl2\n\nl4 no newline"),
        0,
        &[b"l1\n", b"l2\n", b"\n", b"l4 no newline"],
    );
    same_everywhere(
        |q| strings(&["-r", q, "-l"]),
        Some(b"a\r\nb\n"),
        0,
        &[b"a\r\n", b"b\n"],
    );
}

#[test]
fn line_mode_cuts_a_message_at_nul() {
    // compatibility.md C-PUB-6: the C tool takes strlen() of each line.
    same_everywhere(
        |q| strings(&["-r", q, "-l"]),
        Some(b"x\0y\nz\n\0abc\n"),
        0,
        &[b"x", b"z\n", b""],
    );
}

#[test]
fn l_with_b_publishes_nothing_and_ours_says_so() {
    // compatibility.md C-FIX-11: C exits 0 having published nothing (and not read stdin);
    // ours refuses the combination.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(PUBLISH) {
        let run = scenario(
            &broker,
            side,
            &bin,
            |q| strings(&["-l", "-b", "y", "-r", q]),
            Some(b"x\n"),
        );
        assert!(run.msgs.is_empty(), "{side}: {:?}", run.msgs);
        match side {
            "ours" => ours_fails(&run.out, &["-l", "-b"]),
            _ => {
                run.out.expect_status(0);
                assert!(run.out.stdout.is_empty());
            }
        }
    }
}

#[test]
fn empty_stdin() {
    // compatibility.md C-PUB-3, C-PUB-4: one empty message; with -l, none.
    same_everywhere(|q| strings(&["-r", q]), Some(b""), 0, &[b""]);
    same_everywhere(|q| strings(&["-r", q, "-l"]), Some(b""), 0, &[]);
}

#[test]
fn long_lines_are_split_at_32767_bytes() {
    // compatibility.md C-PUB-5.
    let mut input = vec![b'a'; 40_000];
    input.push(b'\n');
    let runs = same_everywhere(
        |q| strings(&["-r", q, "-l"]),
        Some(&input),
        0,
        &[&input[..32_767], &input[32_767..]],
    );
    assert_eq!(runs[0].msgs[1].0.len(), 7_234);
}

#[test]
fn default_properties_are_delivery_mode_only() {
    // compatibility.md C-PUB-8.
    let runs = same_everywhere(|q| strings(&["-r", q, "-b", "m"]), None, 0, &[b"m"]);
    for run in &runs {
        assert_eq!(run.msgs[0].1, only_delivery_mode(1));
    }
    let runs = same_everywhere(|q| strings(&["-r", q, "-p", "-b", "m"]), None, 0, &[b"m"]);
    for run in &runs {
        assert_eq!(run.msgs[0].1, only_delivery_mode(2));
    }
    // The same properties on every line of an -l run.
    let runs = same_everywhere(
        |q| strings(&["-r", q, "-l", "-p", "-C", "text/plain"]),
        Some(b"1\n2\n"),
        0,
        &[b"1\n", b"2\n"],
    );
    for run in &runs {
        for (_, props) in &run.msgs {
            assert_eq!(props.delivery_mode, Some(2));
            assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        }
    }
}

#[test]
fn content_properties_and_headers() {
    // compatibility.md C-PUB-8, C-PUB-9 (the support library reads headers into a map).
    let runs = same_everywhere(
        |q| {
            strings(&[
                "-r",
                q,
                "-p",
                "-C",
                "text/plain",
                "-E",
                "gzip",
                "-t",
                "replyq",
                "-H",
                "a: 1",
                "-H",
                "b:2",
                "-H",
                "c:  x: y ",
                "-H",
                "k4: a: b",
                "-H",
                ":emptykey",
                "-H",
                "k:",
                "-H",
                "k6\t:\ttab",
                "-H",
                "k5:x",
                "-H",
                "k5:y",
                "-b",
                "m",
            ])
        },
        None,
        0,
        &[b"m"],
    );
    let expected = Props {
        delivery_mode: Some(2),
        content_type: Some("text/plain".into()),
        content_encoding: Some("gzip".into()),
        reply_to: Some("replyq".into()),
        headers: Some(
            [
                ("", "S:emptykey"),
                ("a", "S:1"),
                ("b", "S:2"),
                ("c", "S:x: y "),
                ("k", "S:"),
                ("k4", "S:a: b"),
                // Both sides' duplicates read back as the last value.
                ("k5", "S:y"),
                ("k6\t", "S:\ttab"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
        ..Props::default()
    };
    for run in &runs {
        assert_eq!(run.msgs[0].1, expected);
    }
}

#[test]
fn header_without_colon() {
    // compatibility.md C-FIX-12: C warns, connects, fails the publish (rc 1, nothing published);
    // ours refuses before connecting.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(PUBLISH) {
        let run = scenario(
            &broker,
            side,
            &bin,
            |q| strings(&["-r", q, "-H", "bad", "-b", "m"]),
            None,
        );
        run.out.expect_status(1);
        assert!(run.msgs.is_empty(), "{side}: {:?}", run.msgs);
        if side == "ours" {
            ours_fails(&run.out, &["-H", "bad", "':'"]);
        } else {
            assert!(run.out.stderr.contains("delimiter"), "{}", run.out.stderr);
        }
    }
    // Ours never reaches the network.
    let out = Cmd::new(ours(PUBLISH))
        .args([
            "-r",
            "q",
            "-H",
            "bad",
            "-b",
            "m",
            "-s",
            "127.0.0.1",
            "--port",
        ])
        .arg(refused_port().to_string())
        .env_remove("AMQP_URL")
        .run();
    ours_fails(&out, &["bad"]);
}

#[test]
fn missing_exchange_fails_with_the_brokers_404() {
    // compatibility.md C-PUB-11: a single message, 2000 lines with -l, and a 3 MB body.
    let x = unique("pub-nosuch-x");
    let lines: Vec<u8> = (0..2000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let big = noise(3 << 20);
    let cases: [(&[&str], Option<&[u8]>); 4] = [
        (&["-b", "m"], None),
        (&["-b", "m", "--no-confirm"], None),
        (&["-l"], Some(&lines)),
        (&[], Some(&big)),
    ];
    for (extra, stdin) in cases {
        for Side { name: side, bin } in sides(PUBLISH) {
            // The C tool never asks for confirms: --no-confirm is its only mode.
            let extra: Vec<&str> = extra
                .iter()
                .copied()
                .filter(|a| side == "ours" || *a != "--no-confirm")
                .collect();
            let mut c = cmd(&bin, &["-e", &x]).args(extra);
            if let Some(s) = stdin {
                c = c.stdin(s.to_vec());
            }
            let out = c.run();
            out.expect_status(1);
            assert!(out.stdout.is_empty(), "{side}");
            if side == "ours" {
                ours_fails(&out, &["404", "NOT_FOUND", &format!("no exchange '{x}'")]);
            } else {
                assert!(out.stderr.contains("404"), "{}", out.stderr);
            }
        }
    }
}

#[test]
fn unroutable_messages_are_dropped_without_mandatory() {
    // compatibility.md C-PUB-12, C-PUB-1: rc 0 with nothing on stdout or stderr.
    for args in [
        vec!["-r".to_string(), unique("unbound"), "-b".into(), "m".into()],
        strings(&["-e", "amq.direct", "-b", "x"]),
        strings(&["-e", "", "-b", "x"]),
        strings(&["-r", "", "-b", "x"]),
    ] {
        for Side { name: side, bin } in sides(PUBLISH) {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cmd(&bin, &argv).run();
            out.expect_status(0);
            assert!(out.stdout.is_empty(), "{side}");
            assert!(out.stderr.is_empty(), "{side}: {}", out.stderr);
        }
    }
}

#[test]
fn binary_stdin_round_trips() {
    // compatibility.md C-PUB-3.
    let data = noise(300 * 1024);
    same_everywhere(|q| strings(&["-r", q]), Some(&data), 0, &[&data]);
}

#[test]
fn flags_take_no_value() {
    // compatibility.md C-POPT-8 (amqp-publish's own flag).
    for Side { name: side, bin } in sides(PUBLISH) {
        let out = cmd(&bin, &["-r", "x", "--persistent=1", "-b", "a"]).run();
        out.expect_status(1);
        assert!(out.stdout.is_empty(), "{side}");
    }
}

#[test]
fn names_over_255_bytes() {
    // compatibility.md C-OWN-3: C fails after connecting ("invalid AMQP data"), ours before;
    // both rc 1 and nothing published.
    let long = "a".repeat(300);
    for Side { name: side, bin } in sides(PUBLISH) {
        for args in [["-r", long.as_str()], ["-e", long.as_str()]] {
            let out = cmd(&bin, &args).args(["-b", "m"]).run();
            out.expect_status(1);
            assert!(out.stdout.is_empty(), "{side}");
            if side == "ours" {
                ours_fails(&out, &["300 bytes", "255"]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// compatibility.md C-PUB-7, C-PUB-10, C-PUB-14: order of work, streaming, odd stdin
// ---------------------------------------------------------------------------------------------

#[test]
fn login_error_shows_before_stdin_ends() {
    // compatibility.md C-PUB-10: the tool logs in before reading stdin, so a bad password
    // ends it while stdin is still open (we hold the pipe's write end the whole time).
    for Side { name: side, bin } in sides(PUBLISH) {
        let dir = tempdir();
        let path = fifo(&dir);
        let mut running = Cmd::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec \"$0\" \"$@\" < '{}'", path.display()))
            .arg(&bin)
            .args(["-r", "q", "--password", "bad-password"])
            .env_remove("AMQP_URL")
            .timeout(Duration::from_secs(30))
            .spawn();
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let out = running
            .wait_timeout(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{side}: still waiting for stdin after a bad login"));
        drop(writer);
        out.expect_status(1);
        assert!(
            !out.stderr.contains("bad-password"),
            "{side}: password printed"
        );
    }
}

#[test]
fn lines_are_published_as_they_arrive() {
    // compatibility.md C-PUB-7: the first line is queued while the tool still waits for the second.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(PUBLISH) {
        let q = broker.temp_queue(&format!("pub-stream-{side}"));
        let dir = tempdir();
        let path = fifo(&dir);
        let mut running = spawn_reading_fifo(&bin, &["-l", "-r", &q], &path);
        let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all(b"a\n").unwrap();
        assert!(
            wait_until(Duration::from_secs(15), || broker.count(&q) == Some(1)),
            "{side}: first line not published while stdin stays open"
        );
        assert!(!running.exited(), "{side}: exited before the end of stdin");
        writer.write_all(b"b\n").unwrap();
        drop(writer);
        let out = running.wait();
        out.expect_status(0);
        let bodies: Vec<Vec<u8>> = drain(&broker, &q).into_iter().map(|m| m.0).collect();
        assert_eq!(bodies, vec![b"a\n".to_vec(), b"b\n".to_vec()], "{side}");
    }
}

#[test]
fn closed_or_directory_stdin() {
    // compatibility.md C-PUB-14, C-OWN-7: without -l a read error (rc 1, nothing published);
    // with -l nothing to publish (rc 0; ours adds a warning for the directory).
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(PUBLISH) {
        for (redirect, line_mode, status) in [
            ("<&-", false, 1),
            ("<&-", true, 0),
            ("< /", false, 1),
            ("< /", true, 0),
        ] {
            let q = broker.temp_queue(&format!("pub-stdin-{side}"));
            let mut args = vec!["-r", q.as_str()];
            if line_mode {
                args.push("-l");
            }
            let out = with_stdin_redirect(&bin, &args, redirect).run();
            assert_eq!(
                out.status(),
                status,
                "{side} {redirect} -l={line_mode}: {}",
                out.stderr
            );
            assert!(out.stdout.is_empty());
            assert_eq!(
                broker.count(&q),
                Some(0),
                "{side} {redirect} -l={line_mode}"
            );
            if side == "ours" && status == 1 {
                ours_fails(&out, &["stdin"]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Beyond the C tool: confirms, --mandatory, --no-confirm, more properties, lost connection
// ---------------------------------------------------------------------------------------------

#[test]
fn a_thousand_lines_are_all_confirmed_and_queued() {
    let broker = Broker::connect();
    let q = broker.temp_queue("pub-1000");
    let input: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let out = cmd(&ours(PUBLISH), &["-l", "-r", &q]).stdin(input).run();
    out.expect_status(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let bodies: Vec<Vec<u8>> = drain(&broker, &q).into_iter().map(|m| m.0).collect();
    let expected: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert_eq!(bodies, expected);
}

#[test]
fn a_nack_is_an_error() {
    // A full queue that refuses new messages (x-overflow=reject-publish) nacks them: the C tool
    // does not ask for confirms and exits 0; ours exits 1. Both leave the first line only.
    let broker = Broker::connect();
    for Side { name: side, bin } in sides(PUBLISH) {
        let q = unique(&format!("pub-full-{side}"));
        let mut arguments = FieldTable::new();
        arguments.insert("x-max-length".into(), AmqpValue::LongInt(1));
        arguments.insert(
            "x-overflow".into(),
            AmqpValue::LongString("reject-publish".into()),
        );
        broker.declare_with(
            &q,
            QueueDeclareOptions {
                arguments,
                ..QueueDeclareOptions::default()
            },
        );
        let out = cmd(&bin, &["-l", "-r", &q]).stdin(b"a\nb\n".to_vec()).run();
        let bodies: Vec<Vec<u8>> = drain(&broker, &q).into_iter().map(|m| m.0).collect();
        assert_eq!(bodies, vec![b"a\n".to_vec()], "{side}");
        match side {
            "ours" => ours_fails(&out, &["refused", "nack"]),
            _ => {
                out.expect_status(0);
            }
        }
    }
}

#[test]
fn mandatory_unroutable_is_an_error() {
    let broker = Broker::connect();
    let key = unique("pub-unbound");
    for extra in [&[][..], &["--no-confirm"][..]] {
        let out = cmd(&ours(PUBLISH), &["--mandatory", "-r", &key, "-b", "m"])
            .args(extra)
            .run();
        ours_fails(&out, &["NO_ROUTE", &key, "default exchange"]);
        let out = cmd(
            &ours(PUBLISH),
            &["--mandatory", "-e", "amq.direct", "-r", &key, "-b", "m"],
        )
        .args(extra)
        .run();
        ours_fails(&out, &["NO_ROUTE", &key, "amq.direct"]);
    }
    // A routable message with --mandatory is fine, also in -l mode.
    let q = broker.temp_queue("pub-mandatory");
    let out = cmd(&ours(PUBLISH), &["--mandatory", "-l", "-r", &q])
        .stdin(b"1\n2\n3\n".to_vec())
        .run();
    out.expect_status(0);
    assert_eq!(broker.count(&q), Some(3));
    // In -l mode one unroutable line fails the run: the queue is bound for "ok" only.
    let q = broker.temp_queue("pub-mandatory-x");
    broker.bind(&q, "amq.direct", "ok");
    let out = cmd(
        &ours(PUBLISH),
        &["--mandatory", "-e", "amq.direct", "-r", &key, "-l"],
    )
    .stdin(b"1\n2\n".to_vec())
    .run();
    ours_fails(&out, &["NO_ROUTE"]);
}

#[test]
fn no_confirm_still_publishes() {
    let broker = Broker::connect();
    let q = broker.temp_queue("pub-noconfirm");
    let input: Vec<u8> = (0..500)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let out = cmd(&ours(PUBLISH), &["--no-confirm", "-l", "-r", &q])
        .stdin(input)
        .run();
    out.expect_status(0);
    // The channel close that ends the run follows every publish, so all are queued by now.
    assert_eq!(broker.count(&q), Some(500));
}

#[test]
fn extra_properties_land_on_the_message() {
    let broker = Broker::connect();
    let q = broker.temp_queue("pub-props");
    let out = cmd(
        &ours(PUBLISH),
        &[
            "-r",
            &q,
            "--priority",
            "7",
            "--expiration",
            "60000",
            "--message-id",
            "m-1",
            "--correlation-id",
            "c-1",
            "--type",
            "order.created",
            "--app-id",
            "shop",
            "--user-id",
            "guest",
            "--timestamp",
            "1700000000",
            "-b",
            "m",
        ],
    )
    .run();
    out.expect_status(0);
    let msgs = drain(&broker, &q);
    assert_eq!(
        msgs,
        vec![(
            b"m".to_vec(),
            Props {
                delivery_mode: Some(1),
                priority: Some(7),
                expiration: Some("60000".into()),
                message_id: Some("m-1".into()),
                correlation_id: Some("c-1".into()),
                type_: Some("order.created".into()),
                app_id: Some("shop".into()),
                user_id: Some("guest".into()),
                timestamp: Some(1_700_000_000),
                ..Props::default()
            }
        )]
    );

    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    cmd(&ours(PUBLISH), &["-r", &q, "--timestamp", "now", "-b", "m"])
        .run()
        .expect_status(0);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts = drain(&broker, &q)[0].1.timestamp.unwrap();
    assert!(
        (before..=after).contains(&ts),
        "{before} <= {ts} <= {after}"
    );

    // RabbitMQ checks user_id against the login: the broker's refusal is the tool's error.
    let out = cmd(
        &ours(PUBLISH),
        &["-r", &q, "--user-id", "someone-else", "-b", "m"],
    )
    .run();
    ours_fails(&out, &["406", "PRECONDITION_FAILED", "user_id"]);
    assert_eq!(broker.count(&q), Some(0));
}

#[test]
fn bad_property_values_fail_before_connecting() {
    let port = refused_port().to_string();
    for (args, words) in [
        (&["--priority", "256"][..], &["--priority"][..]),
        (&["--priority", "-1"], &["--priority"]),
        (&["--priority", "x"], &["x"]),
        (&["--expiration", "1s"], &["--expiration"]),
        (&["--timestamp", "yesterday"], &["--timestamp"]),
    ] {
        let out = Cmd::new(ours(PUBLISH))
            .args(["-r", "q", "-b", "m", "-s", "127.0.0.1", "--port", &port])
            .args(args)
            .env_remove("AMQP_URL")
            .run();
        ours_fails(&out, words);
    }
}

#[test]
fn help_lists_the_new_flags() {
    let out = Cmd::new(ours(PUBLISH)).arg("--help").run();
    out.expect_status(0);
    let help = out.stdout_str();
    for flag in [
        "--exchange",
        "--routing-key",
        "--persistent",
        "--content-type",
        "--content-encoding",
        "--reply-to",
        "--header",
        "--body",
        "--line-buffered",
        "--no-confirm",
        "--mandatory",
        "--priority",
        "--expiration",
        "--message-id",
        "--correlation-id",
        "--type",
        "--app-id",
        "--user-id",
        "--timestamp",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn lost_connection_mid_stream_is_an_error() {
    // The connection is cut while -l waits for more input; the next line cannot be confirmed,
    // so the run must fail (never exit 0 with a message the broker does not have).
    let broker = Broker::connect();
    let q = broker.temp_queue("pub-cut");
    let proxy = Proxy::to_broker();
    let dir = tempdir();
    let path = fifo(&dir);
    let running = Cmd::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec \"$0\" \"$@\" < '{}'", path.display()))
        .arg(ours(PUBLISH))
        .args(["-l", "-r", &q, "-u", &proxy.url()])
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(30))
        .spawn();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for i in 0..10 {
        writer.write_all(format!("{i}\n").as_bytes()).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(15), || broker.count(&q) == Some(10)),
        "the first 10 lines were not published"
    );
    proxy.cut();
    // Writes may fail once the tool has exited; that is fine.
    let _ = writer.write_all(b"after the cut\n");
    drop(writer);
    let out = running.wait();
    ours_fails(&out, &["connection", "lost"]);
    assert_eq!(broker.count(&q), Some(10));
}

#[test]
fn headers_go_in_command_line_order_with_duplicates() {
    // The C tool sends -H headers as given, a repeated key included; so does ours (its frames
    // are its own, not amiquip's sorted map). Read back raw, in wire order, from both.
    let broker = Broker::connect();
    let expected: Vec<(String, String)> = [("b", "S:1"), ("a", "S:2"), ("a", "S:3"), ("", "S:e")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for Side { name: side, bin } in sides(PUBLISH) {
        let q = broker.temp_queue(&format!("hdr-order-{side}"));
        cmd(
            &bin,
            &[
                "-r", &q, "-H", "b: 1", "-H", "a: 2", "-H", "a:3", "-H", ":e", "-b", "m",
            ],
        )
        .run()
        .expect_status(0);
        let headers = amqp_tools_tests::raw_get_headers(&amqp_tools_tests::broker_addr(), &q)
            .unwrap_or_else(|e| panic!("{side}: raw basic.get failed: {e}"));
        assert_eq!(
            headers,
            Some(expected.clone()),
            "{side}: headers on the wire"
        );
    }
}
