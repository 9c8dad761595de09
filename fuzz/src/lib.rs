//! Helpers shared by the fuzz targets.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Turns fuzz input into an argv: elements separated by NUL bytes (which a real argv cannot
/// hold either), preceded by the program name. Elements need not be UTF-8, as in a real argv.
pub fn argv(program: &str, data: &[u8]) -> Vec<OsString> {
    let mut argv = vec![OsString::from(program)];
    if !data.is_empty() {
        argv.extend(
            data.split(|&b| b == 0)
                .map(|a| OsString::from_vec(a.to_vec())),
        );
    }
    argv
}

/// Resolves the connection options as a tool would after parsing, minus the one step that
/// touches the file system: --authfile is dropped so the fuzzer cannot make us read its input
/// as a path (/dev/zero, a FIFO). AMQP_URL is fuzzed through --url instead of the environment.
pub fn resolve(conn: &amqp_common::ConnectionArgs) {
    let mut conn = conn.clone();
    conn.authfile = None;
    if let Ok(addresses) = conn.resolve(None) {
        // The endpoints' pieces must be what a URL can carry.
        addresses.iter().for_each(|a| {
            let _ = a.endpoint.target();
        });
    }
}
