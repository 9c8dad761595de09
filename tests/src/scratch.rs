//! FROM-scratch deployment, for any architecture of `scripts/build-static`: its static binaries
//! built once per test process and architecture, the empty roots they run in as a non-root
//! user (what a scratch container is, without an engine), the tutorial run there, and the
//! Dockerfile's final stage built and run under podman. tests/tests/scratch.rs runs these for
//! this machine's architecture, tests/tests/arm64.rs for aarch64 under emulation.
//!
//! Needs root for chroot (the session and CI are root). When the static build or root is not
//! available the tests print `SKIPPED:` and pass, except under CI (env `CI`), where they fail.

use crate::arch::Arch;
use crate::bins::target_dir;
use crate::{broker_addr, broker_url, skip, unique, workspace_root, Broker, Cmd, Output, TOOLS};
use std::collections::BTreeMap;
use std::fs;
use std::net::ToSocketAddrs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The one binary behind the five tool names (symbolic links to it).
pub const MULTI: &str = "amqp-tools";
pub const WORKER: &str = "worker";
pub const FRUITS: [&str; 8] = [
    "apple", "banana", "cherry", "date", "fig", "grape", "lemon", "melon",
];
/// The image's USER, and the uid:gid the empty-root runs use.
pub const NON_ROOT: &str = "65532:65532";
/// The container's command and args in k8s/job.yaml, before the kubelet expands `$(VAR)`.
pub const JOB_COMMAND: [&str; 1] = ["/usr/bin/amqp-consume"];
pub const JOB_ARGS: [&str; 6] = [
    "--url=$(BROKER_URL)",
    "-q",
    "$(QUEUE)",
    "-c",
    "1",
    "/usr/bin/worker",
];
/// A cold release build with LTO and a vendored OpenSSL takes minutes on CI's 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// Generous for emulated runs too: qemu-user starts an 8 MB binary in well under a second.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
const PODMAN_TIMEOUT: Duration = Duration::from_secs(180);

/// The output directory of one `scripts/build-static` run.
pub struct StaticBins {
    pub dir: PathBuf,
    /// The target triple build-static reported (`build-static: route <triple> (<how>)`).
    pub route: String,
    pub arch: Arch,
}

impl StaticBins {
    pub fn path(&self, bin: &str) -> PathBuf {
        self.dir.join(bin)
    }

    /// The binaries build-static makes (the tool names are links to the first).
    pub fn files(&self) -> impl Iterator<Item = (&'static str, PathBuf)> + '_ {
        [MULTI, WORKER].into_iter().map(|b| (b, self.path(b)))
    }

    /// Lays the binaries out in `dir` as the image does: amqp-tools and the worker, and the
    /// five tool names as relative symbolic links to amqp-tools.
    pub fn install(&self, dir: &Path) {
        for (name, path) in self.files() {
            copy_executable(&path, &dir.join(name));
        }
        for tool in TOOLS {
            std::os::unix::fs::symlink(MULTI, dir.join(tool)).unwrap();
        }
    }
}

/// Runs `scripts/build-static --arch ARCH` once per test process and architecture; `None`
/// (after `skip`) when it fails. This machine's architecture goes to target/scratch-test/bin
/// (which bench/run and the scratch tests share), another to target/scratch-test/ARCH/bin.
pub fn static_bins(arch: Arch) -> Option<&'static StaticBins> {
    static BUILT: [OnceLock<Result<StaticBins, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let built = BUILT[arch as usize].get_or_init(|| build_static(arch));
    match built {
        Ok(bins) => Some(bins),
        Err(msg) => {
            skip(msg);
            None
        }
    }
}

fn build_static(arch: Arch) -> Result<StaticBins, String> {
    let dir = if arch.is_host() {
        target_dir().join("scratch-test").join("bin")
    } else {
        target_dir()
            .join("scratch-test")
            .join(arch.name())
            .join("bin")
    };
    let out = Cmd::new(workspace_root().join("scripts/build-static"))
        .args(["--arch", arch.name()])
        .arg("--out")
        .arg(&dir)
        .timeout(BUILD_TIMEOUT)
        .run();
    if out.status() != 0 {
        let tail: Vec<&str> = out.stderr.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "scripts/build-static --arch {} failed (status {}), no static binaries:\n{}\n{}",
            arch.name(),
            out.status(),
            out.stdout_str(),
            tail.join("\n")
        ));
    }
    let stdout = out.stdout_str();
    let route = stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("build-static: route "))
        .unwrap_or_else(|| panic!("build-static printed no route line:\n{stdout}"))
        .to_string();
    assert!(
        route.starts_with(&format!("{}-unknown-linux-", arch.name())),
        "build-static --arch {} built for {route}",
        arch.name()
    );
    eprintln!("static build: {route}");
    Ok(StaticBins { dir, route, arch })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The static binaries, when they can be run in an empty root here: root (for chroot), and
/// emulation for another architecture.
pub fn static_bins_and_root(arch: Arch) -> Option<&'static StaticBins> {
    let bins = static_bins(arch)?;
    if !is_root() {
        skip("chroot needs root; run the tests as root");
        return None;
    }
    arch.runnable().then_some(bins)
}

pub fn copy_executable(from: &Path, to: &Path) {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory usable as `/` by a non-root user: tempdirs are 0700, which would stop the user
/// from resolving any path in it.
pub fn empty_root() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("scratch-root-")
        .tempdir()
        .unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `program` (a path inside `root`) run with `root` as `/`, as uid:gid 65532, with no
/// AMQP_URL from the test's environment.
pub fn in_root(root: &Path, program: &str) -> Cmd {
    Cmd::new("chroot")
        .arg(format!("--userspec={NON_ROOT}"))
        .arg(root)
        .arg(program)
        .env_remove("AMQP_URL")
        .env("WORKER_SLEEP", "0")
        .timeout(RUN_TIMEOUT)
}

pub use crate::k8s::kubelet_expand;

/// `broker_url()` with its host replaced by `host` (the credentials and port are kept), and
/// the IP address that `host` must resolve to in the empty root's /etc/hosts.
pub fn url_via_host_name(host: &str, vhost_path: &str) -> (String, String) {
    let url = broker_url();
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url.as_str()));
    let userinfo = rest
        .split(['/', '?'])
        .next()
        .and_then(|authority| authority.rsplit_once('@'))
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    let addr = broker_addr();
    let (_, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "5672"));
    let ip = addr
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve the test broker {addr}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("the test broker {addr} resolves to nothing"))
        .ip()
        .to_string();
    (
        format!("{scheme}://{userinfo}{host}:{port}{vhost_path}"),
        ip,
    )
}

/// The empty root of the tutorial: the static binaries in /usr/bin (amqp-tools with the five
/// tool names linked to it, and the worker), /etc/hosts naming the broker `rabbitmq-service`
/// (the tutorial's Service name) and `localhost`, /etc/resolv.conf.
pub fn tutorial_root(bins: &StaticBins, broker_ip: &str) -> tempfile::TempDir {
    let root = empty_root();
    bins.install(&root.path().join("usr/bin"));
    fs::create_dir_all(root.path().join("etc")).unwrap();
    fs::write(
        root.path().join("etc/hosts"),
        format!("127.0.0.1 localhost\n::1 localhost\n{broker_ip} rabbitmq-service\n"),
    )
    .unwrap();
    // No DNS server answers here; /etc/hosts must be what resolves the names.
    fs::write(
        root.path().join("etc/resolv.conf"),
        "nameserver 127.0.0.1\n",
    )
    .unwrap();
    let mut expected: Vec<String> = TOOLS
        .iter()
        .chain([&MULTI, &WORKER])
        .map(|b| format!("usr/bin/{b}"))
        .chain(["etc/hosts".to_string(), "etc/resolv.conf".to_string()])
        .collect();
    expected.sort();
    assert_eq!(
        files_under(root.path()),
        expected,
        "the empty root holds more than it should"
    );
    root
}

pub fn processed_item(out: &Output) -> String {
    let text = out.stdout_str();
    text.strip_prefix("Processing ")
        .and_then(|t| t.strip_suffix('\n'))
        .unwrap_or_else(|| {
            panic!(
                "`{}` printed {text:?}, not one Processing line",
                out.cmdline
            )
        })
        .to_string()
}

/// The five names link to amqp-tools, and `file` and `ldd` find both binaries static, stripped
/// and of the build's architecture.
pub fn check_static_binaries(bins: &StaticBins) {
    eprintln!("route: {}", bins.route);
    for tool in TOOLS {
        let link = fs::read_link(bins.path(tool))
            .unwrap_or_else(|e| panic!("{tool} is not a symbolic link: {e}"));
        assert_eq!(link, Path::new(MULTI), "{tool} links to {}", link.display());
    }
    for (name, path) in bins.files() {
        let size = fs::metadata(&path).unwrap().len();
        eprintln!("{name} ({}): {size} bytes", bins.arch.name());

        let file = Cmd::new("file").arg("-b").arg(&path).run();
        file.expect_status(0);
        let desc = file.stdout_str();
        assert!(
            desc.contains("statically linked") || desc.contains("static-pie linked"),
            "file says {name} is not static: {desc}"
        );
        assert!(
            desc.contains(bins.arch.file_says()),
            "file says {name} is not an {} binary: {desc}",
            bins.arch.name()
        );
        assert!(
            !desc.contains("with debug_info"),
            "{name} is not stripped: {desc}"
        );

        // glibc's ldd says "not a dynamic executable" (status 1) or "statically linked".
        let ldd = Cmd::new("ldd").arg(&path).run();
        let said = format!("{}{}", ldd.stdout_str(), ldd.stderr);
        assert!(
            said.contains("not a dynamic executable") || said.contains("statically linked"),
            "ldd finds dynamic dependencies in {name}:\n{said}"
        );
        assert!(
            !said.contains("=>"),
            "ldd lists libraries for {name}:\n{said}"
        );
    }
}

/// The worker alone in an empty root, then each tool name with amqp-tools alone in one:
/// `--version` and `--help` work with no other file (no libc, no /dev, no /proc, no /etc).
/// Needs root and, for another architecture, emulation.
pub fn check_runs_alone_in_empty_roots(bins: &StaticBins) {
    {
        let root = empty_root();
        copy_executable(&bins.path(WORKER), &root.path().join(WORKER));
        assert_eq!(files_under(root.path()), vec![WORKER.to_string()]);
        let out = in_root(root.path(), &format!("/{WORKER}"))
            .stdin("pear\nsecond line\n")
            .run();
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "Processing pear\n");
        assert_eq!(out.stderr, "");
    }
    for name in TOOLS {
        // Nothing but the one binary and the tool's name for it.
        let root = empty_root();
        copy_executable(&bins.path(MULTI), &root.path().join(MULTI));
        std::os::unix::fs::symlink(MULTI, root.path().join(name)).unwrap();
        let mut expected = vec![MULTI.to_string(), name.to_string()];
        expected.sort();
        assert_eq!(files_under(root.path()), expected);
        let exe = format!("/{name}");
        let out = in_root(root.path(), &exe).arg("--version").run();
        out.expect_status(0);
        assert!(
            out.stdout_str().starts_with(&format!("{name} ")),
            "{name} --version printed {:?}",
            out.stdout_str()
        );
        assert_eq!(out.stderr, "", "{name} --version wrote to stderr");
        let out = in_root(root.path(), &exe).arg("--help").run();
        out.expect_status(0);
        assert!(
            out.stdout_str().contains("Usage") && out.stdout_str().contains("--url"),
            "{name} --help printed {:?}",
            out.stdout_str()
        );
    }
}

/// The tutorial in an empty root as a non-root user, one process per command: declare the
/// queue, fill it with the 8-item loop, then the Job's 8 pods, 2 at a time, each running
/// job.yaml's command with the worker; then amqp-get finds it empty and amqp-delete-queue
/// removes it.
pub fn tutorial_in_empty_root(bins: &StaticBins) {
    let (url, broker_ip) = url_via_host_name("rabbitmq-service", "");
    let root = tutorial_root(bins, &broker_ip);
    let broker = Broker::connect();
    let queue = unique(&format!("scratch-job1-{}", bins.arch.name()));
    broker.cleanup_queue(&queue);
    let broker_url_arg = format!("--url={url}");

    // "Filling the queue with tasks", one process per command as in the tutorial's shell.
    let out = in_root(root.path(), "/usr/bin/amqp-declare-queue")
        .args([broker_url_arg.as_str(), "-q", &queue, "-d"])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), format!("{queue}\n"));
    for fruit in FRUITS {
        let out = in_root(root.path(), "/usr/bin/amqp-publish")
            .args([broker_url_arg.as_str(), "-r", &queue, "-p", "-b", fruit])
            .run();
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "");
    }
    assert_eq!(broker.count(&queue), Some(8));

    // The Job: 8 pods, 2 at a time, each running job.yaml's command with $(VAR) expanded the
    // way the kubelet does.
    let env = [("BROKER_URL", url.as_str()), ("QUEUE", queue.as_str())];
    let args: Vec<String> = JOB_ARGS.iter().map(|a| kubelet_expand(a, &env)).collect();
    let mut processed: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..FRUITS.len() / 2 {
        let pods: Vec<_> = (0..2)
            .map(|_| {
                in_root(root.path(), JOB_COMMAND[0])
                    .args(&args)
                    .env("BROKER_URL", &url)
                    .env("QUEUE", &queue)
                    .spawn()
            })
            .collect();
        for pod in pods {
            let out = pod.wait();
            out.expect_status(0);
            *processed.entry(processed_item(&out)).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = FRUITS.iter().map(|f| (f.to_string(), 1)).collect();
    assert_eq!(
        processed, expected,
        "each item must be processed exactly once"
    );
    assert_eq!(broker.count(&queue), Some(0), "the queue must be empty");

    // The two remaining tools, in the same root.
    let out = in_root(root.path(), "/usr/bin/amqp-get")
        .args([broker_url_arg.as_str(), "-q", &queue])
        .run();
    out.expect_status(2);
    assert_eq!(out.stdout_str(), "");
    let out = in_root(root.path(), "/usr/bin/amqp-delete-queue")
        .args([broker_url_arg.as_str(), "-q", &queue])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "0\n");
    assert!(!broker.exists(&queue));
}

/// The Dockerfile's final stage (everything after its last FROM).
pub fn dockerfile_final_stage() -> Vec<String> {
    let text = fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .expect("the Dockerfile has no FROM");
    lines[last_from..]
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .cloned()
        .collect()
}

/// The final stage with its `COPY --from=build /rootfs/ /` taken from a local `rootfs/`.
fn local_containerfile() -> String {
    let mut out = String::new();
    for line in dockerfile_final_stage() {
        out.push_str(&line.replace("COPY --from=build /rootfs/ /", "COPY rootfs/ /"));
        out.push('\n');
    }
    assert!(
        !out.contains("--from"),
        "stage still copies from another stage:\n{out}"
    );
    out
}

/// Podman with its own storage in `dir`: nothing touches the machine's image store, and the
/// vfs driver works where overlay mounts are not allowed.
struct Podman {
    dir: tempfile::TempDir,
    /// An OCI runtime other than podman's default: crun refuses hosts with hybrid cgroup v1/v2
    /// (as this kind of machine has), runc copes.
    runtime: Option<String>,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::Builder::new()
                .prefix("scratch-podman-")
                .tempdir()
                .unwrap(),
            runtime: None,
        }
    }

    fn cmd(&self) -> Cmd {
        let d = self.dir.path();
        Cmd::new("podman")
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args([
                "--storage-driver=vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .args(self.runtime.iter().map(|r| format!("--runtime={r}")))
            .timeout(PODMAN_TIMEOUT)
    }

    /// `podman run --rm` with limits lower than podman's defaults (1048576 open files), which a
    /// sandboxed root may not be allowed to set; lowering a limit always is.
    fn run(&self) -> Cmd {
        self.cmd().args([
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
    }

    /// Builds `containerfile` in `context` for `arch`'s platform (linux/amd64, linux/arm64).
    fn build(&self, context: &Path, containerfile: &str, tag: &str, arch: Arch) -> Output {
        fs::write(context.join("Containerfile"), containerfile).unwrap();
        self.cmd()
            .args(["build", "--network=none", "-t", tag])
            .arg(format!("--platform=linux/{}", arch.debian()))
            .arg("-f")
            .arg(context.join("Containerfile"))
            .arg(context)
            .run()
    }
}

fn on_path(program: &str) -> bool {
    Cmd::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .run()
        .status()
        == 0
}

/// Whether podman can build and run a scratch container here at all, tried with the static
/// worker alone, so that a failure of ours is not mistaken for a missing container runtime.
/// Picks the OCI runtime that works.
fn podman_probe(podman: &mut Podman, bins: &StaticBins) -> Result<(), String> {
    if !on_path("podman") {
        return Err("podman is not installed (apt-get install -y podman runc)".into());
    }
    let ctx = tempfile::tempdir().unwrap();
    copy_executable(&bins.path(WORKER), &ctx.path().join("worker"));
    let tag = format!("localhost/{}:probe", unique("scratch-probe").to_lowercase());
    let out = podman.build(
        ctx.path(),
        "FROM scratch\nCOPY worker /worker\nENTRYPOINT [\"/worker\"]\n",
        &tag,
        bins.arch,
    );
    if out.status() != 0 {
        return Err(format!(
            "podman cannot build a scratch image here: {}",
            out.stderr.trim()
        ));
    }
    let mut failures = Vec::new();
    for runtime in [None, Some("runc")] {
        if runtime == Some("runc") && !on_path("runc") {
            failures.push("runc: not installed (apt-get install -y runc)".to_string());
            continue;
        }
        podman.runtime = runtime.map(str::to_string);
        let out = podman
            .run()
            .args(["-i", "--network=host", "-e", "WORKER_SLEEP=0", &tag])
            .stdin("probe\n")
            .run();
        if out.status() == 0 && out.stdout_str() == "Processing probe\n" {
            return Ok(());
        }
        failures.push(format!(
            "{}: status {}: {}",
            runtime.unwrap_or("default runtime"),
            out.status(),
            out.stderr.trim()
        ));
    }
    Err(format!(
        "podman cannot run a container here: {}",
        failures.join("; ")
    ))
}

/// The Dockerfile's final stage built under podman for the binaries' platform, from a local
/// copy of what the build stage leaves in /rootfs: its platform, files, user, entry point,
/// command and environment; then its default command, another tool as entry point, and a pod
/// of job.yaml against the local broker. Podman is optional even under CI (a container engine
/// is not something the project needs): when it cannot run a container here, this prints why
/// and returns.
pub fn check_image_final_stage(bins: &StaticBins) {
    let mut podman = Podman::new();
    if let Err(why) = podman_probe(&mut podman, bins) {
        eprintln!("SKIPPED (podman part only): {why}");
        return;
    }
    eprintln!(
        "podman: builds and runs linux/{} scratch containers here (OCI runtime: {})",
        bins.arch.debian(),
        podman.runtime.as_deref().unwrap_or("default")
    );

    // The build context the final stage expects: the build stage's /rootfs, made locally.
    let ctx = tempfile::tempdir().unwrap();
    let rootfs = ctx.path().join("rootfs");
    bins.install(&rootfs.join("usr/bin"));
    let certs = rootfs.join("etc/ssl/certs");
    fs::create_dir_all(&certs).unwrap();
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.is_file() {
        fs::copy(bundle, certs.join("ca-certificates.crt")).unwrap();
    } else {
        // Only its presence matters here: no test connects with TLS through the image.
        eprintln!(
            "NOTE: no {} on this machine; an empty bundle is used",
            bundle.display()
        );
        fs::write(certs.join("ca-certificates.crt"), "").unwrap();
    }
    let tag = format!(
        "localhost/{}:test",
        unique(&format!("amqp-tools-scratch-{}", bins.arch.debian())).to_lowercase()
    );
    let out = podman.build(ctx.path(), &local_containerfile(), &tag, bins.arch);
    out.expect_status(0);

    let inspect = podman
        .cmd()
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}|{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Env}}",
            &tag,
        ])
        .run();
    inspect.expect_status(0);
    let text = inspect.stdout_str();
    let fields: Vec<&str> = text.trim().split('|').collect();
    assert_eq!(
        fields[0],
        format!("linux/{}", bins.arch.debian()),
        "image config: {text}"
    );
    assert_eq!(fields[1], NON_ROOT, "image config: {text}");
    assert_eq!(
        fields[2], r#"["/usr/bin/amqp-consume"]"#,
        "image config: {text}"
    );
    assert_eq!(fields[3], r#"["--help"]"#, "image config: {text}");
    assert!(
        fields[4].contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "image config: {text}"
    );
    check_image_files(&podman, &tag, bins);

    // The default command: help, exit 0.
    let out = podman.run().arg(&tag).run();
    out.expect_status(0);
    assert!(out.stdout_str().contains("Usage"), "{}", out.stdout_str());
    let out = podman
        .run()
        .args(["--entrypoint", "/usr/bin/amqp-get", &tag, "--version"])
        .run();
    out.expect_status(0);
    assert!(
        out.stdout_str().starts_with("amqp-get "),
        "{}",
        out.stdout_str()
    );

    // A pod of job.yaml against the local broker, by host name through podman's /etc/hosts.
    let (url, _) = url_via_host_name("localhost", "");
    let broker = Broker::connect();
    let queue = broker.temp_queue("scratch-podman");
    broker.publish(&queue, b"quince");
    let env = [("BROKER_URL", url.as_str()), ("QUEUE", queue.as_str())];
    let args: Vec<String> = JOB_ARGS.iter().map(|a| kubelet_expand(a, &env)).collect();
    let out = podman
        .run()
        .args(["--network=host", "-e", "WORKER_SLEEP=0", &tag])
        .args(&args)
        .run();
    out.expect_status(0);
    assert_eq!(processed_item(&out), "quince");
    assert_eq!(broker.count(&queue), Some(0));
}

/// The image's filesystem holds exactly the binaries (the tool names as links to amqp-tools,
/// byte for byte the build's files) and the CA bundle.
fn check_image_files(podman: &Podman, tag: &str, bins: &StaticBins) {
    let mount = podman.cmd().args(["image", "mount", tag]).run();
    mount.expect_status(0);
    let fs_root = PathBuf::from(mount.stdout_str().trim());
    let mut expected: Vec<String> = TOOLS
        .iter()
        .chain([&MULTI, &WORKER])
        .map(|b| format!("usr/bin/{b}"))
        .chain(["etc/ssl/certs/ca-certificates.crt".to_string()])
        .collect();
    expected.sort();
    assert_eq!(files_under(&fs_root), expected, "files of image {tag}");
    for tool in TOOLS {
        let link = fs::read_link(fs_root.join("usr/bin").join(tool))
            .unwrap_or_else(|e| panic!("/usr/bin/{tool} in the image is not a link: {e}"));
        assert_eq!(link, Path::new(MULTI), "/usr/bin/{tool} in the image");
    }
    for (name, path) in bins.files() {
        assert!(
            fs::read(fs_root.join("usr/bin").join(name)).unwrap() == fs::read(&path).unwrap(),
            "/usr/bin/{name} in the image differs from {}",
            path.display()
        );
    }
    podman
        .cmd()
        .args(["image", "unmount", tag])
        .run()
        .expect_status(0);
}
