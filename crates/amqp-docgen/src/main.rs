//! amqp-docgen OUTDIR: writes the five tools' man pages to OUTDIR/man/<tool>.1 and their bash,
//! zsh and fish completions to OUTDIR/completions/, from the same clap definitions the tools
//! parse their command lines with, so the documentation cannot drift from the flags.
//! scripts/gen-docs runs it on the repository root; tests/tests/packaging.rs checks that the
//! checked-in files are what it generates.

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use roff::{bold, italic, roman, Inline, Roff};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything a man page needs beyond what clap knows.
struct Tool {
    name: &'static str,
    command: fn() -> Command,
    /// The NAME line's text after "name - ": one line, as whatis(1) and apropos(1) show it.
    summary: &'static str,
    /// SYNOPSIS lines: (literal words in bold, placeholders in italic) as alternating runs.
    synopsis: &'static [&'static [Word]],
    exit_status: &'static [(&'static str, &'static str)],
    /// (what it does, the command line)
    examples: &'static [(&'static str, &'static str)],
    /// Extra ENVIRONMENT entries besides AMQP_URL.
    environment: &'static [(&'static str, &'static str)],
}

/// One word of a synopsis line.
enum Word {
    Lit(&'static str),
    Var(&'static str),
    Text(&'static str),
}
use Word::{Lit, Text, Var};

const TOOLS: &[Tool] = &[
    Tool {
        name: "amqp-publish",
        command: amqp_publish::Args::command,
        summary: "publish a message to an AMQP (RabbitMQ) exchange",
        synopsis: &[
            &[
                Lit("amqp-publish"),
                Text(" [OPTIONS] "),
                Lit("-r"),
                Text(" "),
                Var("KEY"),
                Text(" ["),
                Lit("-b"),
                Text(" "),
                Var("BODY"),
                Text("]"),
            ],
            &[
                Lit("amqp-publish"),
                Text(" [OPTIONS] "),
                Lit("-e"),
                Text(" "),
                Var("EXCHANGE"),
                Text(" ["),
                Lit("-r"),
                Text(" "),
                Var("KEY"),
                Text("] ["),
                Lit("-l"),
                Text("] < "),
                Var("FILE"),
            ],
        ],
        exit_status: &[
            (
                "0",
                "Every message was published and the broker confirmed it (with --no-confirm: \
                 nothing failed before the channel was closed).",
            ),
            (
                "1",
                "Any error: a bad command line, no -e and no -r, connecting or logging in \
                 failed, the broker refused or did not confirm a message, a message was \
                 unroutable with --mandatory, or stdin could not be read.",
            ),
        ],
        examples: &[
            (
                "The Kubernetes work-queue tutorial: publish the persistent message \"apple\" \
                 to the queue job1 (through the default exchange, which routes by queue name).",
                "amqp-publish --url=$BROKER_URL -r job1 -p -b apple",
            ),
            (
                "Fill the queue with one message per item, as the tutorial does.",
                "for f in apple banana cherry date fig grape lemon melon\n\
                 do\n  amqp-publish --url=$BROKER_URL -r job1 -p -b $f\ndone",
            ),
            (
                "Publish a whole file as one JSON message.",
                "amqp-publish -r job1 -p -C application/json < task.json",
            ),
            (
                "Publish one message per line of stdin to an exchange.",
                "seq 1 100 | amqp-publish -e amq.direct -r work -l",
            ),
            (
                "Fail (exit 1) if no queue is bound for the key; add a header.",
                "amqp-publish -e amq.topic -r logs.error --mandatory -H 'trace-id: 42' -b 'disk full'",
            ),
        ],
        environment: &[],
    },
    Tool {
        name: "amqp-consume",
        command: amqp_consume::Args::command,
        summary: "run a command for each message of an AMQP (RabbitMQ) queue",
        synopsis: &[&[
            Lit("amqp-consume"),
            Text(" [OPTIONS] ["),
            Lit("--"),
            Text("] "),
            Var("COMMAND"),
            Text(" ["),
            Var("ARG"),
            Text("...]"),
        ]],
        exit_status: &[
            (
                "0",
                "-c N messages were handled (whatever COMMAND returned), or the queue was \
                 empty with --exit-when-empty, or nothing arrived for --idle-timeout seconds.",
            ),
            (
                "1",
                "Any error: a bad command line, connecting or logging in failed, the broker \
                 refused the queue, the queue was deleted or the connection was closed while \
                 consuming.",
            ),
            (
                "N",
                "With --fail-fast: the exit status N of the first COMMAND that failed, or \
                 128+S if it was killed by signal S.",
            ),
            (
                "128+S",
                "amqp-consume was stopped by signal S (SIGINT, SIGTERM): it passed the signal \
                 on to the running commands, settled their messages by their exit status and \
                 closed the connection.",
            ),
        ],
        examples: &[
            (
                "The Kubernetes work-queue tutorial's Job: take one message off job1, run \
                 /worker with the body on its stdin, acknowledge the message if /worker exits \
                 0, and exit.",
                "amqp-consume --url=$BROKER_URL -q job1 -c 1 /worker",
            ),
            (
                "Work through the queue and stop when it is empty; stop at the first failure, \
                 with the failed command's status.",
                "amqp-consume -q job1 --exit-when-empty --fail-fast -- sh -c 'cat >> done.txt'",
            ),
            (
                "Four commands at once; a failed message goes back to the queue at once; the \
                 command gets the message's metadata as AMQP_* environment variables.",
                "amqp-consume -q job1 -j 4 --on-failure requeue --export-env ./handle",
            ),
            (
                "Collect every message of a topic exchange into a file (a server-named queue, \
                 deleted when amqp-consume exits).",
                "amqp-consume -e amq.topic -r 'logs.*' -- sh -c 'cat >> all.log'",
            ),
        ],
        environment: &[(
            "POSIXLY_CORRECT",
            "When set, options end at COMMAND, so COMMAND's own options need no --.",
        )],
    },
    Tool {
        name: "amqp-get",
        command: amqp_get::Args::command,
        summary: "take one message off an AMQP (RabbitMQ) queue and print its body",
        synopsis: &[&[
            Lit("amqp-get"),
            Text(" [OPTIONS] "),
            Lit("-q"),
            Text(" "),
            Var("QUEUE"),
        ]],
        exit_status: &[
            ("0", "A message was taken off the queue and its body printed."),
            ("1", "Any error, including a queue that does not exist."),
            ("2", "The queue is empty; nothing is printed."),
        ],
        examples: &[
            (
                "The Kubernetes work-queue tutorial: print the body of the next message of \
                 job1 (byte for byte, no newline added).",
                "amqp-get --url=$BROKER_URL -q job1",
            ),
            (
                "Tell an empty queue from an error.",
                "amqp-get -q job1 > msg; case $? in\n  0) cat msg ;;\n  2) echo 'queue is \
                 empty' ;;\n  *) echo 'amqp-get failed' >&2 ;;\nesac",
            ),
        ],
        environment: &[],
    },
    Tool {
        name: "amqp-declare-queue",
        command: amqp_declare_queue::Args::command,
        summary: "declare an AMQP (RabbitMQ) queue and print its name",
        synopsis: &[&[
            Lit("amqp-declare-queue"),
            Text(" [OPTIONS] ["),
            Lit("-d"),
            Text("] "),
            Lit("-q"),
            Text(" "),
            Var("QUEUE"),
        ]],
        exit_status: &[
            (
                "0",
                "The queue exists now (created, or already there with the same settings); \
                 its name is printed.",
            ),
            (
                "1",
                "Any error: for example the queue exists with other settings (406 \
                 PRECONDITION_FAILED), or it does not exist with --passive.",
            ),
        ],
        examples: &[
            (
                "The Kubernetes work-queue tutorial: declare the durable queue job1 (prints \
                 job1).",
                "amqp-declare-queue --url=$BROKER_URL -q job1 -d",
            ),
            (
                "Let the broker choose the name and keep it.",
                "q=$(amqp-declare-queue -q '')",
            ),
            (
                "A quorum queue holding at most 1000 messages.",
                "amqp-declare-queue -q work --queue-type quorum --arg x-max-length=1000",
            ),
            (
                "Only check that job1 exists.",
                "amqp-declare-queue -q job1 --passive",
            ),
        ],
        environment: &[],
    },
    Tool {
        name: "amqp-delete-queue",
        command: amqp_delete_queue::Args::command,
        summary: "delete an AMQP (RabbitMQ) queue and print how many messages it held",
        synopsis: &[&[
            Lit("amqp-delete-queue"),
            Text(" [OPTIONS] "),
            Lit("-q"),
            Text(" "),
            Var("QUEUE"),
        ]],
        exit_status: &[
            (
                "0",
                "The queue is gone; the number of messages it held is printed (0 when it did \
                 not exist).",
            ),
            (
                "1",
                "Any error, for example --if-empty on a queue holding messages or --if-unused \
                 on a queue with consumers (406 PRECONDITION_FAILED); nothing is deleted.",
            ),
        ],
        examples: &[
            (
                "The Kubernetes work-queue tutorial: delete job1 (prints the number of \
                 messages it still held).",
                "amqp-delete-queue --url=$BROKER_URL -q job1",
            ),
            (
                "Delete job1 only if it is empty and nobody consumes from it. There is no \
                 short form of --if-unused: -u is --url, as in the C tools.",
                "amqp-delete-queue -q job1 --if-empty --if-unused",
            ),
        ],
        environment: &[],
    },
];

const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            println!(
                "Usage: amqp-docgen OUTDIR\nWrites OUTDIR/man/<tool>.1 and OUTDIR/completions/\
                 (<tool>.bash, _<tool>, <tool>.fish) for the five amqp-* tools."
            );
            return;
        }
        [dir] if !dir.starts_with('-') => PathBuf::from(dir),
        _ => {
            eprintln!("amqp-docgen: expected one argument, the output directory (see --help)");
            std::process::exit(1);
        }
    };
    if let Err(e) = generate(&out) {
        eprintln!("amqp-docgen: {e}");
        std::process::exit(1);
    }
}

fn generate(out: &Path) -> Result<(), String> {
    let man_dir = out.join("man");
    let completions_dir = out.join("completions");
    for dir in [&man_dir, &completions_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for tool in TOOLS {
        let cmd = command(tool);
        write(
            &man_dir.join(format!("{}.1", tool.name)),
            &man_page(tool, &cmd)?,
        )?;
        for shell in SHELLS {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), tool.name, &mut buf);
            if shell == Shell::Fish {
                buf = quote_fish_glob_shorts(&buf);
            }
            write(
                &completions_dir.join(completion_file(shell, tool.name)),
                &buf,
            )?;
        }
    }
    Ok(())
}

/// The tool's command as the tool itself builds it: named as the binary, whatever the crate.
fn command(tool: &Tool) -> Command {
    let mut cmd = (tool.command)().name(tool.name).bin_name(tool.name);
    cmd.build();
    // A positional declared after a flattened group inherits that group's heading, which would
    // put COMMAND under HELP OPTIONS; operands belong with the tool's own options.
    let positionals: Vec<clap::Id> = cmd.get_positionals().map(|a| a.get_id().clone()).collect();
    for id in positionals {
        cmd = cmd.mut_arg(id, |a| a.help_heading(None));
    }
    cmd
}

/// File names the shells look for when they load completions lazily: bash-completion's
/// `completions/<tool>`, zsh's `_<tool>` on fpath, fish's `<tool>.fish`.
fn completion_file(shell: Shell, tool: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{tool}"),
        Shell::Fish => format!("{tool}.fish"),
        _ => format!("{tool}.bash"),
    }
}

/// clap_complete writes `-s ?` unquoted for the `-?` help flag, and fish takes a bare `?` for
/// a wildcard: sourcing the file then fails with "No matches for wildcard".
fn quote_fish_glob_shorts(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace(" -s ? ", " -s '?' ")
        .replace(" -s * ", " -s '*' ")
        .into_bytes()
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn man_page(tool: &Tool, cmd: &Command) -> Result<Vec<u8>, String> {
    // No date: the page must not change when nothing but the day does.
    let man = clap_mangen::Man::new(cmd.clone())
        .title(tool.name.to_uppercase())
        .manual("amqp-tools");
    let mut page = Vec::new();
    let failed = |e: std::io::Error| format!("cannot render the {} man page: {e}", tool.name);
    man.render_title(&mut page).map_err(failed)?;

    let mut head = Roff::new();
    head.control("SH", ["NAME"]);
    head.text([roman(format!("{} - {}", tool.name, tool.summary))]);
    head.control("SH", ["SYNOPSIS"]);
    for (i, line) in tool.synopsis.iter().enumerate() {
        if i > 0 {
            head.control("br", []);
        }
        head.text(line.iter().map(word).collect::<Vec<_>>());
    }
    head.control("SH", ["DESCRIPTION"]);
    description(&mut head, cmd);
    head.text([roman(
        "Options may come in any order, also after operands, and -- ends them. A repeated \
         option keeps its last value. Integer values take C syntax (0x10, 010). stdout and \
         exit status are those of the C tools of rabbitmq-c 0.11 (Debian's amqp-tools).",
    )]);
    head.to_writer(&mut page).map_err(failed)?;

    man.render_options_section(&mut page).map_err(failed)?;

    let mut tail = Roff::new();
    tail.control("SH", ["ENVIRONMENT"]);
    let mut environment = vec![(
        "AMQP_URL",
        "The broker URL, used when no connection option (--url, --server, --port, \
         --username, --password, --vhost, --authfile) is given.",
    )];
    environment.extend_from_slice(tool.environment);
    for (name, meaning) in environment {
        tail.control("TP", []);
        tail.text([bold(name)]);
        tail.text([roman(meaning)]);
    }

    tail.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in tool.exit_status {
        tail.control("TP", []);
        tail.text([bold(*code)]);
        tail.text([roman(*meaning)]);
    }
    tail.control("PP", []);
    tail.text([roman(
        "--help, -?, --usage and --version print to stdout and exit 0; a bad command line \
         exits 1. Errors are one line on stderr.",
    )]);

    tail.control("SH", ["EXAMPLES"]);
    tail.text([roman(
        "BROKER_URL is the broker's URL, as in the Kubernetes tutorial \"Coarse Parallel \
         Processing Using a Work Queue\", e.g. amqp://guest:guest@rabbitmq-service:5672.",
    )]);
    for (what, command_line) in tool.examples {
        tail.control("PP", []);
        tail.text([roman(*what)]);
        tail.control("RS", ["4"]);
        tail.control("nf", []);
        for line in command_line.lines() {
            tail.text([roman(line)]);
        }
        tail.control("fi", []);
        tail.control("RE", []);
    }

    tail.control("SH", ["SEE ALSO"]);
    let others: Vec<String> = TOOLS
        .iter()
        .filter(|t| t.name != tool.name)
        .map(|t| format!("{}(1)", t.name))
        .chain(["rabbitmqctl(8)".to_string()])
        .collect();
    tail.text([roman(others.join(", "))]);
    tail.to_writer(&mut page).map_err(failed)?;

    man.render_version_section(&mut page).map_err(failed)?;
    Ok(single_preamble(&page))
}

/// Each roff writer starts with the same two-line string definition; once is enough.
fn single_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(page);
    match text.split_once(PREAMBLE) {
        Some((before, after)) => {
            format!("{before}{PREAMBLE}{}", after.replace(PREAMBLE, "")).into_bytes()
        }
        None => page.to_vec(),
    }
}

fn word(w: &Word) -> Inline {
    match w {
        Lit(s) => bold(*s),
        Var(s) => italic(*s),
        Text(s) => roman(*s),
    }
}

/// The tool's about text, without its "Exit status:" line: the EXIT STATUS section says more.
fn description(roff: &mut Roff, cmd: &Command) {
    let about = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    for line in about.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Exit status:") {
            continue;
        }
        roff.text([roman(line)]);
        roff.control("PP", []);
    }
}
