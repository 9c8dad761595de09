//! `--usage`, as popt prints it for the C tools: every option in brackets (`[-q|--queue=queue]`,
//! `[--ssl]`), the short flags first as one cluster (`[-dxA?]`), wrapped at popt's width.
//!
//! The options come from the tool's clap definition, as `--help` does: their names, whether they
//! take a value, our own options and their value names. popt knows three things clap cannot
//! hold, which only the C tools' option tables can give and which scripts and people see: the
//! order of the C tool's options, popt's text for each value (its argDescrip: `amqp://...`,
//! `routing key`), and which flags popt lists in the cluster (POPT_ARG_NONE ones, not
//! POPT_ARG_VAL ones). `C_TOOLS` holds those tables, as rabbitmq-c 0.11 declares them. The C
//! tool's options come first, in its order and words, then ours in clap's order.

use clap::{Arg, Command};

/// How a C tool's popt table declares one of its options.
#[derive(Clone, Copy, Debug)]
enum Popt {
    /// POPT_ARG_NONE: a flag, listed in the leading cluster when it has a short name.
    Flag,
    /// POPT_ARG_VAL: a flag as well, but popt leaves it out of the cluster.
    Val,
    /// An option with a value, and popt's text for it (argDescrip).
    Arg(&'static str),
}
use Popt::{Arg as Value, Flag, Val};

/// A C tool's option, by long name, as its popt table declares it.
type Entry = (&'static str, Popt);

/// rabbitmq-c's `connect_options`, which every C tool includes first.
const CONNECTION: &[Entry] = &[
    ("url", Value("amqp://...")),
    ("server", Value("hostname")),
    ("port", Value("port")),
    ("vhost", Value("vhost")),
    ("username", Value("username")),
    ("password", Value("password")),
    ("heartbeat", Value("heartbeat")),
    ("authfile", Value("file")),
    ("ssl", Flag),
    ("cacert", Value("cacert.pem")),
    ("key", Value("key.pem")),
    ("cert", Value("cert.pem")),
];

/// popt's `POPT_AUTOHELP`, which every C tool puts last.
const AUTOHELP: &[Entry] = &[("help", Flag), ("usage", Flag)];

/// A C tool's own options, between the connection and the help options.
struct CTool {
    name: &'static str,
    options: &'static [Entry],
    /// What popt prints after the options (poptSetOtherOptionHelp).
    other_help: &'static str,
}

/// What the C tools' usage ends with, unless they say otherwise.
const OTHER_HELP: &str = "[OPTIONS]...";

const C_TOOLS: &[CTool] = &[
    CTool {
        name: "amqp-publish",
        options: &[
            ("exchange", Value("exchange")),
            ("routing-key", Value("routing key")),
            ("persistent", Val),
            ("content-type", Value("content type")),
            ("reply-to", Value("reply to")),
            ("line-buffered", Val),
            ("content-encoding", Value("content encoding")),
            ("header", Value("\"key: value\"")),
            ("body", Value("body")),
        ],
        other_help: OTHER_HELP,
    },
    CTool {
        name: "amqp-consume",
        options: &[
            ("queue", Value("queue")),
            ("exchange", Value("exchange")),
            ("routing-key", Value("routing key")),
            ("declare", Flag),
            ("exclusive", Flag),
            ("no-ack", Flag),
            ("count", Value("limit")),
            ("prefetch-count", Value("limit")),
        ],
        other_help: "[OPTIONS]... <command> <args>",
    },
    CTool {
        name: "amqp-get",
        options: &[("queue", Value("queue"))],
        other_help: OTHER_HELP,
    },
    CTool {
        name: "amqp-declare-queue",
        options: &[("queue", Value("queue")), ("durable", Val)],
        other_help: OTHER_HELP,
    },
    CTool {
        // The C tool also lists `-u` for --if-unused, where popt always takes `-u` for --url;
        // ours has no short form for it, so its usage says `[--if-unused]`.
        name: "amqp-delete-queue",
        options: &[
            ("queue", Value("queue")),
            ("if-unused", Val),
            ("if-empty", Val),
        ],
        other_help: OTHER_HELP,
    },
];

/// The usage text (without the final newline) of `cmd`, the clap command of `tool` (its crate
/// name, which picks the C tool's table), started as `program`, for lines of `width` columns.
pub(crate) fn render(cmd: &Command, tool: &str, program: &str, width: usize) -> String {
    let c_tool = C_TOOLS.iter().find(|t| t.name == tool);
    let own = c_tool.map_or(&[][..], |t| t.options);
    let visible: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .collect();

    let mut items = Vec::new();
    let mut listed = Vec::new();
    for (long, popt) in CONNECTION.iter().chain(own).chain(AUTOHELP) {
        if let Some(arg) = visible.iter().find(|a| a.get_long() == Some(long)) {
            items.push(item(arg, Some(*popt)));
            listed.push(arg.get_id());
        }
    }
    for arg in &visible {
        if !listed.contains(&arg.get_id()) {
            items.push(item(arg, None));
        }
    }

    let mut cluster = String::new();
    for c in items.iter().filter_map(|i| i.cluster) {
        if !cluster.contains(c) {
            cluster.push(c);
        }
    }
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let other_help = c_tool.map_or(OTHER_HELP, |t| t.other_help);
    layout(program, &cluster, &texts, other_help, width)
}

/// One option as the usage shows it.
struct Item {
    /// What goes between the brackets: `-q|--queue=queue`.
    text: String,
    /// The short name, when the option also belongs in the leading cluster.
    cluster: Option<char>,
}

/// `popt` is the C tool's declaration of the option, `None` for one only we have.
fn item(arg: &Arg, popt: Option<Popt>) -> Item {
    let takes_value = arg.get_action().takes_values();
    let short = arg.get_short();
    let mut text = String::new();
    if let Some(c) = short {
        text.push('-');
        text.push(c);
    }
    if let Some(long) = arg.get_long() {
        if short.is_some() {
            text.push('|');
        }
        text.push_str("--");
        text.push_str(long);
    }
    if takes_value {
        let value = match popt {
            Some(Value(descrip)) => descrip.to_string(),
            _ => value_text(arg),
        };
        // popt's rule: a description starting with one of these needs no '='.
        if !value.starts_with([' ', '=', '(']) {
            text.push('=');
        }
        text.push_str(&value);
    }
    let in_cluster = !takes_value
        && match popt {
            Some(popt) => matches!(popt, Flag),
            // Ours are declared as popt would declare a flag: POPT_ARG_NONE.
            None => true,
        };
    Item {
        text,
        cluster: short.filter(|_| in_cluster),
    }
}

/// Our own option's value: its choices when it has a fixed set (the usage has no other place
/// to show them), else its value name as --help shows it.
fn value_text(arg: &Arg) -> String {
    let choices: Vec<String> = if arg.is_hide_possible_values_set() {
        Vec::new()
    } else {
        arg.get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect()
    };
    if !choices.is_empty() {
        return choices.join("|");
    }
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => arg.get_id().as_str().to_uppercase(),
    }
}

/// Lays the usage out as popt's poptPrintUsage does, column counting included.
fn layout(program: &str, cluster: &str, items: &[&str], other_help: &str, width: usize) -> String {
    // Continuation lines start with this, and the next item's own " [" follows.
    const INDENT: &str = "\n       ";
    let mut out = String::from("Usage:");
    let mut cur = out.len();
    if !program.is_empty() {
        out.push(' ');
        out.push_str(program);
        cur += columns(program) + 1;
    }
    if !cluster.is_empty() {
        out.push_str(" [-");
        out.push_str(cluster);
        out.push(']');
        cur += columns(cluster) + 4;
    }
    for text in items {
        let len = columns(text) + 3;
        if cur + len > width {
            out.push_str(INDENT);
            cur = 7;
        }
        out.push_str(" [");
        out.push_str(text);
        out.push(']');
        // popt counts one column more than it prints for each option. Kept: it decides where
        // the lines break (amqp-declare-queue's last line holds only "[OPTIONS]...").
        cur += len + 1;
    }
    if !other_help.is_empty() {
        cur += columns(other_help) + 1;
        if cur > width {
            out.push_str(INDENT);
        }
        out.push(' ');
        out.push_str(other_help);
    }
    out
}

fn columns(s: &str) -> usize {
    s.chars().count()
}

/// popt's line width: 79 columns, or one less than the terminal's when stdout is a terminal
/// wider than that (and narrower than 256 columns).
pub(crate) fn line_width() -> usize {
    const DEFAULT: usize = 79;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to the pointer given, which points to `size`.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    let cols = usize::from(size.ws_col);
    if ok && cols > DEFAULT && cols < 256 {
        cols - 1
    } else {
        DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectionArgs, HelpArgs};
    use clap::{ArgAction, Args};

    /// A command with the shared options and `own` before them, as the tools declare theirs.
    fn tool(name: &'static str, own: Vec<Arg>) -> Command {
        let cmd = Command::new(name)
            .disable_help_flag(true)
            .disable_version_flag(true)
            .args(own);
        HelpArgs::augment_args(ConnectionArgs::augment_args(cmd))
    }

    fn value(long: &'static str, short: Option<char>, name: &'static str) -> Arg {
        Arg::new(long).long(long).short(short).value_name(name)
    }

    fn flag(long: &'static str, short: Option<char>) -> Arg {
        Arg::new(long)
            .long(long)
            .short(short)
            .action(ArgAction::SetTrue)
    }

    fn get() -> Command {
        tool(
            "amqp-get",
            vec![
                value("queue", Some('q'), "QUEUE"),
                value("secret", Some('S'), "S").hide(true),
                Arg::new("operands").num_args(0..).hide(true),
            ],
        )
    }

    #[test]
    fn amqp_get_is_the_c_tools_line_then_ours() {
        // The C tool's text up to [--usage], byte for byte (Debian's amqp-tools 0.11, piped).
        let c = "Usage: amqp-get [-?] [-u|--url=amqp://...] [-s|--server=hostname]\n        \
                 [--port=port] [--vhost=vhost] [--username=username]\n        \
                 [--password=password] [--heartbeat=heartbeat] [--authfile=file]\n        \
                 [--ssl] [--cacert=cacert.pem] [--key=key.pem] [--cert=cert.pem]\n        \
                 [-q|--queue=queue] [-?|--help] [--usage]";
        assert_eq!(
            render(&get(), "amqp-get", "amqp-get", 79),
            format!(
                "{c} [--connect-timeout=SECS]\n        [--no-default-cert-paths] \
                 [--insecure] [--version] [OPTIONS]..."
            )
        );
    }

    #[test]
    fn a_wider_terminal_gives_longer_lines() {
        // The C tool on a 120-column terminal (width 119).
        let c = "Usage: amqp-get [-?] [-u|--url=amqp://...] [-s|--server=hostname] \
                 [--port=port] [--vhost=vhost]\n        \
                 [--username=username] [--password=password] [--heartbeat=heartbeat] \
                 [--authfile=file] [--ssl]\n        \
                 [--cacert=cacert.pem] [--key=key.pem] [--cert=cert.pem] [-q|--queue=queue] \
                 [-?|--help] [--usage]";
        let ours = render(&get(), "amqp-get", "amqp-get", 119);
        assert!(ours.starts_with(&format!("{c}\n")), "{ours}");
    }

    #[test]
    fn cluster_holds_popt_flags_with_a_short_name_and_ours() {
        let cmd = tool(
            "amqp-consume",
            vec![
                value("queue", Some('q'), "QUEUE"),
                flag("declare", Some('d')),
                flag("exclusive", Some('x')),
                flag("no-ack", Some('A')),
                value("on-failure", None, "ACTION").value_parser(["hold", "requeue", "reject"]),
                flag("keep", Some('k')),
                Arg::new("command").num_args(0..),
            ],
        );
        let usage = render(&cmd, "amqp-consume", "amqp-consume", 79);
        assert!(
            usage.starts_with("Usage: amqp-consume [-dxA?k] [-u|"),
            "{usage}"
        );
        // Ours come after the C tool's help options; a fixed set of values is shown.
        let ours_start = usage.find("[--usage]").unwrap();
        for item in ["[--on-failure=hold|requeue|reject]", "[-k|--keep]"] {
            assert!(usage[ours_start..].contains(item), "{item} in {usage}");
        }
        assert!(usage.ends_with(" [OPTIONS]... <command> <args>"), "{usage}");
        assert!(
            !usage.contains("command]"),
            "positionals are not options: {usage}"
        );
    }

    #[test]
    fn popt_val_flags_stay_out_of_the_cluster() {
        let cmd = tool(
            "amqp-declare-queue",
            vec![
                value("queue", Some('q'), "QUEUE"),
                flag("durable", Some('d')),
            ],
        );
        let usage = render(&cmd, "amqp-declare-queue", "amqp-declare-queue", 79);
        assert!(
            usage.starts_with("Usage: amqp-declare-queue [-?] "),
            "{usage}"
        );
        assert!(usage.contains(" [-q|--queue=queue] [-d|--durable] [-?|--help]"));
    }

    #[test]
    fn a_c_option_without_its_short_name_is_shown_as_ours_is() {
        let cmd = tool(
            "amqp-delete-queue",
            vec![
                value("queue", Some('q'), "QUEUE"),
                flag("if-unused", None),
                flag("if-empty", Some('e')),
            ],
        );
        let usage = render(&cmd, "amqp-delete-queue", "amqp-delete-queue", 79);
        assert!(
            usage.contains("[-q|--queue=queue] [--if-unused] [-e|--if-empty] [-?|--help]"),
            "{usage}"
        );
    }

    #[test]
    fn hidden_options_and_aliases_are_not_listed() {
        // -h is a hidden alias of -?; --secret is hidden; operands are no options.
        let usage = render(&get(), "amqp-get", "amqp-get", 79);
        assert!(usage.starts_with("Usage: amqp-get [-?] [-u|"), "{usage}");
        assert!(!usage.contains("[-h") && !usage.contains("-S"), "{usage}");
        assert!(!usage.to_lowercase().contains("operands"), "{usage}");
    }

    #[test]
    fn another_tool_lists_its_options_in_clap_order_with_clap_value_names() {
        let cmd = Command::new("other").args([
            flag("all", Some('a')),
            value("name", Some('n'), "NAME"),
            Arg::new("size").long("size"),
            flag("quiet", None),
        ]);
        assert_eq!(
            render(&cmd, "other", "prog", 100),
            "Usage: prog [-a] [-a|--all] [-n|--name=NAME] [--size=SIZE] [--quiet] [OPTIONS]..."
        );
    }

    #[test]
    fn lines_break_where_popt_breaks_them() {
        // popt counts 1 column more than it prints per option: after "[ab]" the line is 31
        // columns long and popt counts 36, so "[abc]" would end at column 37 of 40 but popt
        // counts 42 and breaks the line.
        let items = ["aa", "bb", "cc", "dd", "ab", "abc", "x"];
        assert_eq!(
            layout("", "", &items, "", 40),
            "Usage: [aa] [bb] [cc] [dd] [ab]\n        [abc] [x]"
        );
        // The trailing text as well: "Usage: p [-ab] [x] END" is 22 columns, counted 23.
        assert_eq!(
            layout("p", "ab", &["x"], "END", 22),
            "Usage: p [-ab] [x]\n        END"
        );
        assert_eq!(
            layout("p", "ab", &["x"], "END", 23),
            "Usage: p [-ab] [x] END"
        );
        // No '=' before a description that starts with a space, '=' or '('.
        let cmd = Command::new("t").arg(Arg::new("n").long("n").value_name("(x)"));
        assert_eq!(render(&cmd, "t", "t", 79), "Usage: t [--n(x)] [OPTIONS]...");
    }
}
