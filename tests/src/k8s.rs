//! What k8s/job-quorum.yaml runs, as written there before the kubelet expands `$(VAR)`: the
//! manifest test checks the YAML against it, the cluster test runs it on the private cluster.

/// The consumer container of the Job.
pub const QUORUM_JOB_COMMAND: &str = "/usr/bin/amqp-consume";
pub const QUORUM_JOB_ARGS: [&str; 10] = [
    "-q",
    "$(QUEUE)",
    "-c",
    "1",
    "--exit-when-empty",
    "--fail-fast",
    "--reconnect",
    "--reconnect-timeout",
    "120",
    "/usr/bin/worker",
];
/// The init container that declares the quorum queue.
pub const QUORUM_DECLARE_COMMAND: &str = "/usr/bin/amqp-declare-queue";
pub const QUORUM_DECLARE_ARGS: [&str; 6] = [
    "-q",
    "$(QUEUE)",
    "--queue-type",
    "quorum",
    "--arg",
    "x-delivery-limit=5",
];

/// `$(VAR)` in a container's args replaced as the kubelet does, from `env`.
pub fn kubelet_expand(arg: &str, env: &[(&str, &str)]) -> String {
    env.iter().fold(arg.to_string(), |a, (k, v)| {
        a.replace(&format!("$({k})"), v)
    })
}
