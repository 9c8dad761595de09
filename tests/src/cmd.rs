use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// After the main process exits, how long leftover children may keep its pipes open
/// before we kill them (amqp-consume's per-message commands can outlive it).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Builder for running a tool under a hard timeout in its own process group.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    /// stdin is a pipe the test writes to (`Running::take_stdin`).
    stdin_stream: bool,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

/// What a finished process did; `stderr` is lossy UTF-8 because tests only read it as text.
#[derive(Clone, Debug)]
pub struct Output {
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Terminating signal, `None` on a normal exit.
    pub signal: Option<i32>,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// The command line, for failure messages.
    pub cmdline: String,
}

/// A background process (consumers, SIGTERM tests); its whole group is killed on drop.
pub struct Running {
    child: Child,
    status: Option<ExitStatus>,
    cmdline: String,
    timeout: Duration,
    started: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    elapsed: Option<Duration>,
}

impl Cmd {
    /// Starts a command for `program` with no args, null stdin and a 20 s timeout.
    pub fn new(program: impl AsRef<Path>) -> Cmd {
        Cmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            stdin_stream: false,
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((key.as_ref().to_owned(), Some(val.as_ref().to_owned())));
        self
    }

    /// Removes an inherited environment variable from the child.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Feeds these bytes to stdin and then closes it (stdin is /dev/null otherwise).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// Makes stdin a pipe the test writes to as it goes (`Running::take_stdin`), for input
    /// that arrives over time.
    pub fn stdin_stream(mut self) -> Cmd {
        self.stdin_stream = true;
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Overrides the 20 s limit after which `run`/`Running::wait` kill and panic.
    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = timeout;
        self
    }

    /// Shell-like rendering of the command line, for messages.
    pub fn cmdline(&self) -> String {
        let mut parts = vec![shell_quote(self.program.as_os_str())];
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    /// Runs to completion; panics (after killing the process group) on timeout.
    pub fn run(self) -> Output {
        self.spawn().wait()
    }

    /// Starts the process in the background; panics if it cannot be spawned.
    pub fn spawn(self) -> Running {
        let cmdline = self.cmdline();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(if self.stdin.is_some() || self.stdin_stream {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own group so timeouts and Drop also reach grandchildren.
            .process_group(0);
        for (k, v) in &self.envs {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{cmdline}`: {e}"));

        let mut readers = Vec::new();
        if let Some((bytes, Some(mut pipe))) = self.stdin.map(|b| (b, child.stdin.take())) {
            // A thread, so a child that does not read stdin cannot block us; EPIPE is fine.
            readers.push(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }));
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        readers.push(pump(child.stdout.take().expect("stdout piped"), &stdout));
        readers.push(pump(child.stderr.take().expect("stderr piped"), &stderr));
        Running {
            child,
            status: None,
            cmdline,
            timeout: self.timeout,
            started,
            stdout,
            stderr,
            readers,
            elapsed: None,
        }
    }
}

fn pump(mut from: impl Read + Send + 'static, into: &Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Running {
    /// Process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The write end of stdin, with `Cmd::stdin_stream`; dropping it is the end of input.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Sends `sig` to the process itself (not its group), as a user's `kill` would.
    pub fn signal(&mut self, sig: i32) {
        if self.reap().is_none() {
            // SAFETY: plain syscall; the pid is still ours since it has not been reaped.
            unsafe { libc::kill(self.child.id() as i32, sig) };
        }
    }

    /// Sends `sig` to the whole process group, as a terminal's Ctrl-C would.
    pub fn signal_group(&mut self, sig: i32) {
        // SAFETY: plain syscall; a live group id is never reused, a dead one gives ESRCH.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }

    /// Stdout captured so far, for polling a consumer's progress.
    pub fn stdout_now(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// Stderr captured so far.
    pub fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.reap().is_some()
    }

    /// Waits up to `d` for exit; `None` if still running (it is left running).
    pub fn wait_timeout(&mut self, d: Duration) -> Option<Output> {
        let deadline = Instant::now() + d;
        loop {
            if self.reap().is_some() {
                return Some(self.collect());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for exit within the command's timeout; kills the group and panics when exceeded.
    pub fn wait(mut self) -> Output {
        let left = self.timeout.saturating_sub(self.started.elapsed());
        match self.wait_timeout(left) {
            Some(out) => out,
            None => {
                self.kill();
                panic!(
                    "command timed out after {:?}: {}\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
                    self.timeout,
                    self.cmdline,
                    String::from_utf8_lossy(&self.stdout_now()),
                    self.stderr_now()
                );
            }
        }
    }

    /// SIGKILLs the whole group and returns what it had done.
    pub fn kill(&mut self) -> Output {
        self.signal_group(libc::SIGKILL);
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.elapsed = Some(self.started.elapsed());
        }
        self.collect()
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                self.elapsed = Some(self.started.elapsed());
            }
        }
        self.status
    }

    /// Builds the Output once the process is reaped, waiting briefly for its pipes to drain.
    fn collect(&mut self) -> Output {
        let deadline = Instant::now() + PIPE_GRACE;
        while self.readers.iter().any(|h| !h.is_finished()) {
            if Instant::now() >= deadline {
                // Leftover children hold the pipes; killing them is what closes them.
                self.signal_group(libc::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        let status = self.status.expect("collect after reap");
        Output {
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout_now(),
            stderr: self.stderr_now(),
            elapsed: self.elapsed.unwrap_or_default(),
            cmdline: self.cmdline.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal_group(libc::SIGKILL);
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Output {
    /// Shell-style status: the exit code, or 128+signal when killed.
    pub fn status(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    /// Stdout as lossy UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with the full picture unless the status is `expected`; returns self for chaining.
    pub fn expect_status(&self, expected: i32) -> &Output {
        assert_eq!(
            self.status(),
            expected,
            "unexpected status from `{}`\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.stdout_str(),
            self.stderr
        );
        self
    }
}

/// Runs `bin` with its stdout a pipe whose reader is already gone (as in `tool | head -0`),
/// and returns how it ended and what it wrote on stderr.
pub fn run_into_closed_pipe(bin: &Path, args: &[&str]) -> (ExitStatus, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two new descriptors that we own from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("AMQP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status, reading.join().unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} did not exit", bin.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
