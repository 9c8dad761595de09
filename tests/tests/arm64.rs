//! arm64 (issue 14): the aarch64 static binaries of `scripts/build-static --arch aarch64`,
//! cross-compiled on this machine, run under qemu-user emulation (amqp_tools_tests::arch):
//! alone in empty roots (`--version`, `--help`), the tutorial in an empty root as a non-root
//! user with the arm64 worker, `amqps://` verified against a private CA, and the Dockerfile's
//! final stage as a linux/arm64 image under podman. The same checks as tests/tests/scratch.rs
//! (amqp_tools_tests::scratch), for the other architecture, plus TLS.
//!
//! Needs root (chroot, binfmt_misc) and Debian's qemu-user-static (scripts/ensure-deps --test
//! installs it). Where emulation is unavailable the tests print `SKIPPED:` and pass, except
//! under CI (env `CI`), where they fail. Podman is optional, as in scratch.rs.

use amqp_tools_tests::arch::Arch;
use amqp_tools_tests::scratch::{
    check_image_final_stage, check_runs_alone_in_empty_roots, check_static_binaries, empty_root,
    in_root, static_bins, static_bins_and_root, tutorial_in_empty_root, StaticBins,
};
use amqp_tools_tests::tls_node::tls_nodes;
use amqp_tools_tests::{workspace_root, Broker};
use std::fs;
use std::path::Path;

const ARCH: Arch = Arch::Aarch64;
/// Where the image keeps its CA bundle, and where its SSL_CERT_FILE points.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[test]
fn aarch64_binaries_are_static_and_run_alone_under_emulation() {
    let Some(bins) = static_bins(ARCH) else {
        return;
    };
    check_static_binaries(bins);
    if let Some(bins) = static_bins_and_root(ARCH) {
        check_runs_alone_in_empty_roots(bins);
    }
}

#[test]
fn tutorial_runs_on_arm64_in_an_empty_root_as_non_root() {
    let Some(bins) = static_bins_and_root(ARCH) else {
        return;
    };
    tutorial_in_empty_root(bins);
}

/// An empty root with the binaries, /etc/hosts for localhost and `ca` as the image's bundle.
fn tls_root(bins: &StaticBins, ca: &Path) -> amqp_tools_tests::tempfile::TempDir {
    let root = empty_root();
    bins.install(&root.path().join("usr/bin"));
    let bundle = root.path().join(CA_BUNDLE.trim_start_matches('/'));
    fs::create_dir_all(bundle.parent().unwrap()).unwrap();
    fs::copy(ca, &bundle).unwrap();
    fs::write(
        root.path().join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )
    .unwrap();
    root
}

/// The arm64 OpenSSL (vendored, cross-compiled) verifies the broker's certificate: trusted
/// through SSL_CERT_FILE as in the image, or through --cacert; refused when the bundle holds
/// another CA, and then nothing is taken off the queue.
#[test]
fn amqps_on_arm64_verifies_the_broker_against_a_private_ca() {
    let Some(bins) = static_bins_and_root(ARCH) else {
        return;
    };
    let Some(nodes) = tls_nodes() else {
        return;
    };
    let node = &nodes.open;
    let broker = Broker::connect_to(&node.plain_url());
    let queue = broker.temp_queue("arm64-tls");
    let url = node.amqps_url("localhost");
    let tool = |root: &Path, name: &str| {
        in_root(root, &format!("/usr/bin/{name}"))
            .env_remove("SSL_CERT_DIR")
            .env_remove("SSL_CERT_FILE")
    };

    let trusted = tls_root(bins, &nodes.pki.ca);
    let out = tool(trusted.path(), "amqp-publish")
        .env("SSL_CERT_FILE", CA_BUNDLE)
        .args(["--url", &url, "-r", &queue, "-b", "over amqps"])
        .run();
    out.expect_status(0);
    assert_eq!(out.stderr, "");
    assert_eq!(broker.count(&queue), Some(1));

    let untrusted = tls_root(bins, &nodes.pki.other_ca);
    let out = tool(untrusted.path(), "amqp-get")
        .env("SSL_CERT_FILE", CA_BUNDLE)
        .args(["--url", &url, "-q", &queue])
        .run();
    out.expect_status(1);
    assert_eq!(out.stdout_str(), "");
    assert!(
        out.stderr.starts_with("amqp-get: ") && out.stderr.contains("unknown CA"),
        "{}",
        out.stderr
    );
    assert_eq!(broker.count(&queue), Some(1), "nothing may be taken");

    let out = tool(trusted.path(), "amqp-get")
        .args(["--url", &url, "--cacert", CA_BUNDLE, "-q", &queue])
        .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "over amqps");
    assert_eq!(out.stderr, "");
    assert_eq!(broker.count(&queue), Some(0));
}

#[test]
fn arm64_image_final_stage_under_podman() {
    let Some(bins) = static_bins(ARCH) else {
        return;
    };
    if !ARCH.runnable() {
        return;
    }
    check_image_final_stage(bins);
}

/// One Dockerfile builds both platforms by cross-compiling: its build stage runs on the build
/// machine's platform and builds for TARGETARCH, so `--platform linux/amd64,linux/arm64` runs
/// no compiler under emulation. (This machine has no engine that can pull the Rust image: the
/// steps of that stage are what the tests above run, and the final stage is built by podman.)
#[test]
fn dockerfile_cross_compiles_for_the_target_platform() {
    let text = fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and the final stage: {froms:?}"
    );
    assert!(
        froms[0].starts_with("FROM --platform=$BUILDPLATFORM ") && froms[0].ends_with(" AS build"),
        "the build stage must run on the build platform: {}",
        froms[0]
    );
    assert_eq!(*froms[1], "FROM scratch");
    let build_stage: Vec<&&str> = instructions
        .iter()
        .skip_while(|l| !l.starts_with("FROM "))
        .take_while(|l| **l != "FROM scratch")
        .collect();
    assert!(
        build_stage.contains(&&"ARG TARGETARCH"),
        "the build stage must take TARGETARCH: {build_stage:?}"
    );
    let builds: Vec<&&str> = build_stage
        .iter()
        .filter(|l| l.contains("scripts/build-static --"))
        .copied()
        .collect();
    assert!(!builds.is_empty(), "no build-static run: {build_stage:?}");
    for line in builds {
        assert!(
            line.contains(r#"scripts/build-static --arch "$TARGETARCH" --libc musl"#),
            "every build-static run must build musl for the target platform: {line}"
        );
    }
}
