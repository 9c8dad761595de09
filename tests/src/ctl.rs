//! Slow (~0.5 s a call) broker inspection through `rabbitmqctl`, only for what AMQP cannot
//! tell: queue flags and arguments, bindings, consumers, client connections.

use crate::cmd::Cmd;
use serde_json::Value;
use std::time::Duration;

const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// Queue attributes as rabbitmqctl reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueInfo {
    /// Declared durable.
    pub durable: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// Declared exclusive.
    pub exclusive: bool,
    /// Messages ready for delivery.
    pub messages_ready: u64,
    /// Delivered but not yet acked.
    pub messages_unacknowledged: u64,
    /// Number of consumers.
    pub consumers: u64,
    /// x-arguments; rabbitmqctl renders them as `[[key, type, value], ...]` (`[]` when none).
    pub arguments: Value,
}

/// One consumer of a queue as rabbitmqctl reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// The consumer tag.
    pub tag: String,
    /// Channel prefetch count in force for it (0 = unlimited).
    pub prefetch_count: u64,
    /// False for no-ack consumers.
    pub ack_required: bool,
    /// Consumed with exclusive=true (taken from the queue's exclusive_consumer_tag).
    pub exclusive: bool,
}

/// Vhost of `broker_url()` as rabbitmqctl wants it ("/" when the URL has none).
fn vhost() -> String {
    let url = crate::broker_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let path = rest.split('?').next().unwrap_or("");
    match path.split_once('/') {
        None | Some((_, "")) => "/".to_string(),
        Some((_, p)) => percent_decode(p),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `rabbitmqctl -q <args>` and returns its stdout; panics on failure or after 60 s.
/// `RABBITMQCTL` overrides the program (e.g. a wrapper that runs it in a container).
pub fn rabbitmqctl_text(args: &[&str]) -> String {
    let prog = std::env::var_os("RABBITMQCTL").unwrap_or_else(|| "rabbitmqctl".into());
    let out = Cmd::new(std::path::PathBuf::from(prog))
        .arg("-q")
        .args(args)
        .timeout(CTL_TIMEOUT)
        .run();
    let text = out.stdout_str();
    assert_eq!(
        out.status(),
        0,
        "`{}` failed:\n{}\n{}",
        out.cmdline,
        text,
        out.stderr
    );
    text
}

/// Runs `rabbitmqctl -q --formatter json <args>` and parses its output; panics on failure.
pub fn rabbitmqctl(args: &[&str]) -> Value {
    let mut all = vec!["--formatter", "json"];
    all.extend_from_slice(args);
    let text = rabbitmqctl_text(&all);
    if text.trim().is_empty() {
        // Commands such as close_connection print nothing under -q.
        return Value::Null;
    }
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("rabbitmqctl {args:?} printed non-JSON ({e}):\n{text}"))
}

fn list(cmd: &str, columns: &[&str]) -> Vec<Value> {
    list_in(&vhost(), cmd, columns)
}

fn list_in(vhost: &str, cmd: &str, columns: &[&str]) -> Vec<Value> {
    let mut args = vec![cmd, "-p", vhost];
    args.extend_from_slice(columns);
    match rabbitmqctl(&args) {
        Value::Array(rows) => rows,
        Value::Null => Vec::new(),
        other => panic!("rabbitmqctl {cmd}: expected a JSON array, got {other}"),
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn bool_of(v: &Value, k: &str) -> bool {
    v[k].as_bool().unwrap_or(false)
}

/// Attributes of queue `q`, or `None` if it does not exist.
pub fn queue_info(q: &str) -> Option<QueueInfo> {
    queue_info_in(&vhost(), q)
}

/// Attributes of queue `q` in `vhost`, or `None` if it does not exist.
pub fn queue_info_in(vhost: &str, q: &str) -> Option<QueueInfo> {
    let cols = [
        "name",
        "durable",
        "auto_delete",
        "exclusive",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        "arguments",
    ];
    list_in(vhost, "list_queues", &cols)
        .into_iter()
        .find(|r| r["name"] == q)
        .map(|r| QueueInfo {
            durable: bool_of(&r, "durable"),
            auto_delete: bool_of(&r, "auto_delete"),
            exclusive: bool_of(&r, "exclusive"),
            messages_ready: u64_of(&r, "messages_ready"),
            messages_unacknowledged: u64_of(&r, "messages_unacknowledged"),
            consumers: u64_of(&r, "consumers"),
            arguments: r["arguments"].clone(),
        })
}

/// `(source exchange, routing key)` of every binding with queue `q` as destination,
/// including the implicit default-exchange one (source "").
pub fn bindings(q: &str) -> Vec<(String, String)> {
    let cols = [
        "source_name",
        "destination_name",
        "destination_kind",
        "routing_key",
    ];
    list("list_bindings", &cols)
        .into_iter()
        .filter(|r| r["destination_kind"] == "queue" && r["destination_name"] == q)
        .map(|r| (str_of(&r, "source_name"), str_of(&r, "routing_key")))
        .collect()
}

/// Consumers of queue `q`. Costs two rabbitmqctl calls (run concurrently) because
/// list_consumers in 3.10 has no `exclusive` column.
pub fn consumers(q: &str) -> Vec<ConsumerInfo> {
    let excl = std::thread::spawn(|| list("list_queues", &["name", "exclusive_consumer_tag"]));
    let rows = list(
        "list_consumers",
        &[
            "queue_name",
            "consumer_tag",
            "ack_required",
            "prefetch_count",
        ],
    );
    let excl_tag = excl
        .join()
        .expect("rabbitmqctl thread panicked")
        .into_iter()
        .find(|r| r["name"] == q)
        .and_then(|r| r["exclusive_consumer_tag"].as_str().map(str::to_string))
        .unwrap_or_default();
    rows.into_iter()
        .filter(|r| r["queue_name"] == q)
        .map(|r| {
            let tag = str_of(&r, "consumer_tag");
            ConsumerInfo {
                exclusive: !excl_tag.is_empty() && tag == excl_tag,
                prefetch_count: u64_of(&r, "prefetch_count"),
                ack_required: bool_of(&r, "ack_required"),
                tag,
            }
        })
        .collect()
}

/// Client connections with `name`, `user`, `client_properties`, `peer_port`, `peer_host`
/// (a byte array such as `[127,0,0,1]`) and `pid` (in a JSON-only form; see below).
pub fn connections() -> Vec<Value> {
    connections_in(&vhost())
}

/// `connections()` of another vhost.
pub fn connections_in(vhost: &str) -> Vec<Value> {
    list_in(
        vhost,
        "list_connections",
        &[
            "name",
            "user",
            "client_properties",
            "peer_port",
            "peer_host",
            "pid",
        ],
    )
}

/// A client property of a `connections()` row; rabbitmqctl renders the table as
/// `[[key, type, value], ...]`, so this returns the value part.
pub fn client_property<'a>(conn: &'a Value, key: &str) -> Option<&'a Value> {
    conn["client_properties"]
        .as_array()?
        .iter()
        .find(|kv| kv[0] == key)
        .map(|kv| &kv[2])
}

/// Force-closes (server side, with `reason`) every connection whose client port is
/// `peer_port`; returns how many it closed.
pub fn close_connections_from_port(peer_port: u16, reason: &str) -> usize {
    // The table formatter, because JSON renders pids as "#PID<12576.x.y>", a form
    // close_connection rejects; the table gives "<rabbit@host.N.x.y>", which it takes.
    let vhost = vhost();
    let table = rabbitmqctl_text(&[
        "list_connections",
        "-p",
        &vhost,
        "--no-table-headers",
        "pid",
        "peer_port",
    ]);
    let port = peer_port.to_string();
    let pids: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, p)| p.trim() == port)
        .map(|(pid, _)| pid)
        .collect();
    for pid in &pids {
        rabbitmqctl_text(&["close_connection", pid, reason]);
    }
    pids.len()
}

/// A vhost of its own for a test that needs fixed queue names (the tutorial's `foo`, `job1`),
/// with `guest` allowed in; deleted, with everything in it, when dropped.
pub struct TempVhost {
    name: String,
}

impl TempVhost {
    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `broker_url()` pointed at this vhost.
    pub fn url(&self) -> String {
        let base = crate::broker_url();
        let base = base.split(['?']).next().unwrap_or_default().to_string();
        let rest = base.split_once("://").map_or("", |(_, r)| r);
        let authority_len = rest.find('/').unwrap_or(rest.len());
        let prefix_len = base.len() - rest.len() + authority_len;
        format!("{}/{}", &base[..prefix_len], self.name)
    }
}

impl Drop for TempVhost {
    fn drop(&mut self) {
        let prog = std::env::var_os("RABBITMQCTL").unwrap_or_else(|| "rabbitmqctl".into());
        let _ = Cmd::new(std::path::PathBuf::from(prog))
            .args(["-q", "delete_vhost", &self.name])
            .timeout(CTL_TIMEOUT)
            .run();
    }
}

/// Creates a vhost (ASCII letters, digits and '-' in `name`) and gives `guest` all rights on it.
pub fn temp_vhost(name: &str) -> TempVhost {
    rabbitmqctl_text(&["add_vhost", name]);
    let vhost = TempVhost {
        name: name.to_string(),
    };
    rabbitmqctl_text(&["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]);
    vhost
}
