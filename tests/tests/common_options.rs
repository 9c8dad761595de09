//! Option parsing, help/usage and the shared connection options, run on our tools and on
//! Debian's C tools side by side (docs/compatibility.md: C-POPT, C-HELP, C-CONN, C-URL, C-AUTH).
//!
//! Exit codes and stdout must be identical; stderr is ours, so for our side it is checked to be
//! one line that names the problem (and never shows a password), while the C side's stderr is
//! only read to confirm the scenario did what compatibility.md says. Where the project deliberately
//! differs (AMQP_URL, --ssl, --version, -h, client timeouts), each side's own result is asserted.
//!
//! Success against the broker is observed as amqp-get's exit status 2 on an existing empty
//! queue in vhost "/": it proves the connection, the login and the vhost all worked.

use amqp_tools_tests::{
    closing_peer, http_peer, ours, refused_port, require_reference, silent_peer, Broker, Cmd,
    Output, Proxy,
};
use std::path::Path;
use std::time::Duration;

const TOOLS: [&str; 5] = [
    "amqp-publish",
    "amqp-consume",
    "amqp-get",
    "amqp-declare-queue",
    "amqp-delete-queue",
];

/// A password no message may ever show.
const SECRET: &str = "Zq7-s3cret-pw";

/// Runs `bin` with a clean environment for the variables that change the tools' behaviour.
fn cmd(bin: &Path, args: &[&str]) -> Cmd {
    Cmd::new(bin)
        .args(args)
        .env_remove("AMQP_URL")
        .env_remove("POSIXLY_CORRECT")
        .timeout(Duration::from_secs(30))
}

fn run(bin: &Path, args: &[&str]) -> Output {
    cmd(bin, args).run()
}

/// Ours and, when installed, the C tool, on the same arguments.
struct Pair {
    ours: Output,
    reference: Option<Output>,
}

fn pair(tool: &str, args: &[&str]) -> Pair {
    pair_with(tool, args, |c| c)
}

fn pair_with(tool: &str, args: &[&str], tweak: impl Fn(Cmd) -> Cmd) -> Pair {
    let ours = tweak(cmd(&ours(tool), args)).run();
    let reference = require_reference(tool).map(|bin| tweak(cmd(&bin, args)).run());
    Pair { ours, reference }
}

/// Like `pair`, with options only ours has (e.g. --connect-timeout) added to our side.
fn pair_ours_extra(tool: &str, args: &[&str], ours_extra: &[&str]) -> Pair {
    let mut all = args.to_vec();
    all.extend_from_slice(ours_extra);
    let ours = run(&ours(tool), &all);
    let reference = require_reference(tool).map(|bin| run(&bin, args));
    Pair { ours, reference }
}

impl Pair {
    /// Both sides exit with `rc` and print the same stdout.
    fn same(&self, rc: i32) -> &Self {
        self.ours.expect_status(rc);
        if let Some(r) = &self.reference {
            r.expect_status(rc);
            assert!(
                self.ours.stdout == r.stdout,
                "stdout differs for `{}`\nours: {:?}\nreference: {:?}",
                self.ours.cmdline,
                self.ours.stdout_str(),
                r.stdout_str()
            );
        }
        self
    }

    /// Both sides exit with `rc`; stdout is not compared (help text is ours).
    fn status(&self, rc: i32) -> &Self {
        self.ours.expect_status(rc);
        if let Some(r) = &self.reference {
            r.expect_status(rc);
        }
        self
    }

    /// Same exit status and stdout, and ours reports one line naming each of `words`.
    fn fails(&self, words: &[&str]) -> &Self {
        self.same(1);
        assert!(
            self.ours.stdout.is_empty(),
            "stdout: {:?}",
            self.ours.stdout_str()
        );
        one_line(&self.ours, words);
        self
    }

    /// The C side's stderr mentions `text` (to confirm the scenario, not to compare wording).
    fn reference_says(&self, text: &str) -> &Self {
        if let Some(r) = &self.reference {
            assert!(
                r.stderr.contains(text),
                "reference stderr for `{}` lacks {text:?}:\n{}",
                r.cmdline,
                r.stderr
            );
        }
        self
    }
}

/// Our stderr is exactly one line, prefixed by the program name, naming each of `words`
/// (case-insensitively), and free of the test password.
fn one_line(out: &Output, words: &[&str]) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "`{}` should print exactly one stderr line, got:\n{}",
        out.cmdline,
        out.stderr
    );
    assert!(out.stderr.ends_with('\n'), "{:?}", out.stderr);
    let tool = Path::new(out.cmdline.split(' ').next().unwrap_or(""))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        lines[0].starts_with(&format!("{tool}: ")),
        "the line should start with '{tool}: ': {}",
        lines[0]
    );
    let lower = lines[0].to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "`{}`: stderr should mention {w:?}: {}",
            out.cmdline,
            lines[0]
        );
    }
    no_secret(out);
}

fn no_secret(out: &Output) {
    assert!(
        !out.stderr.contains(SECRET) && !out.stdout_str().contains(SECRET),
        "`{}` printed the password:\n{}",
        out.cmdline,
        out.stderr
    );
}

/// An existing empty queue, deleted when the returned broker handle drops.
fn empty_queue(prefix: &str) -> (Broker, String) {
    let broker = Broker::connect();
    let q = broker.temp_queue(prefix);
    (broker, q)
}

// ---------------------------------------------------------------- help, usage, parsing

/// The long options each tool must list in its help (its own, then the shared ones).
fn flags_of(tool: &str) -> Vec<&'static str> {
    let own: &[&str] = match tool {
        "amqp-publish" => &[
            "--exchange",
            "--routing-key",
            "--persistent",
            "--content-type",
            "--content-encoding",
            "--reply-to",
            "--header",
            "--body",
            "--line-buffered",
        ],
        "amqp-consume" => &[
            "--queue",
            "--exchange",
            "--routing-key",
            "--declare",
            "--exclusive",
            "--no-ack",
            "--count",
            "--prefetch-count",
        ],
        "amqp-get" => &["--queue"],
        "amqp-declare-queue" => &["--queue", "--durable"],
        "amqp-delete-queue" => &["--queue", "--if-unused", "--if-empty"],
        _ => unreachable!(),
    };
    let shared = [
        "--url",
        "--server",
        "--port",
        "--vhost",
        "--username",
        "--password",
        "--heartbeat",
        "--authfile",
        "--ssl",
        "--cacert",
        "--key",
        "--cert",
        "--help",
        "--usage",
    ];
    own.iter().copied().chain(shared).collect()
}

#[test]
fn help_and_usage_go_to_stdout_with_status_0() {
    // compatibility.md C-HELP-1 to C-HELP-3: --help, -? and --usage on every tool, no broker.
    for tool in TOOLS {
        for flag in ["--help", "-?", "--usage"] {
            let p = pair(tool, &[flag, "--port", "1"]);
            p.ours.expect_status(0);
            assert!(p.ours.stderr.is_empty(), "{tool} {flag}: {}", p.ours.stderr);
            assert!(!p.ours.stdout.is_empty(), "{tool} {flag}: empty stdout");
            if let Some(r) = &p.reference {
                r.expect_status(0);
                assert!(r.stderr.is_empty() && !r.stdout.is_empty());
            }
        }
        let help = run(&ours(tool), &["--help"]).stdout_str();
        for flag in flags_of(tool) {
            assert!(
                help.contains(flag),
                "{tool} --help does not list {flag}:\n{help}"
            );
        }
        // -? is --help, on both sides.
        let mut bins = vec![ours(tool)];
        bins.extend(require_reference(tool));
        for bin in bins {
            let short = run(&bin, &["-?"]).stdout_str();
            let long = run(&bin, &["--help"]).stdout_str();
            assert!(
                short == long,
                "{}: -? differs from --help:\n{short}\n----\n{long}",
                bin.display()
            );
        }
    }
}

#[test]
fn usage_names_the_program_as_invoked() {
    // compatibility.md C-HELP-5: a symlink named foo says "Usage: foo [".
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let mut bins = vec![ours("amqp-get")];
    bins.extend(require_reference("amqp-get"));
    for bin in bins {
        let link = dir.path().join("foo");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        let out = run(&link, &["--usage"]);
        out.expect_status(0);
        assert!(
            out.stdout_str().starts_with("Usage: foo ["),
            "{}: {:?}",
            bin.display(),
            out.stdout_str()
        );
    }
}

// The static build, image and tarball ship one binary, amqp-tools, with the tool names linked
// to it: under each name it must be that tool, byte for byte.
#[test]
fn the_one_binary_is_each_tool_by_name() {
    let multi = ours("amqp-tools");
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    for tool in TOOLS {
        let link = dir.path().join(tool);
        std::os::unix::fs::symlink(&multi, &link).unwrap();
        for args in [&["--help"][..], &["--usage"], &["--version"], &["--bogus"]] {
            let alone = run(&ours(tool), args);
            for (how, out) in [
                ("linked", run(&link, args)),
                ("as argument", run(&multi, &[&[tool][..], args].concat())),
            ] {
                assert_eq!(
                    (out.status(), &out.stdout, &out.stderr),
                    (alone.status(), &alone.stdout, &alone.stderr),
                    "{tool} {args:?} ({how})"
                );
            }
        }
    }
    // It talks to the broker as the tool: amqp-get's status 2 is an empty queue it reached.
    let (_broker, q) = empty_queue("multi");
    run(&dir.path().join("amqp-get"), &["-q", &q]).expect_status(2);
    run(&multi, &["amqp-get", "-q", &q]).expect_status(2);

    // Under its own name it says how it is used.
    let out = run(&multi, &[]);
    out.expect_status(1);
    assert!(out.stderr.contains("amqp-consume"), "{}", out.stderr);
    let out = run(&multi, &["--help"]);
    out.expect_status(0);
    assert!(out.stdout_str().contains("amqp-declare-queue"));
    let out = run(&multi, &["amqp-nothing", "-q", "x"]);
    out.expect_status(1);
    assert!(
        out.stderr.contains("unknown tool 'amqp-nothing'"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_and_malformed_options() {
    // compatibility.md C-POPT-2, C-POPT-4 to C-POPT-9, C-POPT-14.
    pair("amqp-get", &["--bogus"])
        .fails(&["--bogus"])
        .reference_says("--bogus: unknown option");
    pair("amqp-get", &["-q"])
        .fails(&["-q"])
        .reference_says("-q: missing argument");
    pair("amqp-get", &["-q", "x", "--port", "99999999999"])
        .fails(&["99999999999"])
        .reference_says("number too large or too small");
    pair("amqp-publish", &["-r", "x", "--persistent=1", "-b", "a"])
        .fails(&["--persistent"])
        .reference_says("option does not take an argument");
    pair("amqp-get", &["--que", "x"])
        .fails(&["--que"])
        .reference_says("--que: unknown option");
    pair("amqp-get", &["--help=x"]).fails(&["--help"]);
    pair("amqp-consume", &["-AZ", "cat"]).fails(&["Z"]);
    pair("amqp-consume", &["-c5x", "cat"]).fails(&["5x"]);
    pair("amqp-consume", &["-c", "1.5", "cat"]).fails(&["1.5"]);
    // Single-dash long names are clusters: -queue X is -q ueue plus the operand X.
    pair("amqp-get", &["-queue", "X"])
        .fails(&["X"])
        .reference_says("unexpected operand: X");
}

#[test]
fn help_and_usage_act_where_they_stand() {
    // compatibility.md C-HELP-4.
    let help = run(&ours("amqp-get"), &["--help"]).stdout;
    let p = pair("amqp-get", &["--help", "--bogus"]);
    p.status(0);
    assert!(p.ours.stdout == help, "{}", p.ours.stdout_str());
    pair("amqp-get", &["--bogus", "--help"]).fails(&["--bogus"]);
    let p = pair("amqp-get", &["--help", "--usage"]);
    p.status(0);
    assert!(p.ours.stdout == help, "--help --usage prints the help only");
    if let (Some(r), Some(c)) = (&p.reference, require_reference("amqp-get")) {
        assert!(r.stdout == run(&c, &["--help"]).stdout);
    }
    let usage = run(&ours("amqp-get"), &["--usage"]).stdout;
    let p = pair("amqp-get", &["--usage", "--bogus"]);
    p.status(0);
    assert!(p.ours.stdout == usage, "{}", p.ours.stdout_str());
    pair("amqp-get", &["--bogus", "--usage"]).fails(&["--bogus"]);
    let p = pair("amqp-get", &["-?q", "x"]);
    p.status(0);
    assert!(p.ours.stdout == help, "{}", p.ours.stdout_str());
    // Help needs no -q and no broker.
    pair("amqp-get", &["--port", "1", "--help"]).status(0);
}

#[test]
fn bad_numbers() {
    // compatibility.md C-POPT-9, C-CONN-4, C-CONN-10.
    pair("amqp-get", &["--port", "abc", "-q", "x"])
        .fails(&["abc"])
        .reference_says("abc: invalid numeric value");
    pair("amqp-get", &["--port=abc", "-q", "x"])
        .fails(&["abc"])
        .reference_says("--port=abc: invalid numeric value");
    for (value, target) in [
        ("0x10", "localhost:16"),
        ("010", "localhost:8"),
        ("+7", "localhost:7"),
        ("", "localhost:0"),
    ] {
        let arg = format!("--port={value}");
        pair("amqp-get", &["-q", "x", &arg])
            .fails(&[target])
            .reference_says(&format!("opening socket to {target}"));
    }
    // Out of the port range: the C tool tries it and fails; ours refuses it. Both exit 1.
    pair("amqp-get", &["-q", "x", "--port", "70000"]).fails(&["70000"]);
}

#[test]
fn negative_port_means_not_given() {
    // compatibility.md C-CONN-4: --port -5 connects to the default port.
    let (_b, q) = empty_queue("cp-negport");
    pair("amqp-get", &["-q", &q, "--port", "-5"]).same(2);
}

#[test]
fn operands_are_refused_before_connecting() {
    // compatibility.md C-POPT-13, C-POPT-11: no connection is attempted (the proxy counts them).
    let proxy = Proxy::to_broker();
    let port = proxy.port().to_string();
    pair("amqp-get", &["-q", "x", "extra", "--port", &port])
        .fails(&["extra"])
        .reference_says("unexpected operand: extra");
    pair("amqp-get", &["-q", "x", "foo", "bar", "--port", &port]).fails(&["foo"]);
    pair("amqp-get", &["--port", &port, "--", "-q", "x"])
        .fails(&["-q"])
        .reference_says("unexpected operand: -q");
    pair("amqp-get", &["-q", "x", "extra", "--port", "1"]).fails(&["extra"]);
    assert_eq!(
        proxy.connections(),
        0,
        "a tool connected despite a bad command line"
    );
}

#[test]
fn queue_value_forms_are_equivalent() {
    // compatibility.md C-POPT-1, C-POPT-2, C-POPT-7, C-POPT-11: all forms name the same queue,
    // the last -q wins, a trailing -- is ignored.
    let (_b, q) = empty_queue("cp-forms");
    let eq = format!("-q={q}");
    let glued = format!("-q{q}");
    let long_eq = format!("--queue={q}");
    for args in [
        vec![eq.as_str()],
        vec![glued.as_str()],
        vec![long_eq.as_str()],
        vec!["--queue", q.as_str()],
        vec!["-q", "a", "-q", q.as_str()],
        vec!["-q", q.as_str(), "--"],
    ] {
        pair("amqp-get", &args).same(2);
    }
}

#[test]
fn a_value_may_start_with_a_dash() {
    // compatibility.md C-POPT-3: -q takes the next word even if it looks like an option.
    pair("amqp-get", &["-q", "--nosuch"])
        .fails(&["404", "'--nosuch'"])
        .reference_says("no queue '--nosuch'");
    // compatibility.md C-POPT-5: -url is -u rl.
    pair("amqp-get", &["-q", "x", "-url"])
        .fails(&["'rl'"])
        .reference_says("Parsing URL 'rl'");
}

#[test]
fn missing_required_options_win_over_connection_failures() {
    // compatibility.md C-CONN-9: required options are checked first, even with --port 1.
    pair("amqp-get", &["--port", "1"])
        .fails(&["queue"])
        .reference_says("queue not specified");
    pair("amqp-declare-queue", &["--port", "1"])
        .fails(&["queue"])
        .reference_says("queue name not specified");
    pair("amqp-delete-queue", &["--port", "1"]).fails(&["queue"]);
    pair("amqp-delete-queue", &["--port", "1", "-q", ""])
        .fails(&["queue"])
        .reference_says("queue name not specified");
    pair("amqp-publish", &["--port", "1", "-b", "x"])
        .fails(&["exchange", "routing key"])
        .reference_says("neither exchange nor routing key specified");
    pair("amqp-consume", &["--port", "1", "-q", "x"])
        .fails(&["command"])
        .reference_says("consuming command not specified");
    // The C tool checks -r without -e only after connecting; both sides fail with status 1.
    pair("amqp-consume", &["-r", "k", "--port", "1", "cat"]).same(1);
}

// ---------------------------------------------------------------- connection options

#[test]
fn url_conflicts_with_other_connection_options() {
    // compatibility.md C-CONN-2.
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let authfile = dir.path().join("auth");
    std::fs::write(&authfile, "username:guest\npassword:guest\n").unwrap();
    let authfile = authfile.to_string_lossy().into_owned();
    for (opt, value) in [
        ("--port", "5672"),
        ("--vhost", "/"),
        ("--username", "guest"),
        ("--password", SECRET),
        ("-s", "localhost"),
        ("--authfile", authfile.as_str()),
    ] {
        let named = if opt == "-s" { "--server" } else { opt };
        pair(
            "amqp-get",
            &["-q", "x", "-u", "amqp://localhost", opt, value],
        )
        .fails(&[named, "--url"])
        .reference_says(&format!(
            "{named} and --url options cannot be used at the same time"
        ));
    }
}

#[test]
fn server_with_a_port() {
    // compatibility.md C-CONN-3: deprecated HOST:PORT. The deprecation warning is a line of its
    // own on both sides, so ours prints two lines when the form is also wrong.
    let (_b, q) = empty_queue("cp-server");
    let p = pair("amqp-get", &["-q", &q, "-s", "127.0.0.1:5672"]);
    p.same(2);
    one_line(&p.ours, &["deprecated"]);
    p.reference_says("Specifying the port number with --server is deprecated");
    let p = pair("amqp-get", &["-q", &q, "-s", "127.0.0.1:+5672"]);
    p.same(2);
    for (server, extra) in [
        ("127.0.0.1:5672", Some(["--port", "5672"])),
        ("localhost:abc", None),
        ("h:", None),
        ("h:70000", None),
        ("h:-1", None),
        ("::1", None),
        ("[::1]", None),
        ("127.0.0.1:1", None),
    ] {
        let mut args = vec!["-q", q.as_str(), "-s", server];
        if let Some(e) = &extra {
            args.extend_from_slice(e);
        }
        let p = pair("amqp-get", &args);
        p.same(1);
        let lines: Vec<&str> = p.ours.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "warning + error expected:\n{}",
            p.ours.stderr
        );
        assert!(lines[0].contains("deprecated"), "{}", lines[0]);
        let wanted = if extra.is_some() {
            "--port"
        } else if server == "127.0.0.1:1" {
            "127.0.0.1:1"
        } else {
            server
        };
        assert!(lines[1].contains(wanted), "{}", lines[1]);
    }
}

#[test]
fn unusable_servers_and_ports() {
    // compatibility.md C-CONN-10, with an unknown host and a port nobody listens on.
    pair("amqp-get", &["-q", "x", "--port", "1"])
        .fails(&["localhost:1"])
        .reference_says("opening socket to localhost:1");
    let port = refused_port().to_string();
    pair("amqp-get", &["-q", "x", "-s", "127.0.0.1", "--port", &port]).fails(&[&port]);
    pair("amqp-get", &["-q", "x", "-s", "nonexistent.invalid"])
        .fails(&["nonexistent.invalid"])
        .reference_says("opening socket to nonexistent.invalid:5672");
    pair("amqp-get", &["-q", "x", "-s", ""]).fails(&[":5672"]);
    pair("amqp-get", &["-q", "x", "-s", " 127.0.0.1"]).fails(&["127.0.0.1"]);
}

#[test]
fn negative_heartbeat() {
    // compatibility.md C-CONN-8.
    for v in ["-1", "-5"] {
        pair("amqp-get", &["-q", "x", "--heartbeat", v])
            .fails(&["--heartbeat"])
            .reference_says("--heartbeat must be a positive value");
    }
}

#[test]
fn refused_logins_and_vhosts() {
    // compatibility.md C-CONN-11, C-OWN-6: the password is never shown.
    let wrong_url = format!("amqp://guest:{SECRET}@127.0.0.1");
    for args in [
        vec!["--password", SECRET],
        vec!["--username", "nobody"],
        vec!["-u", wrong_url.as_str()],
    ] {
        for (tool, own) in [
            ("amqp-get", &["-q", "x"][..]),
            ("amqp-declare-queue", &["-q", "x"][..]),
            ("amqp-delete-queue", &["-q", "x"][..]),
            ("amqp-publish", &["-r", "x", "-b", "y"][..]),
            ("amqp-consume", &["-q", "x", "cat"][..]),
        ] {
            let mut all = args.clone();
            all.extend_from_slice(own);
            let p = pair(tool, &all);
            p.fails(&["refused", "ACCESS_REFUSED"])
                .reference_says("ACCESS_REFUSED");
            assert_prompt_refusal(&p, &args);
        }
    }
    pair("amqp-get", &["-q", "x", "--vhost", "nosuch"])
        .fails(&["530", "vhost nosuch not found"])
        .reference_says("NOT_ALLOWED - vhost nosuch not found");
    pair("amqp-get", &["-q", "x", "-u", "amqp://127.0.0.1/nosuch"])
        .fails(&["530", "vhost nosuch not found"]);
}

/// A refusal reported at once takes milliseconds (the broker's silent close, for clients that
/// do not ask for an immediate refusal, takes three seconds); this bound leaves a loaded
/// machine a hundredfold margin.
const PROMPT_REFUSAL: Duration = Duration::from_millis(500);

#[test]
fn refused_login_is_reported_at_once() {
    // The tools advertise `authentication_failure_close`, as the C tools do, so the broker
    // answers a bad login with connection.close 403 ACCESS_REFUSED at once; without it, it
    // closes the socket three seconds later without a reason. Both sides, every kind of bad
    // credentials: exit 1, the broker's reason, and no wait (the times measured are printed).
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let authfile = dir.path().join("authfile");
    std::fs::write(&authfile, format!("username:guest\npassword:{SECRET}\n")).unwrap();
    let authfile = authfile.to_str().unwrap();
    let wrong_url = format!("amqp://guest:{SECRET}@127.0.0.1");
    for args in [
        vec!["-u", wrong_url.as_str()],
        vec!["--username", "nobody", "--password", SECRET],
        vec!["--authfile", authfile],
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&["-q", "x"]);
        let p = pair("amqp-get", &all);
        p.fails(&["refused", "ACCESS_REFUSED"])
            .reference_says("ACCESS_REFUSED");
        assert_prompt_refusal(&p, &args);
    }
}

/// Both sides of a refused login ended within PROMPT_REFUSAL (the times are printed).
fn assert_prompt_refusal(p: &Pair, args: &[&str]) {
    for (side, out) in [("ours", Some(&p.ours)), ("reference", p.reference.as_ref())] {
        let Some(out) = out else { continue };
        eprintln!("{side}, {}: refused after {:?}", args[0], out.elapsed);
        assert!(
            out.elapsed < PROMPT_REFUSAL,
            "{side}: the refusal took {:?} for `{}`",
            out.elapsed,
            out.cmdline
        );
    }
}

#[test]
fn client_capabilities_are_advertised() {
    // What the broker's behaviour depends on, in connection.start-ok: ours advertises every
    // capability it relies on; the C tool advertises the immediate login refusal too.
    let vhost = amqp_tools_tests::temp_vhost(&amqp_tools_tests::unique("caps"));
    let url = vhost.url();
    let broker = Broker::connect_to(&url);
    let q = broker.temp_queue("caps");
    // Each side's connection, by the product it announces (the test's own is amiquip's).
    let find = |vhost: &str, product: &str| {
        amqp_tools_tests::connections_in(vhost)
            .into_iter()
            .find(|c| {
                amqp_tools_tests::client_property(c, "product").and_then(|v| v.as_str())
                    == Some(product)
            })
    };
    let mut sides = vec![("ours", ours("amqp-consume"), "amqp-tools-rs")];
    if let Some(c) = require_reference("amqp-consume") {
        sides.push(("reference", c, "rabbitmq-c"));
    }
    for (side, bin, product) in sides {
        let running = cmd(&bin, &["-u", &url, "-q", &q, "cat"]).spawn();
        let mut seen = None;
        assert!(
            amqp_tools_tests::wait_until(Duration::from_secs(20), || {
                seen = find(vhost.name(), product);
                seen.is_some()
            }),
            "{side}: no connection in the vhost"
        );
        let conn = seen.unwrap();
        let caps = amqp_tools_tests::client_property(&conn, "capabilities").unwrap();
        let has = |name: &str| {
            caps.as_array()
                .is_some_and(|kv| kv.iter().any(|c| c[0] == name && c[2] == true))
        };
        assert!(has("authentication_failure_close"), "{side}: {caps}");
        if side == "ours" {
            for name in [
                "basic.nack",
                "connection.blocked",
                "consumer_cancel_notify",
                "exchange_exchange_bindings",
                "per_consumer_qos",
                "publisher_confirms",
            ] {
                assert!(has(name), "ours lacks {name}: {caps}");
            }
            assert_eq!(
                amqp_tools_tests::client_property(&conn, "connection_name"),
                Some(&amqp_tools_tests::serde_json::json!("amqp-consume")),
            );
        }
        drop(running);
    }
}

#[test]
fn url_table() {
    // compatibility.md C-URL-1 to C-URL-9: every kind of URL, on both sides. Success is status 2
    // on an empty queue of vhost "/".
    let (_b, q) = empty_queue("cp-url");
    let works = [
        "amqp://127.0.0.1",
        "amqp://127.0.0.1/%2f",
        "amqp://127.0.0.1/%2F",
        "amqp://",
        "amqp://:5672",
        "amqp://guest:guest@",
        "amqp://guest@127.0.0.1",
        "amqp://gu%65st:gu%65st@127.0.0.1",
        "amqp://127.0.0.1:+5672",
        "amqp://127.0.0.1:05672",
        "amqp://localhost",
    ];
    for url in works {
        pair("amqp-get", &["-q", &q, "-u", url]).same(2);
    }
    // Vhost "" and "spec x" do not exist on the test broker: refused at login.
    for (url, vhost) in [
        ("amqp://127.0.0.1/", "vhost  not found"),
        ("amqp://127.0.0.1/spec%20x", "vhost spec x not found"),
        ("amqp://127.0.0.1/spec x", "vhost spec x not found"),
    ] {
        pair("amqp-get", &["-q", &q, "-u", url])
            .fails(&["530", vhost])
            .reference_says(vhost);
    }
    let secret_url = format!("amqp://guest:{SECRET}@127.0.0.1/a/b");
    let unparsable = [
        "amqp://127.0.0.1/a/b",
        "amqp://127.0.0.1?heartbeat=10",
        "amqp://127.0.0.1/?x=1",
        "amqp://127.0.0.1/%2f?x=1",
        "AMQP://127.0.0.1",
        "amqp:/127.0.0.1",
        "127.0.0.1",
        "amqp://127.0.0.1:",
        "amqp://127.0.0.1/%zz",
        "amqp://127.0.0.1/%c3%a9",
        "amqp://127.0.0.1#frag",
        "amqp://user:pa:ss@127.0.0.1",
        "amqp://127.0.0.1:0x10",
        "amqp://127.0.0.1:99999",
        "amqp://localhost?heartbeat=5",
        "amqp://h:",
        "amqp://h/a/b",
        "",
        secret_url.as_str(),
    ];
    for url in unparsable {
        pair("amqp-get", &["-q", &q, "-u", url])
            .fails(&["url"])
            .reference_says("could not parse AMQP URL");
    }
    for url in [
        "amqp://@127.0.0.1",
        "amqp://:@127.0.0.1",
        "amqp://guest:@127.0.0.1",
    ] {
        pair("amqp-get", &["-q", &q, "-u", url])
            .fails(&["refused"])
            .reference_says("403");
    }
    pair("amqp-get", &["-q", &q, "-u", "amqp://127.0.0.1:1"])
        .fails(&["127.0.0.1:1"])
        .reference_says("opening socket to 127.0.0.1:1");
    pair("amqp-get", &["-q", &q, "-u", "amqp://[::1]:1"])
        .fails(&["::1"])
        .reference_says("opening socket to ::1:1");
    // IPv6 works when the broker listens there; either way both sides agree.
    let p = pair("amqp-get", &["-q", &q, "-u", "amqp://[::1]"]);
    if let Some(r) = &p.reference {
        assert_eq!(
            p.ours.status(),
            r.status(),
            "{}\n{}",
            p.ours.stderr,
            r.stderr
        );
    }
    // amqps:// means port 5671, where the test broker has no listener (C would fail its TLS
    // handshake anyway: it has no CA file).
    pair("amqp-get", &["-q", &q, "-u", "amqps://127.0.0.1"])
        .fails(&["127.0.0.1:5671"])
        .reference_says("opening socket to 127.0.0.1:5671");
}

#[test]
fn amqp_url_environment_variable() {
    // compatibility.md C-UP-1: intended difference. The C tool (0.11.0) ignores AMQP_URL; ours
    // reads it (newer upstream) when no connection option is given.
    let (_b, q) = empty_queue("cp-env");
    let p = pair_with("amqp-get", &["-q", &q], |c| {
        c.env("AMQP_URL", "amqp://127.0.0.1:1")
    });
    p.ours.expect_status(1);
    one_line(&p.ours, &["127.0.0.1:1"]);
    if let Some(r) = &p.reference {
        r.expect_status(2);
    }
    // A good AMQP_URL is used by ours (and ignored by C, which gets there anyway).
    pair_with("amqp-get", &["-q", &q], |c| {
        c.env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
    })
    .same(2);
    // Any connection option turns the variable off.
    pair_with("amqp-get", &["-q", &q, "-s", "127.0.0.1"], |c| {
        c.env("AMQP_URL", "amqp://127.0.0.1:1")
    })
    .same(2);
    // A bad AMQP_URL is reported as such by ours; the password in it is not shown.
    let bad = format!("amqp://guest:{SECRET}@127.0.0.1?x=1");
    let p = pair_with("amqp-get", &["-q", &q], |c| c.env("AMQP_URL", &bad));
    p.ours.expect_status(1);
    one_line(&p.ours, &["AMQP_URL"]);
    if let Some(r) = &p.reference {
        r.expect_status(2);
    }
}

#[test]
fn authfile_cases() {
    // compatibility.md C-AUTH-1 to C-AUTH-4, C-CONN-5, C-CONN-6. Status 2: credentials accepted.
    let (_b, q) = empty_queue("cp-auth");
    let dir = amqp_tools_tests::tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    };
    let ok = file("ok", "username:guest\npassword:guest\n");
    pair("amqp-get", &["-q", &q, "--authfile", &ok]).same(2);
    pair(
        "amqp-get",
        &[
            "-q",
            &q,
            "--authfile",
            &ok,
            "-s",
            "127.0.0.1",
            "--port",
            "5672",
            "--vhost",
            "/",
        ],
    )
    .same(2);

    // Files the tools refuse before connecting: ours names --authfile.
    let long_user = format!("username:{}\npassword:guest\n", "u".repeat(118));
    let dir_path = dir.path().to_string_lossy().into_owned();
    let missing = dir.path().join("nonexist").to_string_lossy().into_owned();
    for (path, c_says) in [
        (
            file("nonl", "username:guest\npassword:guest"),
            "Password too long",
        ),
        (
            file("extra", "username:guest\npassword:guest\n\n"),
            "Malformed auth file (trailing data)",
        ),
        (
            file("swapped", "password:guest\nusername:guest\n"),
            "Malformed auth file (missing username)",
        ),
        (
            file("onlyuser", "username:guest\n"),
            "Malformed auth file (missing password)",
        ),
        (file("long", &long_user), "Username too long"),
        (file("empty", ""), "Malformed auth file (missing username)"),
        (dir_path, "Malformed auth file (missing username)"),
        (missing.clone(), "Could not read auth data file"),
    ] {
        pair("amqp-get", &["-q", &q, "--authfile", &path])
            .fails(&["--authfile"])
            .reference_says(c_says);
    }
    // Files read verbatim whose credentials the broker refuses.
    let user_117 = format!("username:{}\npassword:{SECRET}\n", "u".repeat(117));
    for content in [
        "username: guest\npassword:guest\n",
        "username:guest\r\npassword:guest\r\n",
        user_117.as_str(),
        &format!("username:guest\npassword:{SECRET}\n"),
    ] {
        let path = file("refused", content);
        pair("amqp-get", &["-q", &q, "--authfile", &path])
            .fails(&["refused"])
            .reference_says("ACCESS_REFUSED");
    }
    pair(
        "amqp-get",
        &["-q", &q, "--authfile", &ok, "--username", "u"],
    )
    .fails(&["--username", "--authfile"])
    .reference_says("--username and --authfile options cannot be used at the same time");
    pair(
        "amqp-get",
        &["-q", &q, "--authfile", &ok, "--password", SECRET],
    )
    .fails(&["--password", "--authfile"])
    .reference_says("--password and --authfile options cannot be used at the same time");
}

#[test]
fn ssl_flag() {
    // compatibility.md C-UP-2: intended difference. In C 0.11.0 --ssl is an error with -s and is
    // ignored otherwise; ours means TLS (newer upstream), on port 5671 by default, where the
    // test broker has no listener, so ours fails there (or, in a build without TLS, says so).
    let (_b, q) = empty_queue("cp-ssl");
    pair("amqp-get", &["-q", "x", "--ssl", "-s", "localhost"])
        .fails(&["localhost:5671"])
        .reference_says(
            "the --ssl option specifies an SSL connection but the --url option does not",
        );
    let p = pair("amqp-get", &["-q", &q, "--ssl"]);
    p.ours.expect_status(1);
    one_line(&p.ours, &["localhost:5671"]);
    if let Some(r) = &p.reference {
        r.expect_status(2);
    }
    // --ssl with an amqp:// URL: C ignores --ssl; ours refuses the contradiction.
    let p = pair("amqp-get", &["-q", &q, "--ssl", "-u", "amqp://127.0.0.1"]);
    p.ours.expect_status(1);
    one_line(&p.ours, &["--ssl", "amqp"]);
    if let Some(r) = &p.reference {
        r.expect_status(2);
    }
}

#[test]
fn version_and_dash_h_exist_in_ours_only() {
    // Intended differences: the C tools have neither --version nor -h.
    for tool in TOOLS {
        let p = pair(tool, &["--version"]);
        p.ours.expect_status(0);
        assert!(
            p.ours.stdout_str().contains(env!("CARGO_PKG_VERSION")),
            "{tool} --version: {:?}",
            p.ours.stdout_str()
        );
        let p2 = pair(tool, &["-h"]);
        p2.ours.expect_status(0);
        assert!(
            p2.ours.stdout == run(&ours(tool), &["--help"]).stdout,
            "{tool}: -h differs from --help"
        );
        for r in [&p.reference, &p2.reference].into_iter().flatten() {
            r.expect_status(1);
            assert!(r.stderr.contains("unknown option"), "{}", r.stderr);
        }
    }
}

// ---------------------------------------------------------------- peers that are not AMQP

#[test]
fn http_peer_is_not_amqp() {
    // compatibility.md C-CONN-12: C says "invalid AMQP data"; ours, that the peer is not AMQP.
    let (port, _guard) = http_peer();
    let port = port.to_string();
    pair_ours_extra(
        "amqp-get",
        &["-q", "x", "-s", "127.0.0.1", "--port", &port],
        &["--connect-timeout", "5"],
    )
    .fails(&["127.0.0.1:"])
    .reference_says("invalid AMQP data");
}

#[test]
fn closing_peer_is_reported() {
    // compatibility.md C-CONN-12: a peer that closes at once.
    let (port, _guard) = closing_peer();
    let port = port.to_string();
    pair_ours_extra(
        "amqp-get",
        &["-q", "x", "-s", "127.0.0.1", "--port", &port],
        &["--connect-timeout", "5"],
    )
    .fails(&["127.0.0.1:"]);
}

#[test]
fn silent_peer_does_not_hang_ours() {
    // compatibility.md C-FIX-7: C blocks forever on a peer that never answers; ours gives
    // up after --connect-timeout.
    let (port, _guard) = silent_peer();
    let port = port.to_string();
    let args = [
        "-q",
        "x",
        "-s",
        "127.0.0.1",
        "--port",
        &port,
        "--connect-timeout",
        "1",
    ];
    let ours_out = run(&ours("amqp-get"), &args);
    ours_out.expect_status(1);
    one_line(&ours_out, &["127.0.0.1:", "--connect-timeout"]);
    assert!(
        ours_out.elapsed < Duration::from_secs(5),
        "took {:?} with --connect-timeout 1",
        ours_out.elapsed
    );
    // Without the option, the default deadline applies (not checked here: 30 s).
    if let Some(c) = require_reference("amqp-get") {
        // The C tool has no --connect-timeout option; run it without.
        let mut running = cmd(&c, &["-q", "x", "-s", "127.0.0.1", "--port", &port]).spawn();
        assert!(
            running.wait_timeout(Duration::from_secs(3)).is_none(),
            "the C tool was expected to hang on a silent peer"
        );
        running.kill();
    }
}

#[test]
fn connect_timeout_is_validated() {
    // Ours only: --connect-timeout takes a positive number of seconds.
    for v in ["0", "-1", "abc", ""] {
        let out = run(&ours("amqp-get"), &["-q", "x", "--connect-timeout", v]);
        out.expect_status(1);
        one_line(&out, &["--connect-timeout"]);
    }
}

#[test]
fn help_into_a_closed_pipe_ends_by_sigpipe() {
    // `tool --help | head -1`: the C tools die of SIGPIPE when the reader is gone; so do ours,
    // quietly, for --help, --usage and --version alike.
    use std::os::unix::process::ExitStatusExt;
    for tool in TOOLS {
        for flag in ["--help", "--usage", "--version"] {
            let (status, stderr) = amqp_tools_tests::run_into_closed_pipe(&ours(tool), &[flag]);
            assert_eq!(
                status.signal(),
                Some(libc::SIGPIPE),
                "{tool} {flag}: {status:?}"
            );
            assert_eq!(stderr, "", "{tool} {flag}");
            if flag == "--version" {
                continue; // the C tools have no --version
            }
            if let Some(c) = require_reference(tool) {
                let (status, _) = amqp_tools_tests::run_into_closed_pipe(&c, &[flag]);
                assert_eq!(status.signal(), Some(libc::SIGPIPE), "C {tool} {flag}");
            }
        }
    }
}
