//! FROM-scratch deployment (issue 5): the static binaries of `scripts/build-static`, the tutorial
//! run in an empty root as a non-root user (what a scratch container is, without an engine), the
//! Dockerfile's final stage built and run under podman where podman can run containers, and the
//! Kubernetes manifests validated offline against the API schema. The support code is
//! amqp_tools_tests::scratch, shared with tests/tests/arm64.rs, which runs the same for aarch64.
//!
//! Needs root for chroot (the session and CI are root). When the static build or root is not
//! available the tests print `SKIPPED:` and pass, except under CI (env `CI`), where they fail.
//! Podman is optional even under CI: when it cannot run a container here, only that part is
//! skipped, with the reason.

use amqp_tools_tests::arch::Arch;
use amqp_tools_tests::k8s::{
    QUORUM_DECLARE_ARGS, QUORUM_DECLARE_COMMAND, QUORUM_JOB_ARGS, QUORUM_JOB_COMMAND,
};
use amqp_tools_tests::scratch::{
    check_image_final_stage, check_runs_alone_in_empty_roots, check_static_binaries,
    dockerfile_final_stage, in_root, is_root, kubelet_expand, processed_item, static_bins,
    static_bins_and_root, tutorial_in_empty_root, tutorial_root, url_via_host_name, FRUITS,
    JOB_ARGS, JOB_COMMAND, NON_ROOT,
};
use amqp_tools_tests::{skip, unique, workspace_root, Broker, Cmd};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// The container's args in k8s/job-until-empty.yaml, before the kubelet expands `$(VAR)`.
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

#[test]
fn static_binaries_are_static_and_run_with_no_other_file() {
    let Some(bins) = static_bins(Arch::host()) else {
        return;
    };
    check_static_binaries(bins);
    if !is_root() {
        skip("running the binaries in an empty root needs chroot, so root");
        return;
    }
    check_runs_alone_in_empty_roots(bins);
}

#[test]
fn tutorial_runs_in_an_empty_root_as_non_root() {
    let Some(bins) = static_bins_and_root(Arch::host()) else {
        return;
    };
    tutorial_in_empty_root(bins);
}

/// job-until-empty.yaml's pattern in the empty root, with the URL from AMQP_URL (as in
/// keda-scaledjob.yaml, whose Secret holds a `/%2f` vhost) instead of `--url`.
#[test]
fn until_empty_job_pattern_in_an_empty_root() {
    let Some(bins) = static_bins_and_root(Arch::host()) else {
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

#[test]
fn image_final_stage_runs_the_worker_under_podman() {
    let Some(bins) = static_bins(Arch::host()) else {
        return;
    };
    check_image_final_stage(bins);
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
