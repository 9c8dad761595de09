//! The Kubernetes tutorial "Coarse Parallel Processing Using a Work Queue", run with our tools:
//! its commands as printed, through `sh -c`, with `BROKER_URL` exported and our binaries first on
//! PATH. Each test gets a private vhost, so the tutorial's fixed queue names (`foo`, `job1`) do
//! not collide with other tests or with a real `job1`.

use amqp_tools_tests::{bin_dir, temp_vhost, unique, workspace_root, Broker, Cmd};
use std::collections::BTreeMap;
use std::time::Duration;

const FRUITS: [&str; 8] = [
    "apple", "banana", "cherry", "date", "fig", "grape", "lemon", "melon",
];

fn shell(url: &str, script: &str) -> Cmd {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Cmd::new("sh")
        .args(["-c", script])
        .env("PATH", path)
        .env("BROKER_URL", url)
        .env("WORKER_SLEEP", "0.2")
        .env_remove("AMQP_URL")
        .timeout(Duration::from_secs(60))
}

#[test]
fn tutorial_commands_as_printed() {
    let vhost = temp_vhost(&unique("tutorial"));
    let url = vhost.url();

    // "Testing the message queue service"
    let out = shell(&url, "amqp-declare-queue --url=$BROKER_URL -q foo -d").run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "foo\n");
    shell(&url, "amqp-publish --url=$BROKER_URL -r foo -p -b Hello")
        .run()
        .expect_status(0);
    let out = shell(
        &url,
        "amqp-consume --url=$BROKER_URL -q foo -c 1 cat && echo 1>&2",
    )
    .run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "Hello");
    assert_eq!(out.stderr, "\n");

    // "Filling the queue with tasks"
    let out = shell(&url, "amqp-declare-queue --url=$BROKER_URL -q job1  -d").run();
    out.expect_status(0);
    assert_eq!(out.stdout_str(), "job1\n");
    shell(
        &url,
        "for f in apple banana cherry date fig grape lemon melon\n\
         do\n  amqp-publish --url=$BROKER_URL -r job1 -p -b $f\n\
         done",
    )
    .run()
    .expect_status(0);
    let broker = Broker::connect_to(&url);
    assert_eq!(broker.count("job1"), Some(8));

    // The Job: completions 8, parallelism 2, each pod running the image's command.
    let worker = workspace_root().join("examples/worker.sh");
    let pod = format!(
        "amqp-consume --url=$BROKER_URL -q job1 -c 1 {}",
        worker.display()
    );
    let mut processed: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..4 {
        let pods = [shell(&url, &pod).spawn(), shell(&url, &pod).spawn()];
        for p in pods {
            let out = p.wait();
            out.expect_status(0);
            let line = out.stdout_str();
            let item = line
                .strip_prefix("Processing ")
                .unwrap_or_else(|| panic!("unexpected worker output {line:?}"))
                .trim_end()
                .to_string();
            *processed.entry(item).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = FRUITS.iter().map(|f| (f.to_string(), 1)).collect();
    assert_eq!(processed, expected, "each item processed exactly once");
    assert_eq!(broker.count("job1"), Some(0));
    let info = amqp_tools_tests::queue_info_in(vhost.name(), "job1").expect("job1 exists");
    assert!(info.durable);
    assert_eq!(info.messages_unacknowledged, 0);
}

#[test]
fn tutorial_script_runs_end_to_end() {
    let vhost = temp_vhost(&unique("tutorial-sh"));
    let out = Cmd::new(workspace_root().join("examples/tutorial.sh"))
        .env("BROKER_URL", vhost.url())
        .env("AMQP_TOOLS_BIN", bin_dir())
        .env("WORKER_SLEEP", "0")
        .timeout(Duration::from_secs(120))
        .run();
    out.expect_status(0);
    let stdout = out.stdout_str();
    assert!(stdout.contains("Hello"), "{stdout}");
    for fruit in FRUITS {
        assert!(
            stdout.contains(&format!("Processing {fruit}")),
            "{fruit} missing in\n{stdout}"
        );
    }
    assert!(stdout.contains("messages left in job1: 0"), "{stdout}");
    assert!(stdout.contains("items processed: 8"), "{stdout}");
    assert!(stdout.ends_with("tutorial OK\n"), "{stdout}");
}
