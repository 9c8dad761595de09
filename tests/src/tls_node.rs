//! Private RabbitMQ nodes with TLS listeners, for the TLS tests. They run on their own ports,
//! node names, data directories and Erlang cookie, so the shared broker on 5672 never sees them.
//!
//! Certificates are made at start with the `openssl` command: a test CA, a server certificate for
//! DNS:localhost and IP:127.0.0.1, a client certificate, and a second CA (with its own client
//! certificate) that nothing trusts.
//!
//! RabbitMQ has one set of `ssl_options` per node, so there are two nodes: `open` verifies a
//! client certificate when one is sent but does not require it; `strict` requires one. They are
//! started together once per test binary (`tls_nodes()`), and stopped and removed at exit.

use crate::node::{free_ports, scratch_dir, started_once, write, DirGuard, Node};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The certificate files, all PEM.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing the nodes use.
    pub other_ca: PathBuf,
    /// A client certificate signed by `other_ca`, which the nodes reject.
    pub rogue_client_cert: PathBuf,
    pub rogue_client_key: PathBuf,
}

/// One running node.
pub struct TlsNode {
    pub name: String,
    /// TLS listener, on 127.0.0.1 and on 127.0.0.2 (an address the certificate does not name).
    pub tls_port: u16,
    /// Plain AMQP listener on 127.0.0.1.
    pub plain_port: u16,
    node: Node,
}

/// Both nodes and the certificates; lives until the test binary exits.
pub struct TlsNodes {
    pub pki: Pki,
    pub open: TlsNode,
    pub strict: TlsNode,
    dir: PathBuf,
}

static NODES: OnceLock<Option<Result<TlsNodes, String>>> = OnceLock::new();

/// The shared TLS nodes, started on first use. `None` (after printing SKIPPED) when RabbitMQ or
/// the openssl command is not installed; under CI that is a failure instead.
pub fn tls_nodes() -> Option<&'static TlsNodes> {
    started_once(
        &NODES,
        "TLS tests",
        &["openssl"],
        TlsNodes::start,
        stop_at_exit,
    )
}

extern "C" fn stop_at_exit() {
    if let Some(Some(Ok(nodes))) = NODES.get() {
        nodes.stop();
    }
}

impl TlsNodes {
    fn start() -> TlsNodes {
        let dir = scratch_dir("tls");
        // If anything below panics, the guard removes what was made (nodes stop themselves).
        let guard = DirGuard(Some(dir.clone()));
        let pki = make_pki(&dir.join("pki"));
        let pid = std::process::id();
        let mut open = TlsNode::spawn(&dir, &format!("tls-open-{pid}"), &pki, false);
        let mut strict = TlsNode::spawn(&dir, &format!("tls-strict-{pid}"), &pki, true);
        // Ports are picked free but may be taken before the node binds them: retry then.
        for attempt in 0..3 {
            let open_ok = open.node.await_startup();
            let strict_ok = strict.node.await_startup();
            if open_ok && strict_ok {
                std::mem::forget(guard);
                return TlsNodes {
                    pki,
                    open,
                    strict,
                    dir,
                };
            }
            if attempt == 2 {
                break;
            }
            if !open_ok {
                let log = open.node.log_tail();
                open.stop();
                eprintln!("TLS node {} failed to start, retrying:\n{log}", open.name);
                open = TlsNode::spawn(&dir, &open.name.clone(), &pki, false);
            }
            if !strict_ok {
                let log = strict.node.log_tail();
                strict.stop();
                eprintln!("TLS node {} failed to start, retrying:\n{log}", strict.name);
                strict = TlsNode::spawn(&dir, &strict.name.clone(), &pki, true);
            }
        }
        let log = format!("{}\n{}", open.node.log_tail(), strict.node.log_tail());
        open.stop();
        strict.stop();
        panic!("the private TLS RabbitMQ nodes did not start:\n{log}");
    }

    fn stop(&self) {
        self.open.stop();
        self.strict.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsNode {
    /// `amqps://guest:guest@HOST:tls_port` for a host (localhost, 127.0.0.1, ...).
    pub fn amqps_url(&self, host: &str) -> String {
        format!("amqps://guest:guest@{host}:{}", self.tls_port)
    }

    /// The node's plain AMQP URL, for setting up and checking queues with `Broker::connect_to`.
    pub fn plain_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}", self.plain_port)
    }

    fn spawn(root: &Path, name: &str, pki: &Pki, require_client_cert: bool) -> TlsNode {
        let [tls_port, plain_port, dist_port] = free_ports();
        let conf = format!(
            "listeners.tcp.1 = 127.0.0.1:{plain_port}\n\
             listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
             listeners.ssl.2 = 127.0.0.2:{tls_port}\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = {require_client_cert}\n",
            ca = pki.ca.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
        );
        TlsNode {
            name: name.to_string(),
            tls_port,
            plain_port,
            node: Node::spawn(root, name, &conf, dist_port, None),
        }
    }

    /// Stops the node (gracefully, then by force) and removes its files. Idempotent.
    pub fn stop(&self) {
        self.node.remove();
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (self-signed) as `<name>.pem` / `<name>.key`.
fn make_ca(dir: &Path, name: &str, subject: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
}

/// A leaf certificate `<name>.pem` / `<name>.key` signed by CA `<ca>`, with extensions `ext`.
fn make_leaf(dir: &Path, name: &str, ca: &str, subject: &str, ext: &str) {
    write(&dir.join(format!("{name}.ext")), ext.as_bytes());
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "3",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
        dir,
    );
}

fn make_pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    make_ca(dir, "ca", "/CN=amqp-tools test CA");
    make_ca(dir, "other-ca", "/CN=untrusted test CA");
    make_leaf(
        dir,
        "server",
        "ca",
        "/CN=localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    let client_ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
                      extendedKeyUsage=clientAuth\n";
    make_leaf(
        dir,
        "client",
        "ca",
        "/CN=amqp-tools test client",
        client_ext,
    );
    make_leaf(
        dir,
        "rogue-client",
        "other-ca",
        "/CN=rogue client",
        client_ext,
    );
    let p = |f: &str| dir.join(f);
    Pki {
        ca: p("ca.pem"),
        server_cert: p("server.pem"),
        server_key: p("server.key"),
        client_cert: p("client.pem"),
        client_key: p("client.key"),
        other_ca: p("other-ca.pem"),
        rogue_client_cert: p("rogue-client.pem"),
        rogue_client_key: p("rogue-client.key"),
    }
}
