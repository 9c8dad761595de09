//! The time from the death of a RabbitMQ node to the next message `amqp-consume --reconnect`
//! processes, measured by bench/run (row B6) on the private 3-node cluster of the tests.
//!
//! ```text
//! failover [--rounds N] [--messages N] NAME=AMQP-CONSUME...
//! ```
//!
//! For each round, each case and each build given (in alternation): a quorum queue is
//! declared and filled, the build's amqp-consume works through it with --reconnect and the
//! three nodes' addresses (connected to the first), its command writing the delivery tag and
//! the time at which it starts; once it is steadily at work, its node is killed with -9. The
//! figure is the time from just before the kill to the start of the command of the first
//! delivery on the new connection (delivery tag 1 again). The node is then started again and
//! the queue deleted. Two cases: the queue's leader on another node (only the consumer's
//! connection is lost), and on the node killed (a leader election too).
//!
//! Prints one JSON object a line on stdout: {"build": NAME, "case": CASE, "seconds": S}.
//! Progress goes to stderr. Exit 1 with one line on stderr on any failure, 2 when RabbitMQ is
//! not installed.

use amqp_tools_tests::cluster::{cluster, Cluster};
use amqp_tools_tests::{unique, wait_until, Broker, Cmd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines in the ledger before the kill: the consumer is past its start.
const WARM: usize = 100;

struct Case {
    name: &'static str,
    /// The node the queue is declared on (its leader); the consumer is connected to node 0.
    leader: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "queue leader on another node",
        leader: 1,
    },
    Case {
        name: "queue leader on the killed node",
        leader: 0,
    },
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), String> {
    let mut rounds = 3;
    let mut messages = 2000;
    let mut builds: Vec<(String, PathBuf)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{what} needs a number"))
        };
        match arg.as_str() {
            "--rounds" => rounds = number("--rounds")?,
            "--messages" => messages = number("--messages")?,
            _ => match arg.split_once('=') {
                Some((name, path)) => builds.push((name.to_string(), PathBuf::from(path))),
                None => return Err(format!("expected NAME=AMQP-CONSUME, not '{arg}'")),
            },
        }
    }
    if builds.is_empty() || messages <= WARM {
        return Err(format!(
            "usage: failover [--rounds N] [--messages N (> {WARM})] NAME=AMQP-CONSUME..."
        ));
    }
    eprintln!("failover: starting a private 3-node RabbitMQ cluster");
    let Some(c) = cluster() else {
        eprintln!("failover: RabbitMQ is not installed");
        std::process::exit(2);
    };
    for round in 1..=rounds {
        for case in &CASES {
            for (name, consume) in &builds {
                eprintln!("failover: round {round}, {}, {name}", case.name);
                let seconds = measure(c, case, consume, messages)?;
                println!(
                    "{{\"build\": \"{name}\", \"case\": \"{}\", \"seconds\": {seconds:.3}}}",
                    case.name
                );
            }
        }
    }
    Ok(())
}

/// Nanoseconds since the epoch, as `date +%s%N` prints them.
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// (delivery tag, start time in ns) of each ledger line.
fn ledger(path: &Path) -> Vec<(u64, u128)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (tag, ns) = l.split_once(' ')?;
            Some((tag.parse().ok()?, ns.parse().ok()?))
        })
        .collect()
}

fn measure(c: &Cluster, case: &Case, consume: &Path, messages: usize) -> Result<f64, String> {
    // Node 2 is never killed: it holds the connection that fills and deletes the queue.
    let admin = Broker::connect_to(&c.url(2));
    let q = unique("bench-failover");
    // Kept until the end: a Broker deletes the queues it declared when dropped.
    let declarer = Broker::connect_to(&c.url(case.leader));
    declarer.declare_quorum(&q);
    admin.cleanup_queue(&q);
    let bodies: Vec<String> = (1..=messages).map(|i| format!("m{i}")).collect();
    admin.publish_all(&q, &bodies);
    let dir = std::env::temp_dir().join(format!("{q}-ledger"));
    let _ = std::fs::remove_file(&dir);
    let consumer = Cmd::new(consume)
        .env_remove("AMQP_URL")
        .args(["-q", &q, "-p", "10", "--reconnect", "--export-env"])
        .args(c.url_args())
        .args(["--", "sh", "-c"])
        .arg(r#"echo "$AMQP_DELIVERY_TAG $(date +%s%N)" >> "$0"; exec cat >/dev/null"#)
        .arg(&dir)
        .timeout(Duration::from_secs(300))
        .spawn();
    let mut killed = false;
    let result = (|| {
        if !wait_until(Duration::from_secs(60), || ledger(&dir).len() >= WARM) {
            return Err(format!(
                "the consumer did not start: {}",
                consumer.stderr_now()
            ));
        }
        let killed_at = now_ns();
        c.kill(0);
        killed = true;
        let mut next = None;
        let found = wait_until(Duration::from_secs(120), || {
            next = ledger(&dir)
                .into_iter()
                .find(|&(tag, at)| tag == 1 && at > killed_at);
            next.is_some()
        });
        match next {
            Some((_, at)) if found => Ok((at - killed_at) as f64 / 1e9),
            _ => Err(format!(
                "no message processed within 120 s of the kill: {}",
                consumer.stderr_now()
            )),
        }
    })();
    drop(consumer);
    let _ = std::fs::remove_file(&dir);
    if killed {
        c.restart(0);
    }
    drop(declarer);
    result
}
