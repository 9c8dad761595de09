//! Test support for the amqp-* tools: everything here talks to a real RabbitMQ
//! (never a mock), runs real processes with hard timeouts, and hands out unique
//! names so integration tests can run in parallel.
//!
//! ```no_run
//! use amqp_tools_tests::*;
//! let broker = Broker::connect(); // deletes what it declares when dropped
//! let q = broker.temp_queue("get");
//! for side in sides("amqp-get") {
//!     broker.publish(&q, b"hi");
//!     let out = side.cmd().args(["-u", &broker_url(), "-q", &q]).run();
//!     out.expect_status(0);
//!     assert_eq!(out.stdout, b"hi", "{}", side.name);
//! }
//! ```

pub mod arch;
pub mod badpeer;
mod bins;
mod broker;
pub mod cluster;
mod cmd;
mod ctl;
mod frames;
pub mod k8s;
mod net;
pub mod node;
mod raw;
pub mod scratch;
pub mod tls_node;

pub use bins::{bin_dir, ours, reference, require_reference, sides, workspace_root, Side, TOOLS};
pub use broker::{cancel_consumer, render_value, Broker, Msg, Props};
pub use cmd::{run_into_closed_pipe, Cmd, Output, Running};
pub use ctl::{
    bindings, client_property, close_connections_from_port, connections, connections_in, consumers,
    queue_info, queue_info_in, rabbitmqctl, rabbitmqctl_text, temp_vhost, ConsumerInfo, QueueInfo,
    TempVhost,
};
pub use net::{closing_peer, http_peer, refused_port, silent_peer, PeerGuard, Proxy};
pub use raw::raw_get_headers;

/// Re-exported so test files build AMQP properties and values without their own dependency.
pub use amiquip;
/// Re-exported for tests that inspect rabbitmqctl JSON.
pub use serde_json;
/// Re-exported for tests that need scratch files (authfiles, stdin bodies).
pub use tempfile;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default broker for tests; `AMQP_TEST_URL` lets CI or a developer point elsewhere.
pub fn broker_url() -> String {
    std::env::var("AMQP_TEST_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
}

/// Broker `host:port` from `broker_url()`, for messages and for tools taking `--server/--port`.
pub fn broker_addr() -> String {
    let url = broker_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or("");
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5672")
    }
}

/// A queue/exchange name no other test (or earlier run) uses: `t-<prefix>-<pid>-<n>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("t-{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Ends a test that cannot run here with a `SKIPPED:` line (the caller returns); under CI
/// (env `CI`), where everything the tests need is installed, fails it instead.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so this must not be skipped: {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
