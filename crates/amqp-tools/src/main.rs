//! The five tools in one binary, picked by the name it is started under, as busybox does.
//!
//! Each tool carries the whole AMQP client, TLS and (in the static build) OpenSSL: five
//! separate static binaries weigh about 36 MB, this one about a fifth of that. The static build
//! (scripts/build-static), the FROM scratch image and the release tarball ship it with the five
//! names as symbolic links to it. `amqp-tools TOOL ARGS...` runs a tool without a link.

use std::ffi::OsString;
use std::path::Path;

// As in amqp-publish and amqp-consume: the AMQP client's small allocations per message cost
// musl's allocator half the CPU of a bulk publish.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOOLS: [(&str, fn() -> !); 5] = [
    ("amqp-publish", amqp_publish::main),
    ("amqp-consume", amqp_consume::main),
    ("amqp-get", amqp_get::main),
    ("amqp-declare-queue", amqp_declare_queue::main),
    ("amqp-delete-queue", amqp_delete_queue::main),
];

fn tool(name: &OsString) -> Option<fn() -> !> {
    let name = Path::new(name).file_name()?;
    TOOLS
        .iter()
        .find(|(tool, _)| name == *tool)
        .map(|(_, main)| *main)
}

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let Some(main) = argv.first().and_then(tool) {
        main();
    }
    // Started as itself: the tool is the first argument.
    if let Some(main) = argv.get(1).and_then(tool) {
        amqp_common::cli::set_args(argv[1..].to_vec());
        main();
    }
    let names: Vec<&str> = TOOLS.iter().map(|(name, _)| *name).collect();
    let usage = format!(
        "Usage: amqp-tools TOOL [OPTION...], or run it through a link named after the tool\n\
         (ln -s amqp-tools amqp-get). TOOL is one of: {}.",
        names.join(", ")
    );
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("--help" | "-h" | "-?") => amqp_common::cli::print_text(&format!("{usage}\n")),
        Some(other) => {
            eprintln!("amqp-tools: unknown tool '{other}'\n{usage}");
            std::process::exit(amqp_common::error::FAILURE)
        }
        None => {
            eprintln!("{usage}");
            std::process::exit(amqp_common::error::FAILURE)
        }
    }
}

// amqp-publish tells a closed stdin from an empty one by looking before the Rust runtime
// reopens it as /dev/null; harmless for the other tools.
amqp_publish::record_stdin_state_before_main!();
