//! TLS (amqps:// and --ssl) against private RabbitMQ nodes with TLS listeners, using
//! certificates made for the run (see tls_node.rs): verification by --cacert, SSL_CERT_FILE and
//! --no-default-cert-paths, host names and IP addresses, --insecure, client certificates,
//! and the errors for each failure. The shared broker on 5672 is not used.

use amqp_tools_tests::tls_node::{tls_nodes, TlsNode, TlsNodes};
use amqp_tools_tests::*;
use std::path::Path;
use std::time::Duration;

/// A password that must never show up in any output.
const SECRET_PW: &str = "Tls-s3cret-PW";

/// One of our tools with the certificate environment cleared, so that only what the test sets
/// decides what is trusted (the developer's or CI's SSL_CERT_FILE does not leak in).
fn tool(name: &str) -> Cmd {
    Cmd::new(ours(name))
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(30))
}

fn get(args: &[&str]) -> Output {
    tool("amqp-get").args(args).run()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// A URL whose password is SECRET_PW: for failures that happen before the login.
fn secret_url(node: &TlsNode, host: &str) -> String {
    format!("amqps://guest:{SECRET_PW}@{host}:{}", node.tls_port)
}

/// A line of base64 from the middle of a PEM key, to look for in outputs.
fn key_fragment(key: &Path) -> String {
    let text = std::fs::read_to_string(key).expect("read key");
    text.lines()
        .filter(|l| !l.starts_with("-----"))
        .nth(3)
        .expect("key has body lines")
        .to_string()
}

/// Exit 1, one stderr line naming the program and containing every `needles`, and no secret.
fn assert_fails(out: &Output, needles: &[&str], nodes: &TlsNodes) {
    out.expect_status(1);
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout_str());
    let err = out.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("amqp-"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_no_secrets(out, nodes);
}

fn assert_no_secrets(out: &Output, nodes: &TlsNodes) {
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(!all.contains(SECRET_PW), "password printed: {all}");
    assert!(!all.contains("PRIVATE KEY"), "key material printed: {all}");
    for key in [
        &nodes.pki.client_key,
        &nodes.pki.rogue_client_key,
        &nodes.pki.server_key,
    ] {
        assert!(
            !all.contains(&key_fragment(key)),
            "key content printed: {all}"
        );
    }
}

/// A queue on `node` holding one message `body`; deleted when the broker handle drops.
fn queue_with(node: &TlsNode, prefix: &str, body: &[u8]) -> (Broker, String) {
    let broker = Broker::connect_to(&node.plain_url());
    let q = broker.temp_queue(prefix);
    broker.publish(&q, body);
    (broker, q)
}

/// amqp-get's success: the body on stdout, exit 0, nothing on stderr.
fn assert_got(out: &Output, body: &str) {
    out.expect_status(0);
    assert_eq!(out.stdout_str(), body);
    assert_eq!(out.stderr, "", "no warning expected");
}

#[test]
fn cacert_trusts_the_broker_by_name() {
    let Some(nodes) = tls_nodes() else { return };
    let (broker, q) = queue_with(&nodes.open, "tls-cacert", b"by-name");
    let url = nodes.open.amqps_url("localhost");
    assert_got(
        &get(&["--url", &url, "--cacert", p(&nodes.pki.ca), "-q", &q]),
        "by-name",
    );
    assert_eq!(broker.count(&q), Some(0));
}

#[test]
fn cacert_bundle_with_several_certificates() {
    let Some(nodes) = tls_nodes() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("bundle.pem");
    // The trusted CA second: every certificate of the file must be loaded, not the first only.
    let text = std::fs::read_to_string(&nodes.pki.other_ca).expect("read")
        + &std::fs::read_to_string(&nodes.pki.ca).expect("read");
    std::fs::write(&bundle, text).expect("write");
    let (_broker, q) = queue_with(&nodes.open, "tls-bundle", b"bundle");
    let url = nodes.open.amqps_url("localhost");
    assert_got(
        &get(&["--url", &url, "--cacert", p(&bundle), "-q", &q]),
        "bundle",
    );
}

#[test]
fn ip_address_in_certificate_verifies() {
    let Some(nodes) = tls_nodes() else { return };
    let (_broker, q) = queue_with(&nodes.open, "tls-ip", b"by-ip");
    let url = nodes.open.amqps_url("127.0.0.1");
    assert_got(
        &get(&["--url", &url, "--cacert", p(&nodes.pki.ca), "-q", &q]),
        "by-ip",
    );
}

#[test]
fn ssl_cert_file_is_honoured() {
    let Some(nodes) = tls_nodes() else { return };
    let (_broker, q) = queue_with(&nodes.open, "tls-env", b"from-env");
    let url = nodes.open.amqps_url("localhost");
    let out = tool("amqp-get")
        .env("SSL_CERT_FILE", &nodes.pki.ca)
        .args(["--url", &url, "-q", &q])
        .run();
    assert_got(&out, "from-env");
}

#[test]
fn no_default_cert_paths_ignores_ssl_cert_file() {
    let Some(nodes) = tls_nodes() else { return };
    let (broker, q) = queue_with(&nodes.open, "tls-nodefault", b"nd");
    let url = secret_url(&nodes.open, "localhost");
    let out = tool("amqp-get")
        .env("SSL_CERT_FILE", &nodes.pki.ca)
        .args(["--url", &url, "--no-default-cert-paths", "-q", &q])
        .run();
    assert_fails(
        &out,
        &[
            "cannot connect to localhost:",
            "unknown CA",
            "--no-default-cert-paths",
        ],
        nodes,
    );
    assert_eq!(broker.count(&q), Some(1), "nothing was taken");
    // With --cacert, --no-default-cert-paths trusts exactly that file.
    let url = nodes.open.amqps_url("localhost");
    let out = tool("amqp-get")
        .env("SSL_CERT_FILE", &nodes.pki.other_ca)
        .args(["--url", &url, "--no-default-cert-paths"])
        .args(["--cacert", p(&nodes.pki.ca), "-q", &q])
        .run();
    assert_got(&out, "nd");
}

#[test]
fn untrusted_ca_fails_with_what_was_trusted() {
    let Some(nodes) = tls_nodes() else { return };
    let url = secret_url(&nodes.open, "localhost");
    let q = unique("tls-untrusted");
    let out = get(&["--url", &url, "-q", &q]);
    assert_fails(
        &out,
        &["unknown CA", "the system CA certificates", "--cacert"],
        nodes,
    );
    let out = get(&["--url", &url, "--cacert", p(&nodes.pki.other_ca), "-q", &q]);
    assert_fails(
        &out,
        &[
            "unknown CA",
            &format!("--cacert '{}'", p(&nodes.pki.other_ca)),
        ],
        nodes,
    );
}

#[test]
fn host_name_not_in_certificate_fails() {
    let Some(nodes) = tls_nodes() else { return };
    // "127.1" resolves to 127.0.0.1 but is checked as a DNS name, which the certificate lacks.
    let url = secret_url(&nodes.open, "127.1");
    let out = get(&["--url", &url, "--cacert", p(&nodes.pki.ca), "-q", "x"]);
    assert_fails(
        &out,
        &["not valid for '127.1'", "DNS:localhost", "IP:127.0.0.1"],
        nodes,
    );
}

#[test]
fn ip_address_not_in_certificate_fails() {
    let Some(nodes) = tls_nodes() else { return };
    // The node listens on 127.0.0.2 too; the certificate names only 127.0.0.1.
    let url = secret_url(&nodes.open, "127.0.0.2");
    let out = get(&["--url", &url, "--cacert", p(&nodes.pki.ca), "-q", "x"]);
    assert_fails(
        &out,
        &["127.0.0.2:", "not valid for '127.0.0.2'", "IP:127.0.0.1"],
        nodes,
    );
}

#[test]
fn insecure_accepts_anything_and_says_so() {
    let Some(nodes) = tls_nodes() else { return };
    let (_broker, q) = queue_with(&nodes.open, "tls-insecure", b"insecure");
    // Untrusted CA and a name the certificate lacks: both ignored.
    let url = nodes.open.amqps_url("127.0.0.2");
    let out = get(&["--url", &url, "--insecure", "-q", &q]);
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "insecure");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one warning line: {}", out.stderr);
    assert!(
        lines[0].starts_with("amqp-get: warning: --insecure"),
        "{}",
        out.stderr
    );
}

#[test]
fn ssl_flag_with_server_and_port() {
    let Some(nodes) = tls_nodes() else { return };
    let (_broker, q) = queue_with(&nodes.open, "tls-sslflag", b"ssl-flag");
    let port = nodes.open.tls_port.to_string();
    let out = get(&[
        "--ssl",
        "-s",
        "localhost",
        "--port",
        &port,
        "--cacert",
        p(&nodes.pki.ca),
        "-q",
        &q,
    ]);
    assert_got(&out, "ssl-flag");
}

#[test]
fn amqps_to_a_plain_port_fails_fast() {
    let Some(nodes) = tls_nodes() else { return };
    let url = format!(
        "amqps://guest:{SECRET_PW}@localhost:{}",
        nodes.open.plain_port
    );
    let out = get(&["--url", &url, "--cacert", p(&nodes.pki.ca), "-q", "x"]);
    assert_fails(&out, &["does not speak TLS", "plain AMQP port"], nodes);
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
}

#[test]
fn silent_tls_peer_is_bounded_by_connect_timeout() {
    let Some(nodes) = tls_nodes() else { return };
    let (port, _guard) = silent_peer();
    let url = format!("amqps://guest:{SECRET_PW}@127.0.0.1:{port}");
    let out = get(&["--url", &url, "--connect-timeout", "1", "-q", "x"]);
    assert_fails(&out, &["within 1 s", "--connect-timeout"], nodes);
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
}

#[test]
fn client_certificate_required() {
    let Some(nodes) = tls_nodes() else { return };
    let (broker, q) = queue_with(&nodes.strict, "tls-client", b"with-cert");
    let url = secret_url(&nodes.strict, "localhost");
    let ca = p(&nodes.pki.ca);
    let out = get(&["--url", &url, "--cacert", ca, "-q", &q]);
    assert_fails(&out, &["requires a client certificate", "--cert"], nodes);
    // A certificate from a CA the broker does not trust.
    let out = get(&[
        "--url",
        &url,
        "--cacert",
        ca,
        "--cert",
        p(&nodes.pki.rogue_client_cert),
        "--key",
        p(&nodes.pki.rogue_client_key),
        "-q",
        &q,
    ]);
    assert_fails(
        &out,
        &["rejected the client certificate", "rogue-client.pem"],
        nodes,
    );
    assert_eq!(broker.count(&q), Some(1));

    let url = nodes.strict.amqps_url("localhost");
    let out = get(&[
        "--url",
        &url,
        "--cacert",
        ca,
        "--cert",
        p(&nodes.pki.client_cert),
        "--key",
        p(&nodes.pki.client_key),
        "-q",
        &q,
    ]);
    assert_got(&out, "with-cert");
}

#[test]
fn cert_and_key_files_are_checked_before_connecting() {
    let Some(nodes) = tls_nodes() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage_key = dir.path().join("garbage.key");
    std::fs::write(
        &garbage_key,
        "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let missing = dir.path().join("missing.pem");
    // A closed port: any of these reaching the network would fail differently.
    let url = format!("amqps://guest:{SECRET_PW}@localhost:{}", refused_port());
    let (cert, key) = (p(&nodes.pki.client_cert), p(&nodes.pki.client_key));
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["--cert", cert], vec!["--cert needs --key".into()]),
        (vec!["--key", key], vec!["--key needs --cert".into()]),
        (
            vec!["--cacert", p(&missing)],
            vec![format!("cannot read --cacert '{}'", p(&missing))],
        ),
        (
            vec!["--cacert", p(&not_pem)],
            vec![format!(
                "--cacert '{}' holds no PEM certificate",
                p(&not_pem)
            )],
        ),
        (
            vec!["--cert", p(&not_pem), "--key", key],
            vec![format!("--cert '{}' holds no PEM certificate", p(&not_pem))],
        ),
        (
            vec!["--cert", cert, "--key", p(&garbage_key)],
            vec![format!(
                "--key '{}' holds no usable private key",
                p(&garbage_key)
            )],
        ),
        (
            vec!["--cert", cert, "--key", p(&nodes.pki.rogue_client_key)],
            vec!["is not the private key of the certificate".into()],
        ),
    ];
    for (args, needles) in cases {
        let out = tool("amqp-get")
            .args(["--url", &url, "-q", "x"])
            .args(&args)
            .run();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_fails(&out, &needles, nodes);
        assert!(!out.stderr.contains("cannot connect"), "{}", out.stderr);
        assert!(!out.stderr.contains("TUlJRXZR"), "{}", out.stderr);
    }
}

#[test]
fn wrong_password_over_tls_is_not_printed() {
    let Some(nodes) = tls_nodes() else { return };
    let url = secret_url(&nodes.open, "localhost");
    let out = get(&["--url", &url, "--cacert", p(&nodes.pki.ca), "-q", "x"]);
    assert_fails(&out, &["login failed", "ACCESS_REFUSED"], nodes);
    // Refused at once, as over plain TCP: the broker's silent close would take 3 s.
    assert!(
        out.elapsed < Duration::from_millis(500),
        "the refusal took {:?}",
        out.elapsed
    );
}

#[test]
fn publish_over_tls() {
    let Some(nodes) = tls_nodes() else { return };
    let broker = Broker::connect_to(&nodes.open.plain_url());
    let q = broker.temp_queue("tls-publish");
    let url = nodes.open.amqps_url("localhost");
    let out = tool("amqp-publish")
        .args([
            "--url",
            &url,
            "--cacert",
            p(&nodes.pki.ca),
            "-r",
            &q,
            "-b",
            "published",
        ])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "");
    let bodies: Vec<Vec<u8>> = broker.drain(&q).into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, vec![b"published".to_vec()]);
}

#[test]
fn consume_over_tls_with_client_certificate() {
    let Some(nodes) = tls_nodes() else { return };
    let (broker, q) = queue_with(&nodes.strict, "tls-consume", b"consumed");
    let url = nodes.strict.amqps_url("localhost");
    let out = tool("amqp-consume")
        .args(["--url", &url, "--cacert", p(&nodes.pki.ca)])
        .args([
            "--cert",
            p(&nodes.pki.client_cert),
            "--key",
            p(&nodes.pki.client_key),
        ])
        .args(["-q", &q, "-c", "1", "cat"])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "consumed");
    assert_eq!(broker.count(&q), Some(0), "the message was acked");
}

/// The C tools (0.11) against the same node: what both do alike, and the intended differences
/// (newer upstream: IP addresses verify, --ssl with -s enables TLS).
#[test]
fn differential_against_the_c_tool() {
    let Some(nodes) = tls_nodes() else { return };
    let Some(c_get) = require_reference("amqp-get") else {
        return;
    };
    let ca = p(&nodes.pki.ca);
    let run = |bin: &Path, args: &[&str]| {
        Cmd::new(bin)
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env_remove("AMQP_URL")
            .args(args)
            .run()
    };
    let ours_bin = ours("amqp-get");
    let by_name = nodes.open.amqps_url("localhost");
    let by_ip = nodes.open.amqps_url("127.0.0.1");
    let port = nodes.open.tls_port.to_string();
    let strict = nodes.strict.amqps_url("localhost");
    let (cert, key) = (p(&nodes.pki.client_cert), p(&nodes.pki.client_key));

    // Same result on both sides: (args, node, expected status).
    let alike: Vec<(Vec<&str>, &TlsNode, i32)> = vec![
        (vec!["--url", &by_name, "--cacert", ca], &nodes.open, 0),
        (
            vec!["--url", &by_name, "--cacert", p(&nodes.pki.other_ca)],
            &nodes.open,
            1,
        ),
        (
            vec![
                "--url", &strict, "--cacert", ca, "--cert", cert, "--key", key,
            ],
            &nodes.strict,
            0,
        ),
        (vec!["--url", &strict, "--cacert", ca], &nodes.strict, 1),
    ];
    for (args, node, expected) in alike {
        for bin in [&ours_bin, &c_get] {
            let (broker, q) = queue_with(node, "tls-diff", b"diff-body");
            let mut full = args.clone();
            full.extend(["-q", q.as_str()]);
            let out = run(bin, &full);
            out.expect_status(expected);
            let (stdout, left) = if expected == 0 {
                ("diff-body", 0)
            } else {
                ("", 1)
            };
            assert_eq!(out.stdout_str(), stdout, "{}", out.cmdline);
            assert_eq!(broker.count(&q), Some(left), "{}", out.cmdline);
        }
    }

    // Intended differences: (args, our status, C status).
    let differ: Vec<(Vec<&str>, i32, i32)> = vec![
        // C 0.11 checks DNS names only; newer rabbitmq-c and we verify IP SANs.
        (vec!["--url", &by_ip, "--cacert", ca], 0, 1),
        // C 0.11 refuses --ssl with -s; newer rabbitmq-c and we connect with TLS.
        (
            vec!["--ssl", "-s", "localhost", "--port", &port, "--cacert", ca],
            0,
            1,
        ),
    ];
    for (args, ours_status, c_status) in differ {
        for (bin, expected) in [(&ours_bin, ours_status), (&c_get, c_status)] {
            let (broker, q) = queue_with(&nodes.open, "tls-diff", b"diff-body");
            let mut full = args.clone();
            full.extend(["-q", q.as_str()]);
            let out = run(bin, &full);
            out.expect_status(expected);
            let (stdout, left) = if expected == 0 {
                ("diff-body", 0)
            } else {
                ("", 1)
            };
            assert_eq!(out.stdout_str(), stdout, "{}", out.cmdline);
            assert_eq!(broker.count(&q), Some(left), "{}", out.cmdline);
        }
    }
}
