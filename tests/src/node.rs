//! Private RabbitMQ nodes on this machine: their own node names, ports (AMQP and Erlang
//! distribution), data and log directories and Erlang cookie, so the shared broker on 5672 (and
//! its cookie) never sees them. The TLS nodes (`tls_node`) and the cluster (`cluster`) are built
//! from these pieces.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One private node: `<name>@localhost`, its files under its own directory.
pub struct Node {
    /// The short node name (before `@localhost`).
    pub name: String,
    dir: PathBuf,
    dist_port: u16,
    child: Mutex<Option<Child>>,
}

impl Node {
    /// Makes the node's directory with `conf` as its rabbitmq.conf (plus logging to a file) and
    /// `cookie` (if given) as its Erlang cookie, and starts it; see `await_startup`.
    pub(crate) fn spawn(
        root: &Path,
        name: &str,
        conf: &str,
        dist_port: u16,
        cookie: Option<&str>,
    ) -> Node {
        let dir = root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        let conf = format!("{conf}log.console = false\nlog.file.level = info\n");
        write(&dir.join("rabbitmq.conf"), conf.as_bytes());
        write(&dir.join("enabled_plugins"), b"[].\n");
        write(&dir.join("rabbitmq-env.conf"), b"");
        if let Some(cookie) = cookie {
            let path = dir.join("home/.erlang.cookie");
            write(&path, cookie.as_bytes());
            // Erlang refuses a cookie file that others can read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        }
        let node = Node {
            name: name.to_string(),
            dir,
            dist_port,
            child: Mutex::new(None),
        };
        node.start();
        node
    }

    /// `<name>@localhost`.
    pub fn node_name(&self) -> String {
        format!("{}@localhost", self.name)
    }

    /// Starts the node's VM (again, after `kill9` or `stop_vm`), with its files as they are.
    pub fn start(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log/console.log"))
            .unwrap_or_else(|e| panic!("open console log: {e}"));
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone console log: {e}"));
        let mut cmd = Command::new(rabbitmq_bin("rabbitmq-server").unwrap_or_default());
        node_env(&mut cmd, &self.dir);
        let dir = &self.dir;
        cmd.env("RABBITMQ_NODENAME", self.node_name())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // Its own process group, so a stuck node can be killed with the VM under the script.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start rabbitmq-server: {e}"));
        let old = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(child);
        if let Some(mut old) = old {
            kill_group(&mut old);
        }
    }

    /// Waits until the node runs RabbitMQ; false when it died or took too long.
    pub fn await_startup(&self) -> bool {
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

    /// Whether the node's VM has ended (or was never started).
    pub fn exited(&self) -> bool {
        let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Runs rabbitmqctl against this node; Some(success), or None when it hung.
    pub fn ctl(&self, args: &[&str], timeout: Duration) -> Option<bool> {
        self.ctl_output(args, timeout).map(|(ok, _)| ok)
    }

    /// Runs rabbitmqctl against this node; Some((success, stdout and stderr)), or None when it
    /// hung.
    pub fn ctl_output(&self, args: &[&str], timeout: Duration) -> Option<(bool, String)> {
        let out = tempfile::tempfile().ok()?;
        let mut cmd = Command::new(rabbitmq_bin("rabbitmqctl")?);
        node_env(&mut cmd, &self.dir);
        cmd.arg("-n")
            .arg(self.node_name())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().ok()?)
            .stderr(out.try_clone().ok()?);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().ok()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                use std::io::{Read, Seek};
                let mut out = out;
                let mut text = String::new();
                let _ = out.rewind();
                let _ = out.read_to_string(&mut text);
                return Some((status.success(), text));
            }
            if Instant::now() >= deadline {
                kill_group(&mut child);
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The OS process id of the node's Erlang VM (beam.smp), found among the processes of the
    /// node's own process group, so no other node can be picked.
    pub fn beam_pid(&self) -> Option<i32> {
        let group = {
            let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
            let child = slot.as_mut()?;
            if !matches!(child.try_wait(), Ok(None)) {
                return None;
            }
            i32::try_from(child.id()).ok()?
        };
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after the ')'.
                let (comm, rest) = stat.rsplit_once(')')?;
                let pgrp: i32 = rest.split_whitespace().nth(2)?.parse().ok()?;
                (pgrp == group && comm.ends_with("(beam.smp")).then_some(pid)
            })
    }

    /// `kill -9` of the node's Erlang VM, as a crash would end it: no goodbye to clients or to
    /// the other nodes. Returns once the VM is gone.
    pub fn kill9(&self) {
        let pid = self
            .beam_pid()
            .unwrap_or_else(|| panic!("node {}: no beam.smp process to kill", self.name));
        // SAFETY: kill(2) on a process of the group we started for this node.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let gone = crate::wait_until(Duration::from_secs(10), || self.exited());
        assert!(gone, "node {}: still running after kill -9", self.name);
        self.reap();
    }

    /// Stops the VM cleanly (`rabbitmqctl stop`: clients get connection.close), by force if it
    /// does not stop in time. The files stay, for `start`.
    pub fn stop_vm(&self) {
        let running = !self.exited();
        if running {
            let _ = self.ctl(&["stop"], STOP_TIMEOUT);
            crate::wait_until(Duration::from_secs(10), || self.exited());
        }
        self.reap();
    }

    fn reap(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            kill_group(&mut child);
        }
    }

    /// Stops the node (gracefully, then by force) and removes its files. Idempotent.
    pub fn remove(&self) {
        self.stop_vm();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The end of the node's logs, for a failure message.
    pub fn log_tail(&self) -> String {
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

/// `N` distinct ports free on 127.0.0.1 and 127.0.0.2 right now.
pub(crate) fn free_ports<const N: usize>() -> [u16; N] {
    let mut held = Vec::new();
    let mut ports = [0u16; N];
    let mut found = 0;
    while found < N {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a free port: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let also = TcpListener::bind(SocketAddr::from(([127, 0, 0, 2], port)));
        if port != 0 && also.is_ok() {
            ports[found] = port;
            found += 1;
        }
        held.push(listener);
    }
    ports
}

/// Debian installs the real scripts under /usr/lib/rabbitmq/bin; the /usr/sbin wrappers switch
/// to the rabbitmq user, which could not read our files or our cookie.
pub(crate) fn rabbitmq_bin(name: &str) -> Option<PathBuf> {
    let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if debian.is_file() {
        return Some(debian);
    }
    which(name)
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

pub(crate) fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A scratch directory `amqp-<what>-<pid>` under the temp dir, emptied first.
pub(crate) fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amqp-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// Removes a directory unless forgotten: what a start that panicked had made.
pub(crate) struct DirGuard(pub(crate) Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What a set of private nodes shares with the tests of one binary: started on first use by
/// `start`, stopped and removed at exit by `at_exit` (which reads the same cell). `None` after
/// printing SKIPPED when RabbitMQ (or another program in `needs`) is not installed; under CI
/// that is a failure instead. A failed start is remembered: each test then fails with it
/// instead of trying again for minutes.
pub(crate) fn started_once<T: Send + Sync>(
    cell: &'static OnceLock<Option<Result<T, String>>>,
    what: &str,
    needs: &[&str],
    start: fn() -> T,
    at_exit: extern "C" fn(),
) -> Option<&'static T> {
    cell.get_or_init(|| {
        let missing = rabbitmq_bin("rabbitmq-server").is_none()
            || needs.iter().any(|program| which(program).is_none());
        if missing {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but rabbitmq-server or one of {needs:?} is missing ({what})"
            );
            eprintln!("SKIPPED: rabbitmq-server or one of {needs:?} not installed ({what})");
            return None;
        }
        let started = std::panic::catch_unwind(start).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| format!("the {what} did not start"))
        });
        if started.is_ok() {
            // SAFETY: registers a plain extern "C" function; it runs once, at process exit.
            unsafe {
                libc::atexit(at_exit);
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
