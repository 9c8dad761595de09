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

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

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
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

/// Both nodes and the certificates; lives until the test binary exits.
pub struct TlsNodes {
    pub pki: Pki,
    pub open: TlsNode,
    pub strict: TlsNode,
    dir: PathBuf,
}

/// None when skipped; Err when the nodes could not be started (each test then fails with it,
/// instead of trying again for minutes).
static NODES: OnceLock<Option<Result<TlsNodes, String>>> = OnceLock::new();

/// The shared TLS nodes, started on first use. `None` (after printing SKIPPED) when RabbitMQ or
/// the openssl command is not installed; under CI that is a failure instead.
pub fn tls_nodes() -> Option<&'static TlsNodes> {
    NODES
        .get_or_init(|| {
            if rabbitmq_bin("rabbitmq-server").is_none() || which("openssl").is_none() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but rabbitmq-server or openssl is missing"
                );
                eprintln!("SKIPPED: rabbitmq-server or openssl not installed (TLS tests)");
                return None;
            }
            let started = std::panic::catch_unwind(TlsNodes::start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the TLS nodes did not start".into())
            });
            if started.is_ok() {
                // SAFETY: registers a plain extern "C" function; it runs once, at process exit.
                unsafe {
                    libc::atexit(stop_at_exit);
                }
            }
            Some(started)
        })
        .as_ref()
        .map(|started| match started {
            Ok(nodes) => nodes,
            Err(e) => panic!("{e}"),
        })
}

extern "C" fn stop_at_exit() {
    if let Some(Some(Ok(nodes))) = NODES.get() {
        nodes.stop();
    }
}

impl TlsNodes {
    fn start() -> TlsNodes {
        let dir = std::env::temp_dir().join(format!("amqp-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        // If anything below panics, the guard removes what was made (nodes stop themselves).
        let guard = DirGuard(Some(dir.clone()));
        let pki = make_pki(&dir.join("pki"));
        let pid = std::process::id();
        let mut open = TlsNode::spawn(&dir, &format!("tls-open-{pid}"), &pki, false);
        let mut strict = TlsNode::spawn(&dir, &format!("tls-strict-{pid}"), &pki, true);
        // Ports are picked free but may be taken before the node binds them: retry then.
        for attempt in 0..3 {
            let open_ok = open.await_startup();
            let strict_ok = strict.await_startup();
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
                let log = open.log_tail();
                open.stop();
                eprintln!("TLS node {} failed to start, retrying:\n{log}", open.name);
                open = TlsNode::spawn(&dir, &open.name.clone(), &pki, false);
            }
            if !strict_ok {
                let log = strict.log_tail();
                strict.stop();
                eprintln!("TLS node {} failed to start, retrying:\n{log}", strict.name);
                strict = TlsNode::spawn(&dir, &strict.name.clone(), &pki, true);
            }
        }
        let log = format!("{}\n{}", open.log_tail(), strict.log_tail());
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

/// Removes the scratch directory unless forgotten.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
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
        let dir = root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        let [tls_port, plain_port, dist_port] = free_ports();
        let conf = format!(
            "listeners.tcp.1 = 127.0.0.1:{plain_port}\n\
             listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
             listeners.ssl.2 = 127.0.0.2:{tls_port}\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = {require_client_cert}\n\
             log.console = false\n\
             log.file.level = info\n",
            ca = pki.ca.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
        );
        write(&dir.join("rabbitmq.conf"), conf.as_bytes());
        write(&dir.join("enabled_plugins"), b"[].\n");
        write(&dir.join("rabbitmq-env.conf"), b"");
        let log = std::fs::File::create(dir.join("log/console.log"))
            .unwrap_or_else(|e| panic!("create console log: {e}"));
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone console log: {e}"));
        let node_name = format!("{name}@localhost");
        let mut cmd = Command::new(rabbitmq_bin("rabbitmq-server").unwrap_or_default());
        node_env(&mut cmd, &dir);
        cmd.env("RABBITMQ_NODENAME", &node_name)
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // Its own process group, so a stuck node can be killed with the VM under the script.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start rabbitmq-server: {e}"));
        TlsNode {
            name: name.to_string(),
            tls_port,
            plain_port,
            dir,
            child: Mutex::new(Some(child)),
        }
    }

    /// Waits until the node runs RabbitMQ; false when it died or took too long.
    fn await_startup(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.exited() {
                return false;
            }
            let ok = self
                .ctl(
                    &["await_startup", "--timeout", "5"],
                    Duration::from_secs(15),
                )
                .unwrap_or(false);
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    }

    fn exited(&self) -> bool {
        let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Runs rabbitmqctl against this node; Some(success), or None when it hung.
    fn ctl(&self, args: &[&str], timeout: Duration) -> Option<bool> {
        let mut cmd = Command::new(rabbitmq_bin("rabbitmqctl")?);
        node_env(&mut cmd, &self.dir);
        cmd.arg("-n")
            .arg(format!("{}@localhost", self.name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().ok()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status.success());
            }
            if Instant::now() >= deadline {
                kill_group(&mut child);
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the node (gracefully, then by force) and removes its files. Idempotent.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut child) = child else { return };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = self.ctl(&["stop"], STOP_TIMEOUT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        kill_group(&mut child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The end of the node's logs, for a failure message.
    fn log_tail(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let from = lines.len().saturating_sub(15);
                    out.push_str(&format!("--- {} ---\n", path.display()));
                    out.push_str(&lines[from..].join("\n"));
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Environment shared by the node and rabbitmqctl: a private HOME (so a private Erlang cookie)
/// and an empty env file, so /etc/rabbitmq/rabbitmq-env.conf (the shared node's) is not read.
fn node_env(cmd: &mut Command, dir: &Path) {
    cmd.env("HOME", dir.join("home"))
        .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .env_remove("RABBITMQ_NODENAME")
        .env_remove("ERL_FLAGS");
}

fn kill_group(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the process group we created for this child.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Three distinct ports free on 127.0.0.1 and 127.0.0.2 right now.
fn free_ports() -> [u16; 3] {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a free port: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let also = TcpListener::bind(SocketAddr::from(([127, 0, 0, 2], port)));
        if port != 0 && also.is_ok() {
            ports.push(port);
        }
        held.push(listener);
    }
    [ports[0], ports[1], ports[2]]
}

/// Debian installs the real scripts under /usr/lib/rabbitmq/bin; the /usr/sbin wrappers switch
/// to the rabbitmq user, which could not read our files or our cookie.
fn rabbitmq_bin(name: &str) -> Option<PathBuf> {
    let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if debian.is_file() {
        return Some(debian);
    }
    which(name)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
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
