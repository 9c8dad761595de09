#![no_main]
//! amqp-publish's `-H "key: value"` parser (amqp_publish::parse_header).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match amqp_publish::parse_header(s) {
        Ok((key, value)) => {
            assert!(!key.contains(':'), "the key ends at the first ':'");
            assert!(s.starts_with(&key));
            assert!(s.ends_with(&value));
            assert!(!value.starts_with(' '));
        }
        Err(e) => {
            assert!(!s.contains(':'), "{s:?} has a ':' but was refused: {e}");
            assert!(!e.to_string().contains('\n') || s.contains('\n'));
        }
    }
});
