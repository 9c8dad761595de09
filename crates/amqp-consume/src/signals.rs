//! Signals and child exits as events on a channel, so the delivery loop can wait for a
//! delivery, a signal and a child's exit at once.
//!
//! SIGTERM, SIGINT and SIGCHLD are blocked in every thread (the mask is inherited by the threads
//! amiquip starts later) and taken by one thread with `sigwait`. No handler ever runs, so no
//! system call anywhere is interrupted (amiquip's I/O thread included). Children get an empty
//! mask back: Rust's process spawning resets it.

use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the delivery loop runs: from then on SIGTERM/SIGINT are handled by the loop.
/// Before that (connecting, declaring) nothing is held yet, so a signal ends the tool at once,
/// as it ends the C tool.
static LOOP_ARMED: AtomicBool = AtomicBool::new(false);

pub fn arm() {
    LOOP_ARMED.store(true, Ordering::SeqCst);
}

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write into the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

/// Blocks the signals in the calling thread (call it before any other thread starts) and
/// starts the thread that turns them into events.
pub fn start() -> Receiver<i32> {
    let set = handled_set();
    // SAFETY: changes only this thread's signal mask; threads started later inherit it.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || wait_loop(set, tx));
    rx
}

fn wait_loop(set: libc::sigset_t, tx: Sender<i32>) {
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait reads the set and writes the signal number into `sig`.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            continue;
        }
        if sig != libc::SIGCHLD && !LOOP_ARMED.load(Ordering::SeqCst) {
            std::process::exit(amqp_common::error::signal_status(sig));
        }
        if tx.send(sig).is_err() {
            return;
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl ExitKind {
    pub fn success(self) -> bool {
        self == ExitKind::Code(0)
    }

    /// The status a shell would show: the code, or 128+N when killed by signal N.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitKind::Code(c) => c,
            ExitKind::Signal(s) => amqp_common::error::signal_status(s),
        }
    }
}

/// Every child that has ended since the last call, without blocking. As PID 1 this also reaps
/// orphans that were re-parented to us; the caller ignores pids it does not know.
pub fn reap() -> Vec<(i32, ExitKind)> {
    let mut ended = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: plain waitpid on any child, non-blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return ended;
        }
        let kind = if libc::WIFEXITED(status) {
            ExitKind::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ExitKind::Signal(libc::WTERMSIG(status))
        } else {
            continue;
        };
        ended.push((pid, kind));
    }
}

/// Passes a signal on to a child we started.
pub fn forward(pid: i32, sig: i32) {
    // SAFETY: the pid is a child we have not reaped yet, so it cannot have been reused.
    unsafe {
        libc::kill(pid, sig);
    }
}
