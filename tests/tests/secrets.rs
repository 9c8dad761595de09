//! A password never reaches stdout or stderr, whatever fails and however it was given (in the
//! URL, with --password, or in an --authfile). Every tool is driven through every failure path
//! we can cause: unknown host, refused port, wrong password, unknown vhost, TLS to a plain
//! port, a broker closing the connection (real and fake), a misbehaving peer, and URLs that
//! do not parse (which are shown, masked).

use amqp_tools_tests::badpeer::{BadPeer, Misbehaviour};
use amqp_tools_tests::{
    broker_addr, close_connections_from_port, consumers, ours, rabbitmqctl_text, refused_port,
    unique, wait_until, Broker, Cmd, Output, Proxy,
};
use std::io::Write;
use std::time::Duration;

const PASSWORD: &str = "Sup3r-S3cret-XYZ";
/// Pieces of the password that must not show either (a truncated or re-encoded copy).
const FRAGMENTS: &[&str] = &["Sup3r-S3cret-XYZ", "S3cret", "Sup3r"];

const TOOLS: &[(&str, &[&str])] = &[
    ("amqp-get", &["-q", "q"]),
    ("amqp-publish", &["-r", "q", "-b", "x"]),
    ("amqp-consume", &["-q", "q", "-c", "1", "cat"]),
    ("amqp-declare-queue", &["-q", "q"]),
    ("amqp-delete-queue", &["-q", "q"]),
];

/// Where a tool is sent; the credentials are added by [`Creds`].
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    vhost: Option<String>,
    tls: bool,
    user: String,
}

/// The three ways of giving the password.
#[derive(Clone, Copy, Debug)]
enum Creds {
    Url,
    Flags,
    Authfile,
}

fn target(host: &str, port: u16, user: &str) -> Target {
    Target {
        host: host.into(),
        port,
        vhost: None,
        tls: false,
        user: user.into(),
    }
}

fn broker_target(user: &str) -> Target {
    let addr = broker_addr();
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    target(host, port.parse().expect("broker port"), user)
}

/// The connection arguments for `t` with the password given as `creds`; the authfile (if any)
/// lives as long as the returned guard.
fn conn_args(t: &Target, creds: Creds) -> (Vec<String>, Option<tempfile::NamedTempFile>) {
    match creds {
        Creds::Url => {
            let scheme = if t.tls { "amqps" } else { "amqp" };
            let vhost = t.vhost.as_ref().map_or(String::new(), |v| format!("/{v}"));
            let url = format!(
                "{scheme}://{}:{PASSWORD}@{}:{}{vhost}",
                t.user, t.host, t.port
            );
            (vec!["--url".into(), url], None)
        }
        Creds::Flags | Creds::Authfile => {
            let mut args = vec![
                "--server".to_string(),
                t.host.clone(),
                "--port".into(),
                t.port.to_string(),
            ];
            if let Some(v) = &t.vhost {
                args.extend(["--vhost".into(), v.clone()]);
            }
            if t.tls {
                args.push("--ssl".into());
            }
            if let Creds::Flags = creds {
                args.extend([
                    "--username".into(),
                    t.user.clone(),
                    "--password".into(),
                    PASSWORD.into(),
                ]);
                (args, None)
            } else {
                let mut f = tempfile::NamedTempFile::new().expect("temp authfile");
                write!(f, "username:{}\npassword:{PASSWORD}\n", t.user).expect("write authfile");
                args.extend(["--authfile".into(), f.path().display().to_string()]);
                (args, Some(f))
            }
        }
    }
}

fn run(tool: &str, conn: &[String], op: &[&str]) -> Output {
    Cmd::new(ours(tool))
        .args(conn)
        .args(["--connect-timeout", "3"])
        .args(op)
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(30))
        .run()
}

/// The password (or a piece of it) anywhere in the output, or a success where a failure was
/// set up.
fn leaks(what: &str, tool: &str, out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    for frag in FRAGMENTS {
        if stdout.contains(frag) || out.stderr.contains(frag) {
            return Some(format!(
                "{what}: {tool} shows {frag:?}: stdout {stdout:?} stderr {:?}",
                out.stderr
            ));
        }
    }
    if out.status() == 0 {
        return Some(format!(
            "{what}: {tool} succeeded; the failure path was not taken"
        ));
    }
    None
}

/// Every tool, every way of giving the password, against `t`.
fn check_all(what: &str, t: &Target) -> Vec<String> {
    let mut problems = Vec::new();
    for creds in [Creds::Url, Creds::Flags, Creds::Authfile] {
        let (conn, _authfile) = conn_args(t, creds);
        for (tool, op) in TOOLS {
            let out = run(tool, &conn, op);
            problems.extend(leaks(&format!("{what} ({creds:?})"), tool, &out));
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A broker user with the test password, removed on drop, for failures past the login.
struct TempUser(String);

impl TempUser {
    fn new() -> TempUser {
        let name = unique("secrets-user");
        rabbitmqctl_text(&["add_user", &name, PASSWORD]);
        rabbitmqctl_text(&["set_permissions", "-p", "/", &name, ".*", ".*", ".*"]);
        TempUser(name)
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let prog = std::env::var_os("RABBITMQCTL").unwrap_or_else(|| "rabbitmqctl".into());
        let _ = Cmd::new(std::path::PathBuf::from(prog))
            .args(["-q", "delete_user", &self.0])
            .timeout(Duration::from_secs(60))
            .run();
    }
}

#[test]
fn unknown_host() {
    assert_none(check_all(
        "unknown host",
        &target("no-such-host.invalid", 5672, "guest"),
    ));
}

#[test]
fn connection_refused() {
    assert_none(check_all(
        "refused port",
        &target("127.0.0.1", refused_port(), "guest"),
    ));
}

#[test]
fn wrong_password() {
    assert_none(check_all("login refused", &broker_target("guest")));
}

#[test]
fn unknown_vhost() {
    let user = TempUser::new();
    let mut t = broker_target(&user.0);
    t.vhost = Some(unique("no-such-vhost"));
    assert_none(check_all("unknown vhost", &t));
}

#[test]
fn tls_to_the_plain_port() {
    let mut t = broker_target("guest");
    t.tls = true;
    assert_none(check_all("TLS to a plain port", &t));
}

#[test]
fn misbehaving_peers() {
    let mut problems = Vec::new();
    for how in [
        // Not Http: it currently hangs the tools (see misbehaving_peer.rs), a separate bug.
        Misbehaviour::NeverAnswers,
        Misbehaviour::CloseAfterHeader,
        Misbehaviour::OversizedFrame,
        Misbehaviour::UnopenedChannel,
        Misbehaviour::BadFrameEnd,
        Misbehaviour::CloseMidOperation,
    ] {
        let peer = BadPeer::start(how);
        problems.extend(check_all(
            &format!("{how:?} peer"),
            &target("127.0.0.1", peer.port(), "guest"),
        ));
    }
    assert_none(problems);
}

/// The real broker closes the connection of a consumer logged in with the password.
#[test]
fn broker_closes_the_connection() {
    let user = TempUser::new();
    let broker = Broker::connect();
    let q = broker.temp_queue("secrets-close");
    let proxy = Proxy::to_broker();
    let mut problems = Vec::new();
    for creds in [Creds::Url, Creds::Flags, Creds::Authfile] {
        let t = target("127.0.0.1", proxy.port(), &user.0);
        let (conn, _authfile) = conn_args(&t, creds);
        let mut consumer = Cmd::new(ours("amqp-consume"))
            .args(&conn)
            .args(["-q", &q, "cat"])
            .env_remove("AMQP_URL")
            .timeout(Duration::from_secs(30))
            .spawn();
        assert!(
            wait_until(Duration::from_secs(15), || !consumers(&q).is_empty()),
            "{creds:?}: the consumer never started: {}",
            consumer.stderr_now()
        );
        let closed: usize = proxy
            .upstream_ports()
            .into_iter()
            .map(|p| close_connections_from_port(p, "secrets test"))
            .sum();
        assert!(closed > 0, "{creds:?}: no connection to close");
        let out = consumer
            .wait_timeout(Duration::from_secs(15))
            .unwrap_or_else(|| consumer.kill());
        problems.extend(leaks(
            &format!("broker close ({creds:?})"),
            "amqp-consume",
            &out,
        ));
    }
    assert_none(problems);
}

/// URLs that do not parse are shown in the error, with the password masked, even when a raw
/// '/', '?' or '#' inside the password confuses where the user info ends.
#[test]
fn invalid_urls_are_shown_masked() {
    let mut problems = Vec::new();
    for url in [
        format!("amqp://guest:{PASSWORD}@127.0.0.1?heartbeat=5"),
        format!("amqp://guest:{PASSWORD}@127.0.0.1/a/b"),
        "amqp://guest:Sup3r/S3cret@127.0.0.1".to_string(),
        "amqp://guest:Sup3r?S3cret@127.0.0.1".to_string(),
        "amqp://guest:Sup3r#S3cret@127.0.0.1".to_string(),
        format!("amqp://guest:{PASSWORD}@[::1"),
        format!("amqp:/guest:{PASSWORD}@127.0.0.1"),
    ] {
        for (tool, op) in TOOLS {
            let conn = vec!["--url".to_string(), url.clone()];
            let out = run(tool, &conn, op);
            problems.extend(leaks(&format!("invalid URL {}", url.len()), tool, &out));
            if out.status() != 1 || !out.stderr.contains("****") {
                problems.push(format!(
                    "{tool}: invalid URL not reported masked: status {} stderr {:?}",
                    out.status(),
                    out.stderr
                ));
            }
        }
        // AMQP_URL is read the same way and shown the same way.
        let out = Cmd::new(ours("amqp-get"))
            .args(["-q", "q"])
            .env("AMQP_URL", &url)
            .timeout(Duration::from_secs(30))
            .run();
        problems.extend(leaks("invalid AMQP_URL", "amqp-get", &out));
    }
    assert_none(problems);
}
