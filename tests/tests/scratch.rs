//! FROM-scratch deployment (issue 5): the static binaries of `scripts/build-static`, the tutorial
//! run in an empty root as a non-root user (what a scratch container is, without an engine), the
//! Dockerfile's final stage built and run under podman where podman can run containers, and the
//! Kubernetes manifests validated offline against the API schema.
//!
//! Needs root for chroot (the session and CI are root). When the static build or root is not
//! available the tests print `SKIPPED:` and pass, except under CI (env `CI`), where they fail.
//! Podman is optional even under CI: when it cannot run a container here, only that part is
//! skipped, with the reason.

use amqp_tools_tests::k8s::{
    kubelet_expand, QUORUM_DECLARE_ARGS, QUORUM_DECLARE_COMMAND, QUORUM_JOB_ARGS,
    QUORUM_JOB_COMMAND,
};
use amqp_tools_tests::{broker_addr, broker_url, unique, workspace_root, Broker, Cmd, Output};
use std::collections::BTreeMap;
use std::fs;
use std::net::ToSocketAddrs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const TOOLS: [&str; 5] = [
    "amqp-publish",
    "amqp-consume",
    "amqp-get",
    "amqp-declare-queue",
    "amqp-delete-queue",
];
/// The one binary behind the five tool names (symbolic links to it).
const MULTI: &str = "amqp-tools";
const WORKER: &str = "worker";
const FRUITS: [&str; 8] = [
    "apple", "banana", "cherry", "date", "fig", "grape", "lemon", "melon",
];
/// The image's USER, and the uid:gid the empty-root runs use.
const NON_ROOT: &str = "65532:65532";
/// The container's command and args in k8s/job.yaml, before the kubelet expands `$(VAR)`.
const JOB_COMMAND: [&str; 1] = ["/usr/bin/amqp-consume"];
const JOB_ARGS: [&str; 6] = [
    "--url=$(BROKER_URL)",
    "-q",
    "$(QUEUE)",
    "-c",
    "1",
    "/usr/bin/worker",
];
/// The same for k8s/job-until-empty.yaml.
const UNTIL_EMPTY_ARGS: [&str; 8] = [
    "--url=$(BROKER_URL)",
    "-q",
    "$(QUEUE)",
    "-c",
    "1",
    "--exit-when-empty",
    "--fail-fast",
    "/usr/bin/worker",
];
/// The worker's exit status for a bad setting, which job-until-empty.yaml's podFailurePolicy
/// turns into FailJob.
const WORKER_CONFIG_ERROR: i32 = 2;
/// A cold release build with LTO and a vendored OpenSSL takes minutes on CI's 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
const PODMAN_TIMEOUT: Duration = Duration::from_secs(180);

/// Skips the test locally with a `SKIPPED:` line; fails it under CI, where everything it needs
/// is installed.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so this must not be skipped: {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

struct StaticBins {
    dir: PathBuf,
    route: String,
}

impl StaticBins {
    fn path(&self, bin: &str) -> PathBuf {
        self.dir.join(bin)
    }

    /// The binaries build-static makes (the tool names are links to the first).
    fn files(&self) -> impl Iterator<Item = (&'static str, PathBuf)> + '_ {
        [MULTI, WORKER].into_iter().map(|b| (b, self.path(b)))
    }

    /// Lays the binaries out in `dir` as the image does: amqp-tools and the worker, and the
    /// five tool names as relative symbolic links to amqp-tools.
    fn install(&self, dir: &Path) {
        for (name, path) in self.files() {
            copy_executable(&path, &dir.join(name));
        }
        for tool in TOOLS {
            std::os::unix::fs::symlink(MULTI, dir.join(tool)).unwrap();
        }
    }
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Runs scripts/build-static once per test process; `None` (after `skip`) when it fails.
fn static_bins() -> Option<&'static StaticBins> {
    static BUILT: OnceLock<Result<StaticBins, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = target_dir().join("scratch-test").join("bin");
        let out = Cmd::new(workspace_root().join("scripts/build-static"))
            .arg("--out")
            .arg(&dir)
            .timeout(BUILD_TIMEOUT)
            .run();
        if out.status() != 0 {
            let tail: Vec<&str> = out.stderr.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "scripts/build-static failed (status {}), no static binaries:\n{}\n{}",
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
        eprintln!("static build: {route}");
        Ok(StaticBins { dir, route })
    });
    match built {
        Ok(bins) => Some(bins),
        Err(msg) => {
            skip(msg);
            None
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

fn static_bins_and_root() -> Option<&'static StaticBins> {
    let bins = static_bins()?;
    if !is_root() {
        skip("chroot needs root; run the tests as root");
        return None;
    }
    Some(bins)
}

fn copy_executable(from: &Path, to: &Path) {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory usable as `/` by a non-root user: tempdirs are 0700, which would stop the user
/// from resolving any path in it.
fn empty_root() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("scratch-root-")
        .tempdir()
        .unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
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
fn in_root(root: &Path, program: &str) -> Cmd {
    Cmd::new("chroot")
        .arg(format!("--userspec={NON_ROOT}"))
        .arg(root)
        .arg(program)
        .env_remove("AMQP_URL")
        .env("WORKER_SLEEP", "0")
        .timeout(RUN_TIMEOUT)
}

/// `broker_url()` with its host replaced by `host` (the credentials and port are kept), and
/// the IP address that `host` must resolve to in the empty root's /etc/hosts.
fn url_via_host_name(host: &str, vhost_path: &str) -> (String, String) {
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
fn tutorial_root(bins: &StaticBins, broker_ip: &str) -> tempfile::TempDir {
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

fn processed_item(out: &Output) -> String {
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

#[test]
fn static_binaries_are_static_and_run_with_no_other_file() {
    let Some(bins) = static_bins() else { return };
    eprintln!("route: {}", bins.route);
    for tool in TOOLS {
        let link = fs::read_link(bins.path(tool))
            .unwrap_or_else(|e| panic!("{tool} is not a symbolic link: {e}"));
        assert_eq!(link, Path::new(MULTI), "{tool} links to {}", link.display());
    }
    for (name, path) in bins.files() {
        let size = fs::metadata(&path).unwrap().len();
        eprintln!("{name}: {size} bytes");

        let file = Cmd::new("file").arg("-b").arg(&path).run();
        file.expect_status(0);
        let desc = file.stdout_str();
        assert!(
            desc.contains("statically linked") || desc.contains("static-pie linked"),
            "file says {name} is not static: {desc}"
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

    if !is_root() {
        skip("running the binaries in an empty root needs chroot, so root");
        return;
    }
    {
        // A root holding nothing but the binary: no libc, no /dev, no /proc, no /etc.
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

#[test]
fn tutorial_runs_in_an_empty_root_as_non_root() {
    let Some(bins) = static_bins_and_root() else {
        return;
    };
    let (url, broker_ip) = url_via_host_name("rabbitmq-service", "");
    let root = tutorial_root(bins, &broker_ip);
    let broker = Broker::connect();
    let queue = unique("scratch-job1");
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

/// job-until-empty.yaml's pattern in the empty root, with the URL from AMQP_URL (as in
/// keda-scaledjob.yaml, whose Secret holds a `/%2f` vhost) instead of `--url`.
#[test]
fn until_empty_job_pattern_in_an_empty_root() {
    let Some(bins) = static_bins_and_root() else {
        return;
    };
    let (url, broker_ip) = url_via_host_name("rabbitmq-service", "/%2f");
    let root = tutorial_root(bins, &broker_ip);
    let broker = Broker::connect();
    let queue = unique("scratch-until-empty");
    broker.declare(&queue);
    for item in ["kiwi", "pear"] {
        in_root(root.path(), "/usr/bin/amqp-publish")
            .args(["-r", &queue, "-b", item])
            .env("AMQP_URL", &url)
            .run()
            .expect_status(0);
    }
    assert_eq!(broker.count(&queue), Some(2));

    let env = [("BROKER_URL", url.as_str()), ("QUEUE", queue.as_str())];
    let job_args: Vec<String> = UNTIL_EMPTY_ARGS
        .iter()
        .map(|a| kubelet_expand(a, &env))
        .collect();
    // KEDA's variant: no --url, AMQP_URL instead.
    let keda_args: Vec<String> = job_args
        .iter()
        .filter(|a| !a.starts_with("--url="))
        .cloned()
        .collect();
    let pod = |args: &[String], extra_env: &[(&str, &str)]| {
        let mut cmd = in_root(root.path(), JOB_COMMAND[0])
            .args(args)
            .env("AMQP_URL", &url);
        for (k, v) in extra_env {
            cmd = cmd.env(k, v);
        }
        cmd.run()
    };

    // Pod 1: the first item succeeds.
    let out = pod(&job_args, &[("WORKER_FAIL_ON", "pear")]);
    out.expect_status(0);
    assert_eq!(processed_item(&out), "kiwi");
    // Pod 2: the failing item fails the pod (--fail-fast) and goes back to the queue.
    let out = pod(
        &keda_args,
        &[("WORKER_FAIL_ON", "pear"), ("WORKER_EXIT_CODE", "5")],
    );
    out.expect_status(5);
    assert_eq!(processed_item(&out), "pear");
    assert_eq!(
        broker.count(&queue),
        Some(1),
        "the failed item must be back"
    );
    // Pod 3: a misconfigured worker exits 2, the podFailurePolicy's FailJob code.
    let out = pod(&keda_args, &[("WORKER_SLEEP", "soon")]);
    out.expect_status(WORKER_CONFIG_ERROR);
    assert_eq!(
        broker.count(&queue),
        Some(1),
        "the item must survive a bad worker"
    );
    // Pod 4: the retry succeeds.
    let out = pod(&job_args, &[]);
    out.expect_status(0);
    assert_eq!(processed_item(&out), "pear");
    // Pods 5 and 6: completions beyond the items finish at once, without running the worker.
    for args in [&job_args, &keda_args] {
        let out = pod(args, &[]);
        out.expect_status(0);
        assert_eq!(out.stdout_str(), "", "no item, so the worker must not run");
    }
    assert_eq!(broker.count(&queue), Some(0));
}

/// The Dockerfile's final stage (everything after its last FROM).
fn dockerfile_final_stage() -> Vec<String> {
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

#[test]
fn dockerfile_final_stage_is_scratch_non_root_exec_form() {
    let stage = dockerfile_final_stage();
    assert_eq!(stage[0].trim(), "FROM scratch");
    let instr = |name: &str| -> Vec<&String> {
        stage
            .iter()
            .filter(|l| {
                l.trim_start()
                    .to_ascii_uppercase()
                    .starts_with(&format!("{name} "))
            })
            .collect()
    };
    let user = instr("USER");
    assert_eq!(user.len(), 1, "one USER: {stage:?}");
    assert_eq!(
        user[0].trim(),
        format!("USER {NON_ROOT}"),
        "numeric non-root USER"
    );
    for name in ["ENTRYPOINT", "CMD"] {
        let lines = instr(name);
        assert_eq!(lines.len(), 1, "one {name}: {stage:?}");
        let value = lines[0].trim()[name.len()..].trim();
        assert!(
            value.starts_with('[') && value.ends_with(']'),
            "{name} must be exec form (no shell in scratch): {value}"
        );
    }
    assert_eq!(
        instr("ENTRYPOINT")[0].trim(),
        r#"ENTRYPOINT ["/usr/bin/amqp-consume"]"#
    );
    assert!(
        stage
            .iter()
            .any(|l| l.contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")),
        "SSL_CERT_FILE must point at the bundled CA file: {stage:?}"
    );
    assert!(
        instr("RUN").is_empty(),
        "a scratch stage cannot RUN anything"
    );
    let copies = instr("COPY");
    assert_eq!(copies, vec![&"COPY --from=build /rootfs/ /".to_string()]);
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

    fn build(&self, context: &Path, containerfile: &str, tag: &str) -> Output {
        fs::write(context.join("Containerfile"), containerfile).unwrap();
        self.cmd()
            .args(["build", "--network=none", "-t", tag, "-f"])
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
fn podman_probe(podman: &mut Podman, worker: &Path) -> Result<(), String> {
    if !on_path("podman") {
        return Err("podman is not installed (apt-get install -y podman runc)".into());
    }
    let ctx = tempfile::tempdir().unwrap();
    copy_executable(worker, &ctx.path().join("worker"));
    let tag = format!("localhost/{}:probe", unique("scratch-probe").to_lowercase());
    let out = podman.build(
        ctx.path(),
        "FROM scratch\nCOPY worker /worker\nENTRYPOINT [\"/worker\"]\n",
        &tag,
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

#[test]
fn image_final_stage_runs_the_worker_under_podman() {
    let Some(bins) = static_bins() else { return };
    let mut podman = Podman::new();
    if let Err(why) = podman_probe(&mut podman, &bins.path(WORKER)) {
        // Optional even under CI: a container engine is not something the project needs.
        eprintln!("SKIPPED (podman part only): {why}");
        return;
    }
    eprintln!(
        "podman: builds and runs scratch containers here (OCI runtime: {})",
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
        unique("amqp-tools-scratch").to_lowercase()
    );
    let out = podman.build(ctx.path(), &local_containerfile(), &tag);
    out.expect_status(0);

    let inspect = podman
        .cmd()
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Env}}",
            &tag,
        ])
        .run();
    inspect.expect_status(0);
    let text = inspect.stdout_str();
    let fields: Vec<&str> = text.trim().split('|').collect();
    assert_eq!(fields[0], NON_ROOT, "image config: {text}");
    assert_eq!(
        fields[1], r#"["/usr/bin/amqp-consume"]"#,
        "image config: {text}"
    );
    assert_eq!(fields[2], r#"["--help"]"#, "image config: {text}");
    assert!(
        fields[3].contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "image config: {text}"
    );

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

#[test]
fn manifests_validate_against_the_kubernetes_schema() {
    let k8s = workspace_root().join("k8s");
    let mut files: Vec<PathBuf> = fs::read_dir(&k8s)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "job-quorum.yaml",
            "job-until-empty.yaml",
            "job.yaml",
            "keda-scaledjob.yaml",
            "rabbitmq-cluster.yaml",
            "rabbitmq-service.yaml",
            "rabbitmq-statefulset.yaml"
        ]
    );

    // The oldest version with everything used (podFailurePolicy GA), and the newest known.
    let out = Cmd::new("python3")
        .arg(workspace_root().join("tests/scripts/k8s-validate.py"))
        .arg("1.31.0,latest")
        .args(&files)
        .timeout(Duration::from_secs(120))
        .run();
    if out.status() == 2 || (out.status() != 0 && out.stdout.is_empty()) {
        skip(&format!(
            "cannot validate manifests (pip install kubernetes-validate): {}",
            out.stderr.trim()
        ));
        return;
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "k8s-validate.py printed no JSON ({e}):\n{}",
            out.stdout_str()
        )
    });
    let list = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    for line in list("validated") {
        eprintln!("valid: {line}");
    }
    for line in list("skipped") {
        eprintln!("NOTE: not validated: {line}");
    }
    assert_eq!(list("errors"), Vec::<String>::new(), "schema errors");
    out.expect_status(0);
    // Each plain manifest, and the Job inside the ScaledJob, checked against both versions.
    assert_eq!(list("validated").len(), 2 * 12, "{:?}", list("validated"));

    let doc = |file: &str, kind: &str| -> serde_json::Value {
        let path = k8s.join(file).display().to_string();
        report["docs"][&path]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {file}"))
            .clone()
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };

    // The tutorial's Job, with our image's command: the args the scratch tests run.
    let job = doc("job.yaml", "Job");
    assert_eq!(job["metadata"]["name"], "job-wq-1");
    assert_eq!(job["spec"]["completions"], 8);
    assert_eq!(job["spec"]["parallelism"], 2);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&c["command"]), JOB_COMMAND);
    assert_eq!(strings(&c["args"]), JOB_ARGS);
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["BROKER_URL", "QUEUE"]);

    let job = doc("job-until-empty.yaml", "Job");
    let spec = &job["spec"];
    let c = &spec["template"]["spec"]["containers"][0];
    assert_eq!(strings(&c["args"]), UNTIL_EMPTY_ARGS);
    assert!(spec["completions"].as_u64().unwrap() > FRUITS.len() as u64);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    assert!(spec["backoffLimit"].as_u64().is_some());
    let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
    assert!(rules
        .iter()
        .any(|r| r["action"] == "Ignore" && r["onPodConditions"][0]["type"] == "DisruptionTarget"));
    assert!(rules.iter().any(|r| r["action"] == "FailJob"
        && r["onExitCodes"]["values"] == serde_json::json!([WORKER_CONFIG_ERROR])));

    let sts = doc("rabbitmq-statefulset.yaml", "StatefulSet");
    assert!(
        sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_object(),
        "the StatefulSet needs a readiness probe"
    );

    cluster_manifests_fit_together(&doc, &strings);

    let scaled = doc("keda-scaledjob.yaml", "ScaledJob");
    let c = &scaled["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0];
    let args = strings(&c["args"]);
    let until_empty_without_url: Vec<String> = UNTIL_EMPTY_ARGS
        .iter()
        .filter(|a| !a.starts_with("--url="))
        .map(|a| a.replace("$(QUEUE)", "job1"))
        .collect();
    assert_eq!(args, until_empty_without_url);
    assert_eq!(c["env"][0]["name"], "AMQP_URL");
    assert_eq!(scaled["spec"]["triggers"][0]["type"], "rabbitmq");
    let secret = doc("keda-scaledjob.yaml", "Secret");
    assert!(
        secret["stringData"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/%2f"),
        "the shared URL must name the vhost / explicitly for KEDA"
    );
}

/// rabbitmq-cluster.yaml and job-quorum.yaml: the names that must agree across documents (pod
/// DNS names, node names, selectors) do, and the Job runs what the cluster tests run.
fn cluster_manifests_fit_together(
    doc: &dyn Fn(&str, &str) -> serde_json::Value,
    strings: &dyn Fn(&serde_json::Value) -> Vec<String>,
) {
    let sts = doc("rabbitmq-cluster.yaml", "StatefulSet");
    let svc = doc("rabbitmq-cluster.yaml", "Service");
    let pdb = doc("rabbitmq-cluster.yaml", "PodDisruptionBudget");
    let config = doc("rabbitmq-cluster.yaml", "ConfigMap");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas, 3);
    let (name, service) = (
        sts["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["name"].as_str().unwrap(),
    );
    assert_eq!(sts["spec"]["serviceName"], service);
    assert_eq!(
        svc["spec"]["clusterIP"], "None",
        "the Service must be headless"
    );
    assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&sts["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&svc["spec"]["selector"], labels);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(
        pdb["spec"]["maxUnavailable"], 1,
        "a quorum of 3 survives one loss"
    );
    let pods: Vec<String> = (0..replicas)
        .map(|i| format!("{name}-{i}.{service}"))
        .collect();
    // The classic-config peer list names exactly the StatefulSet's pods, as their nodes call
    // themselves.
    let conf = config["data"]["20-cluster.conf"].as_str().unwrap();
    let peers: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("cluster_formation.classic_config.nodes."))
        .map(|l| l.split_once(" = ").unwrap().1)
        .collect();
    let expected: Vec<String> = pods.iter().map(|p| format!("rabbit@{p}")).collect();
    assert_eq!(peers, expected);
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let env_value = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        env_value("RABBITMQ_NODENAME").unwrap(),
        format!("rabbit@$(POD_NAME).{service}")
    );
    assert!(c["readinessProbe"].is_object());
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["mountPath"] == "/etc/rabbitmq/conf.d/20-cluster.conf"));

    // The Job: every node's address in AMQP_URL, and the commands the cluster tests run.
    let job = doc("job-quorum.yaml", "Job");
    let spec = &job["spec"]["template"]["spec"];
    let init = &spec["initContainers"][0];
    let consumer = &spec["containers"][0];
    assert_eq!(strings(&init["command"]), [QUORUM_DECLARE_COMMAND]);
    assert_eq!(strings(&init["args"]), QUORUM_DECLARE_ARGS);
    assert_eq!(strings(&consumer["command"]), [QUORUM_JOB_COMMAND]);
    assert_eq!(strings(&consumer["args"]), QUORUM_JOB_ARGS);
    for container in [init, consumer] {
        let url = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "AMQP_URL")
            .and_then(|e| e["value"].as_str())
            .unwrap();
        let urls: Vec<String> = url.split_whitespace().map(str::to_string).collect();
        let expected: Vec<String> = pods
            .iter()
            .map(|p| format!("amqp://guest:guest@{p}:5672"))
            .collect();
        assert_eq!(urls, expected);
    }
    assert_eq!(spec["restartPolicy"], "Never");
}
