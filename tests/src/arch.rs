//! The CPU architectures the static build targets, and running the other one's binaries here:
//! aarch64 binaries on an x86_64 machine run under Debian's `qemu-aarch64-static`, which this
//! module registers with the kernel's binfmt_misc under a name of its own
//! (`amqp-tools-test-aarch64-<pid>`), once per test process, and unregisters at exit.
//!
//! The registration has the flags F and P. F: the kernel opens the emulator when it is
//! registered, so it also runs binaries inside an empty root (chroot) that holds no emulator.
//! P: the binary gets the argv[0] it was run with, which the multi-call `amqp-tools` reads to
//! know which tool it is. A process that runs an aarch64 binary (amqp-consume running the
//! worker) goes through the kernel again, so the whole tutorial runs emulated.
//!
//! binfmt_misc is mounted on /proc/sys/fs/binfmt_misc when it is not (as systemd does at
//! boot); it stays mounted. Only our entry is removed.

use crate::cmd::Cmd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";
const ENTRY_PREFIX: &str = "amqp-tools-test-aarch64-";
/// An ELF header of a 64-bit little-endian aarch64 executable or shared object (e_machine
/// 0xb7), and the bits of it that must match: the same values as Debian's qemu-aarch64 entry.
const AARCH64_MAGIC: &str =
    r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
const AARCH64_MASK: &str =
    r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

/// An architecture of the static binaries (`scripts/build-static --arch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// This machine's.
    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            other => panic!("the static build supports x86_64 and aarch64 machines, not {other}"),
        }
    }

    pub fn is_host(self) -> bool {
        self == Arch::host()
    }

    /// The name in `--arch`, target triples and tarball names: x86_64, aarch64.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Debian's and the OCI image platform's name: amd64, arm64.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// What `file` says of an ELF binary of this architecture.
    pub fn file_says(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86-64",
            Arch::Aarch64 => "ARM aarch64",
        }
    }

    /// Whether this architecture's binaries run here: natively, or under qemu-user (aarch64 on
    /// x86_64, registered on first use). Prints SKIPPED and returns false when they cannot;
    /// under CI that fails the test instead.
    pub fn runnable(self) -> bool {
        if self.is_host() {
            return true;
        }
        if self != Arch::Aarch64 {
            crate::skip(&format!(
                "no emulation of {} on this machine is set up by the tests",
                self.name()
            ));
            return false;
        }
        static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
        match REGISTERED.get_or_init(register_aarch64) {
            Ok(()) => true,
            Err(why) => {
                crate::skip(&format!("aarch64 emulation is unavailable: {why}"));
                false
            }
        }
    }
}

/// Registers our binfmt_misc entry for aarch64, to be removed at exit.
fn register_aarch64() -> Result<(), String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err("registering qemu with binfmt_misc needs root".into());
    }
    let qemu = [
        "/usr/bin/qemu-aarch64-static",
        "/usr/local/bin/qemu-aarch64-static",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or("qemu-aarch64-static is not installed (apt-get install qemu-user-static)")?;
    let register = Path::new(BINFMT).join("register");
    if !register.exists() {
        let out = Cmd::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
            .run();
        if out.status() != 0 || !register.exists() {
            return Err(format!(
                "binfmt_misc is not mounted and `{}` failed: {}",
                out.cmdline,
                out.stderr.trim()
            ));
        }
    }
    remove_stale_entries();
    let name = format!("{ENTRY_PREFIX}{}", std::process::id());
    let rule = format!(
        ":{name}:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{}:FP",
        qemu.display()
    );
    std::fs::write(&register, rule)
        .map_err(|e| format!("cannot register {name} in {}: {e}", register.display()))?;
    // SAFETY: registers a plain extern "C" function; it runs once, at process exit.
    unsafe {
        libc::atexit(unregister_at_exit);
    }
    eprintln!("aarch64 emulation: {} registered as {name}", qemu.display());
    Ok(())
}

extern "C" fn unregister_at_exit() {
    unregister(&Path::new(BINFMT).join(format!("{ENTRY_PREFIX}{}", std::process::id())));
}

fn unregister(entry: &Path) {
    // Writing -1 to an entry removes it.
    let _ = std::fs::write(entry, "-1");
}

/// Entries left by test processes that died before their exit handler ran.
fn remove_stale_entries() {
    let Ok(dir) = std::fs::read_dir(BINFMT) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(ENTRY_PREFIX) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            unregister(&entry.path());
        }
    }
}
