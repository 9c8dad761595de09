//! A private 3-node RabbitMQ cluster on this machine, for the cluster tests: three nodes with
//! their own names, AMQP and distribution ports, data directories and one Erlang cookie of their
//! own, clustered with `rabbitmqctl join_cluster`. Started once per test binary (`cluster()`),
//! stopped and removed at exit. The shared broker on 5672 and its cookie are never touched.
//!
//! Tests that stop or kill nodes hold `Cluster::disrupt()` while they do: a quorum queue
//! survives one node down, not two, so two such tests must not overlap. Each one brings every
//! node back (`restart`) before it lets go. Tests that need every node up hold
//! `Cluster::steady()`.

use crate::node::{free_ports, scratch_dir, started_once, DirGuard, Node};
use std::path::PathBuf;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// The number of nodes: the smallest cluster where a quorum queue survives a node's loss.
pub const SIZE: usize = 3;

/// One node of the cluster.
pub struct ClusterNode {
    /// Its AMQP listener, on 127.0.0.1.
    pub amqp_port: u16,
    pub node: Node,
}

/// The running cluster.
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    dir: PathBuf,
    disruption: RwLock<()>,
}

static CLUSTER: OnceLock<Option<Result<Cluster, String>>> = OnceLock::new();

/// The shared cluster, started on first use (about half a minute). `None` (after printing
/// SKIPPED) when RabbitMQ is not installed; under CI that is a failure instead.
pub fn cluster() -> Option<&'static Cluster> {
    started_once(&CLUSTER, "cluster tests", &[], Cluster::start, stop_at_exit)
}

extern "C" fn stop_at_exit() {
    if let Some(Some(Ok(cluster))) = CLUSTER.get() {
        cluster.remove();
    }
}

impl Cluster {
    fn start() -> Cluster {
        let dir = scratch_dir("cluster");
        let guard = DirGuard(Some(dir.clone()));
        let pid = std::process::id();
        // Only these nodes (and rabbitmqctl run with their HOME) know it.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let cookie = format!("AMQPTOOLSCLUSTER{pid}X{nanos}");
        let spawn = |i: usize| {
            let [amqp_port, dist_port] = free_ports();
            let conf = format!(
                "listeners.tcp.1 = 127.0.0.1:{amqp_port}\n\
                 cluster_partition_handling = ignore\n"
            );
            let name = format!("cluster{}-{pid}", i + 1);
            ClusterNode {
                amqp_port,
                node: Node::spawn(&dir, &name, &conf, dist_port, Some(&cookie)),
            }
        };
        let mut nodes: Vec<ClusterNode> = (0..SIZE).map(spawn).collect();
        // Ports are picked free but may be taken before the node binds them: retry then.
        for i in 0..SIZE {
            let mut attempts = 0;
            while !nodes[i].node.await_startup() {
                let log = nodes[i].node.log_tail();
                nodes[i].node.remove();
                attempts += 1;
                if attempts == 3 {
                    nodes.iter().for_each(|n| n.node.remove());
                    panic!("the private cluster's node {} did not start:\n{log}", i + 1);
                }
                eprintln!("cluster node {} failed to start, retrying:\n{log}", i + 1);
                nodes[i] = spawn(i);
            }
        }
        let cluster = Cluster {
            nodes,
            dir,
            disruption: RwLock::new(()),
        };
        let seed = cluster.nodes[0].node.node_name();
        for n in &cluster.nodes[1..] {
            for args in [
                &["stop_app"][..],
                &["join_cluster", seed.as_str()],
                &["start_app"],
            ] {
                let out = n.node.ctl_output(args, Duration::from_secs(120));
                if !matches!(out, Some((true, _))) {
                    let log = n.node.log_tail();
                    cluster.remove();
                    panic!(
                        "rabbitmqctl -n {} {args:?} failed: {out:?}\n{log}",
                        n.node.name
                    );
                }
            }
        }
        if !cluster.all_running() {
            cluster.remove();
            panic!("the private cluster did not form");
        }
        std::mem::forget(guard);
        cluster
    }

    /// `amqp://guest:guest@127.0.0.1:PORT` of node `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}", self.nodes[i].amqp_port)
    }

    /// `127.0.0.1:PORT` of node `i`, as the tools name it in messages.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].amqp_port)
    }

    /// Every node's URL, as `-u` arguments in node order.
    pub fn url_args(&self) -> Vec<String> {
        (0..SIZE).flat_map(|i| ["-u".into(), self.url(i)]).collect()
    }

    /// Held by a test while it stops or kills nodes (see the module note).
    pub fn disrupt(&self) -> RwLockWriteGuard<'_, ()> {
        // A test that panicked while holding it has already restarted what it could.
        self.disruption.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Held by a test that needs every node up.
    pub fn steady(&self) -> RwLockReadGuard<'_, ()> {
        self.disruption.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `kill -9` of node `i`'s Erlang VM: its clients see their connections reset.
    pub fn kill(&self, i: usize) {
        self.nodes[i].node.kill9();
    }

    /// Stops node `i` cleanly (its clients get connection.close, as in a rolling upgrade).
    pub fn stop(&self, i: usize) {
        self.nodes[i].node.stop_vm();
    }

    /// Starts node `i` again (after `kill` or `stop`) and waits until it is back in the
    /// cluster with the other nodes.
    pub fn restart(&self, i: usize) {
        let node = &self.nodes[i].node;
        node.start();
        assert!(
            node.await_startup(),
            "cluster node {} did not start again:\n{}",
            i + 1,
            node.log_tail()
        );
        assert!(self.all_running(), "the cluster did not form again");
    }

    /// Whether every node reports all the nodes as running (bounded wait).
    fn all_running(&self) -> bool {
        crate::wait_until(Duration::from_secs(60), || {
            self.nodes.iter().all(|n| {
                let out = n.node.ctl_output(
                    &["cluster_status", "--formatter", "json"],
                    Duration::from_secs(30),
                );
                let Some((true, text)) = out else {
                    return false;
                };
                let running = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["running_nodes"].as_array().map(Vec::len));
                running == Some(SIZE)
            })
        })
    }

    fn remove(&self) {
        std::thread::scope(|s| {
            for n in &self.nodes {
                s.spawn(|| n.node.remove());
            }
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
