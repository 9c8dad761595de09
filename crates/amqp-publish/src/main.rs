fn main() {
    amqp_common::cli::main("amqp-publish", amqp_publish::run)
}

/// Runs before the Rust runtime starts (it reopens a closed stdin as /dev/null), so that a
/// closed stdin can still be told apart from an empty one.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[used]
#[link_section = ".init_array"]
static RECORD_STDIN_STATE: extern "C" fn() = record_stdin_state;

#[cfg(any(target_os = "linux", target_os = "android"))]
extern "C" fn record_stdin_state() {
    amqp_publish::record_stdin_state_at_startup();
}
