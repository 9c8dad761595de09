#![no_main]
//! amqp_common::authfile::parse on any bytes.

use amqp_common::authfile::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(creds) = parse(data) {
        // What parsed must be exactly the file that would be written for it.
        let rebuilt = format!("username:{}\npassword:{}\n", creds.user, creds.password);
        assert_eq!(rebuilt.as_bytes(), data);
        assert!(creds.user.len() <= 117 && creds.password.len() <= 117);
    }
});
