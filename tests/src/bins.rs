use crate::cmd::Cmd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The five tools, as Debian's amqp-tools names them.
pub const TOOLS: [&str; 5] = [
    "amqp-publish",
    "amqp-consume",
    "amqp-get",
    "amqp-declare-queue",
    "amqp-delete-queue",
];

/// Generous: a cold workspace build on the 2-core CI machine takes minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Root of the Cargo workspace (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        // Relative values are taken from the workspace root, where CI and developers run cargo.
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Directory holding our debug binaries (put it first on PATH); builds them on first use.
pub fn bin_dir() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(build_workspace_bins)
        .clone()
        .unwrap_or_else(|msg| panic!("{msg}"))
}

// `cargo test -p amqp-tools-tests` does not build the other packages' binaries, so we do,
// once per test process.
fn build_workspace_bins() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace_root().join("Cargo.toml");
    let out = Cmd::new(PathBuf::from(cargo))
        .args(["build", "--bins", "--workspace", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir())
        .timeout(BUILD_TIMEOUT)
        .run();
    if out.status() != 0 {
        return Err(format!(
            "`{}` failed (status {}); our binaries cannot be tested:\n{}",
            out.cmdline,
            out.status(),
            out.stderr
        ));
    }
    Ok(target_dir().join("debug"))
}

/// Path of our freshly built binary `tool`; panics if the build failed or has no such binary.
pub fn ours(tool: &str) -> PathBuf {
    let path = bin_dir().join(tool);
    assert!(
        path.is_file(),
        "`cargo build --bins --workspace` succeeded but {} does not exist; is there a [[bin]] named {tool}?",
        path.display()
    );
    path
}

/// Debian's C binary `tool` (from `AMQP_REFERENCE_DIR`, default /usr/bin), if installed.
pub fn reference(tool: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("AMQP_REFERENCE_DIR").unwrap_or_else(|| "/usr/bin".into());
    let path = PathBuf::from(dir).join(tool);
    path.is_file().then_some(path)
}

/// The reference binary, or `None` after printing SKIPPED; panics under CI, which always has it.
pub fn require_reference(tool: &str) -> Option<PathBuf> {
    let found = reference(tool);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the Debian reference {tool} is missing (apt-get install amqp-tools)"
        );
        eprintln!("SKIPPED: Debian amqp-tools not installed ({tool})");
    }
    found
}

/// One implementation under differential test: `name` is "ours" or "reference".
#[derive(Clone, Debug)]
pub struct Side {
    /// "ours" or "reference", for assertion messages.
    pub name: &'static str,
    /// The binary to run.
    pub bin: PathBuf,
}

impl Side {
    /// A `Cmd` for this side's binary.
    pub fn cmd(&self) -> Cmd {
        Cmd::new(&self.bin)
    }
}

/// Ours, then the reference when installed (missing reference panics under CI, like `require_reference`).
pub fn sides(tool: &str) -> Vec<Side> {
    let mut v = vec![Side {
        name: "ours",
        bin: ours(tool),
    }];
    match reference(tool) {
        Some(bin) => v.push(Side {
            name: "reference",
            bin,
        }),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but the Debian reference {tool} is missing (apt-get install amqp-tools)"
            );
            eprintln!("NOTE: Debian {tool} not installed; testing ours only");
        }
    }
    v
}
