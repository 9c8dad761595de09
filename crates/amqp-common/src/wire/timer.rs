//! A timerfd: a timer that poll sees as a readable descriptor, so that amiquip's own poll loop
//! can be woken at a deadline, or at once, without a thread to do it.

use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Timer {
    fd: OwnedFd,
    /// Set until a firing has been consumed: `clear` needs no system call otherwise, which
    /// is on every read of a connection.
    armed: AtomicBool,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes no pointers; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        Ok(Timer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: AtomicBool::new(false),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fires once at `at` (at once if it has passed); None disarms.
    pub fn arm(&self, at: Option<Instant>) {
        let delay = at.map(|at| {
            at.saturating_duration_since(Instant::now())
                // A zero value would disarm it.
                .max(Duration::from_nanos(1))
        });
        self.set(delay);
    }

    /// Fires as soon as possible.
    pub fn fire_now(&self) {
        self.set(Some(Duration::from_nanos(1)));
    }

    fn set(&self, delay: Option<Duration>) {
        self.armed.store(delay.is_some(), Ordering::Relaxed);
        let delay = delay.unwrap_or(Duration::ZERO);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: delay.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: delay.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: spec is a valid itimerspec for the call; the old value is not asked for.
        // A failure (impossible with these arguments) leaves the timer as it was, and then
        // amiquip's own connection timeout still bounds the handshake.
        unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    /// Consumes expirations; true if it had fired.
    pub fn clear(&self) -> bool {
        if !self.armed.load(Ordering::Relaxed) {
            return false;
        }
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        let fired = n == 8;
        if fired {
            // It fires once; `arm` sets it again.
            self.armed.store(false, Ordering::Relaxed);
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_and_clears() {
        let timer = Timer::new().unwrap();
        assert!(!timer.clear());
        timer.fire_now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(timer.clear());
        assert!(!timer.clear());
        timer.arm(Some(Instant::now() + Duration::from_secs(60)));
        assert!(!timer.clear());
        timer.arm(None);
        timer.arm(Some(Instant::now() - Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(timer.clear());
    }
}
