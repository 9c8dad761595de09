//! `--usage` on our tools and on Debian's C tools side by side: every option the C tool lists is
//! in ours, in popt's bracketed form and order, followed by ours; both print it on stdout with
//! status 0; and ours breaks its lines where popt would (79 columns on a pipe, the terminal's
//! width less one on a wider terminal).

use amqp_tools_tests::{ours, require_reference, Cmd, Output, TOOLS};
use std::path::Path;
use std::time::Duration;

/// The deliberate differences: the C tool lists `-u` for --if-unused, where `-u` is --url (in
/// popt, the first option with a name wins); ours has no short form for it, and says so.
const DIFFERENCES: &[(&str, &str, &str)] =
    &[("amqp-delete-queue", "[-u|--if-unused]", "[--if-unused]")];

/// popt's line width on a pipe.
const PIPE_WIDTH: usize = 79;

fn usage(bin: &Path) -> Output {
    Cmd::new(bin)
        .arg("--usage")
        .env_remove("POSIXLY_CORRECT")
        .timeout(Duration::from_secs(30))
        .run()
}

/// `--usage` with stdout on a terminal `cols` wide (script(1) gives it a pseudo-terminal).
fn usage_on_terminal(bin: &Path, cols: u16) -> Output {
    let line = format!("stty cols {cols}; exec '{}' --usage", bin.display());
    let mut out = Cmd::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("POSIXLY_CORRECT")
        .timeout(Duration::from_secs(30))
        .run();
    // The terminal turns each newline into CR LF.
    out.stdout.retain(|&b| b != b'\r');
    out
}

/// A usage text cut into what popt prints.
struct Usage {
    text: String,
    /// "Usage: PROGRAM".
    intro: String,
    /// Each bracketed item, brackets included; the first is the short-flag cluster.
    items: Vec<String>,
    /// What follows the options: "[OPTIONS]..." and, for amqp-consume, the operands.
    tail: String,
}

fn parse(tool: &str, out: &Output) -> Usage {
    out.expect_status(0);
    assert!(out.stderr.is_empty(), "{}: {}", out.cmdline, out.stderr);
    let text = out.stdout_str();
    let text = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{}: no final newline: {text:?}", out.cmdline))
        .to_string();
    let intro = format!("Usage: {tool}");
    let rest = text
        .strip_prefix(&intro)
        .unwrap_or_else(|| panic!("{}: {text:?}", out.cmdline));
    let tail_at = rest
        .find("[OPTIONS]...")
        .unwrap_or_else(|| panic!("{}: no [OPTIONS]...: {text:?}", out.cmdline));
    let mut items = Vec::new();
    let mut chars = rest[..tail_at].chars();
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                let inside: String = chars.by_ref().take_while(|&c| c != ']').collect();
                items.push(format!("[{inside}]"));
            }
            ' ' | '\n' => {}
            _ => panic!("{}: {c:?} outside brackets in {text:?}", out.cmdline),
        }
    }
    let tail = rest[tail_at..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Usage {
        text,
        intro,
        items,
        tail,
    }
}

/// The text popt's poptPrintUsage prints for these items at this width, column counting
/// included (popt counts one column more than it prints for each option after the cluster).
fn popt_layout(u: &Usage, width: usize) -> String {
    let mut out = u.intro.clone();
    let mut cur = out.len();
    for (i, item) in u.items.iter().enumerate() {
        let len = item.len() + 1;
        if i > 0 && cur + len > width {
            out.push_str("\n       ");
            cur = 7;
        }
        out.push(' ');
        out.push_str(item);
        cur += if i == 0 { len } else { len + 1 };
    }
    cur += u.tail.len() + 1;
    if cur > width {
        out.push_str("\n       ");
    }
    out.push(' ');
    out.push_str(&u.tail);
    out
}

/// Checks ours against the C tool's usage, both printed for lines of `width` columns.
fn compare(tool: &str, ours: &Usage, c: &Usage, width: usize) {
    // The model is popt's: it gives the C tool's text back, and ours follows it.
    assert_eq!(popt_layout(c, width), c.text, "{tool}: the C tool's layout");
    assert_eq!(
        popt_layout(ours, width),
        ours.text,
        "{tool}: ours is not laid out as popt"
    );
    for line in ours.text.lines() {
        assert!(line.len() <= width, "{tool}: line over {width}: {line:?}");
    }

    // The cluster: the C tool's short flags, then any of ours.
    let c_cluster = c.items[0].trim_end_matches(']');
    assert!(
        ours.items[0].starts_with(c_cluster),
        "{tool}: cluster {} for C's {}",
        ours.items[0],
        c.items[0]
    );

    // Every other C item, in the C tool's order and words, before any of ours.
    let expected: Vec<&str> = c.items[1..]
        .iter()
        .map(|item| {
            DIFFERENCES
                .iter()
                .find(|(t, from, _)| *t == tool && from == item)
                .map_or(item.as_str(), |(_, _, to)| to)
        })
        .collect();
    assert_eq!(
        &ours.items[1..=expected.len()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &expected,
        "{tool}: the C tool's options, in its order, come first"
    );
    assert_eq!(ours.tail, c.tail, "{tool}: what follows the options");

    // Byte for byte up to the first deliberate difference (for four tools, up to [--usage]).
    let same_until = DIFFERENCES
        .iter()
        .filter(|(t, _, _)| *t == tool)
        .filter_map(|(_, from, _)| c.text.find(from))
        .min()
        .unwrap_or_else(|| c.text.find("[--usage]").unwrap() + "[--usage]".len());
    let c_prefix = c.text[..same_until].trim_end();
    assert!(
        ours.text.starts_with(c_prefix),
        "{tool}: ours differs from the C tool's text before its first difference\n\
         ours: {}\nC:    {}",
        ours.text,
        c.text
    );
}

#[test]
fn usage_lists_the_c_tools_options_as_popt_does_then_ours() {
    for tool in TOOLS {
        let ours_out = parse(tool, &usage(&ours(tool)));
        if let Some(c) = require_reference(tool) {
            compare(tool, &ours_out, &parse(tool, &usage(&c)), PIPE_WIDTH);
        }
    }
}

#[test]
fn usage_follows_the_terminal_width_as_popt_does() {
    // Wider than 80 columns: one less than the terminal. Narrower: still 79.
    for (cols, width) in [(150, 149), (100, 99), (60, PIPE_WIDTH)] {
        for tool in TOOLS {
            let ours_out = parse(tool, &usage_on_terminal(&ours(tool), cols));
            if let Some(c) = require_reference(tool) {
                let c_out = parse(tool, &usage_on_terminal(&c, cols));
                compare(tool, &ours_out, &c_out, width);
            }
        }
    }
}

#[test]
fn usage_lists_every_option_of_the_help() {
    for tool in TOOLS {
        let bin = ours(tool);
        let items = parse(tool, &usage(&bin)).items;
        let help = Cmd::new(&bin).arg("--help").run().stdout_str();
        let longs: Vec<&str> = help
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .filter_map(|l| l.split([' ', ',']).find(|w| w.starts_with("--")))
            .collect();
        assert!(
            longs.len() > 15,
            "{tool}: options not found in --help:\n{help}"
        );
        for long in longs {
            let listed = items.iter().any(|item| {
                let names = item[1..item.len() - 1].split('=').next().unwrap();
                names.split('|').any(|n| n == long)
            });
            assert!(listed, "{tool}: {long} is in --help but not in --usage");
        }
    }
}
