//! Command-line parsing with clap, made to follow the C tools' (popt) rules where scripts can
//! tell the difference: help and usage on stdout with status 0, every other parse error a
//! one-line message with status 1, `POSIXLY_CORRECT` ending options at the first operand.

use crate::error::{Error, Result};
use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::sync::OnceLock;

mod usage;

static PROGRAM: OnceLock<String> = OnceLock::new();
static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// Makes the tools read `argv` instead of the process's arguments: the multi-call binary,
/// started as `amqp-tools amqp-get -q Q`, hands on `amqp-get -q Q`. Call before `main`.
pub fn set_args(argv: Vec<OsString>) {
    let _ = ARGS.set(argv);
}

/// The tool's arguments, argv[0] first.
fn args_os() -> Vec<OsString> {
    match ARGS.get() {
        Some(argv) => argv.clone(),
        None => std::env::args_os().collect(),
    }
}

/// The name the tool was started as (basename of argv[0]), for messages and usage lines.
pub fn program_name() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("amqp-tools")
}

fn set_program_name(default: &str) {
    let name = args_os()
        .into_iter()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default.to_string());
    let _ = PROGRAM.set(name);
}

/// How a tool's command line is read.
#[derive(Default, Clone, Copy)]
pub struct ParseOptions {
    /// The positional argument (by id) that holds a command and its arguments: with
    /// POSIXLY_CORRECT set, options end at its first word.
    pub command_arg: Option<&'static str>,
}

/// Parses the process's arguments. `--help`, `-?`, `--usage` and `--version` print to stdout and
/// end the tool with status 0 (returned as `Error::Status(0)`).
pub fn parse<T: CommandFactory + FromArgMatches>(opts: ParseOptions) -> Result<T> {
    parse_from(args_os(), opts)
}

pub fn parse_from<T: CommandFactory + FromArgMatches>(
    argv: Vec<OsString>,
    opts: ParseOptions,
) -> Result<T> {
    let name = program_name();
    let cmd = T::command();
    // The crate's name, whatever the binary is called: it picks the C tool --usage follows.
    let tool = cmd.get_name().to_string();
    let mut cmd = cmd.name(name).bin_name(name);
    if let Some(id) = opts.command_arg {
        if std::env::var_os("POSIXLY_CORRECT").is_some() {
            cmd = cmd.mut_arg(id, |a| a.trailing_var_arg(true).allow_hyphen_values(true));
        }
    }
    let matches = match cmd.clone().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind::*;
            return match e.kind() {
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => {
                    print_text(&e.render().to_string());
                    Err(Error::Status(0))
                }
                _ if usage_came_first(&argv, &e) => {
                    print_usage(&cmd, &tool);
                    Err(Error::Status(0))
                }
                _ => Err(Error::usage(format!(
                    "{} (see '{name} --help')",
                    first_line(&e.render().to_string())
                ))),
            };
        }
    };
    if matches.get_flag("usage") {
        print_usage(&cmd, &tool);
        return Err(Error::Status(0));
    }
    T::from_arg_matches(&matches).map_err(|e| Error::usage(first_line(&e.render().to_string())))
}

/// Every option, in brackets, as popt's --usage lists the C tool's (see `usage`).
fn print_usage(cmd: &clap::Command, tool: &str) {
    let text = usage::render(cmd, tool, program_name(), usage::line_width());
    print_text(&format!("{text}\n"));
}

/// Help, usage and version text. A reader that goes away (`--help | head -1`) ends the tool by
/// SIGPIPE, as it ends the C tools, rather than as a failure of the tool.
pub fn print_text(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            restore_sigpipe();
            // SAFETY: raise has no preconditions; with the default action it ends the process.
            unsafe {
                libc::raise(libc::SIGPIPE);
            }
        }
    }
}

/// popt acts on `--usage` as soon as it reaches it, so an error later on the line does not
/// matter; clap reports the error, so look whether `--usage` stood before the offending word.
fn usage_came_first(argv: &[OsString], e: &clap::Error) -> bool {
    let offending = e
        .get(clap::error::ContextKind::InvalidArg)
        .map(|v| v.to_string())
        .unwrap_or_default();
    for arg in argv.iter().skip(1) {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            return false;
        }
        if arg == "--usage" {
            return true;
        }
        if !offending.is_empty() && offending.split(' ').next() == Some(arg.as_ref()) {
            return false;
        }
    }
    false
}

fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or("invalid command line");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Runs a tool: sets the program name, calls `run`, reports any error as one line and exits
/// with its status.
pub fn main(default_name: &str, run: impl FnOnce() -> Result<()>) -> ! {
    set_program_name(default_name);
    // A panic is a bug (ours, or in a library thread such as amiquip's I/O loop): report it as
    // one line, without a backtrace, and fail with the ordinary error status.
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "{}: internal error{place}: {payload} (please report this)",
            program_name()
        );
    }));
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => crate::error::report(program_name(), &e),
        Err(_) => crate::error::FAILURE,
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Everything the tool had to do is done and its output flushed (stderr is unbuffered):
    // leave without the exit-time handlers, which would only hand memory back to the system
    // (the allocator's purge, OpenSSL's cleanup) on a short-lived process's way out.
    // SAFETY: _exit has no preconditions; nothing after this point needs to run.
    unsafe { libc::_exit(code) }
}

/// The help flags every tool has: `-?`/`--help` (and `-h`), `--usage`, `--version`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Help options")]
pub struct HelpArgs {
    /// Show this help and exit
    #[arg(short = '?', long = "help", short_alias = 'h', action = clap::ArgAction::HelpLong)]
    pub help: Option<bool>,

    /// Show every option in brief and exit
    #[arg(long = "usage", action = clap::ArgAction::SetTrue)]
    pub usage: bool,

    /// Show the version and exit
    #[arg(long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,
}

/// Operands are refused after the whole line is parsed (so `--help` later on still works).
pub fn refuse_operands(operands: &[String]) -> Result<()> {
    match operands.first() {
        Some(op) => Err(Error::usage(format!(
            "unexpected argument '{op}': this tool takes no operands (see '{} --help')",
            program_name()
        ))),
        None => Ok(()),
    }
}

/// Gives SIGPIPE back its default action (Rust ignores it), for tools whose only output is
/// stdout and that should end quietly when the reader goes away, as the C tools do.
pub fn restore_sigpipe() {
    // SAFETY: signal() with SIG_DFL installs no handler code; it runs before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Writes one line (the tools' whole stdout) and flushes it, so that a full disk or a closed
/// pipe is reported before the tool says it succeeded.
pub fn print_line(line: &str, what: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(format!("cannot write {what} to stdout"), &e))
}
