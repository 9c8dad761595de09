#![no_main]
//! The whole command-line parse of amqp-get (popt rules on clap), then the checks the tool runs
//! before connecting. Input: argv elements separated by NUL bytes.

use amqp_common::cli::parse_from;
use amqp_common::ParseOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let argv = amqp_tools_fuzz::argv("amqp-get", data);
    let parsed = parse_from::<amqp_get::Args>(argv, ParseOptions::default());
    if let Ok(args) = parsed {
        amqp_tools_fuzz::resolve(&args.conn);
    }
});
