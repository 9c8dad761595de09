#![no_main]
//! amqp_common::number::parse_c_int on any string, checked against i64 arithmetic.

use amqp_common::number::{parse_c_int, NumberError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_c_int(s) {
        Ok(v) => {
            // Whatever was accepted is a number that prints back to an accepted form.
            assert_eq!(parse_c_int(&v.to_string()), Ok(v));
        }
        Err(NumberError::OutOfRange) => {
            // Only well-formed numbers can be out of range: the trimmed text is all digits of
            // its base after the sign and prefix.
            let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
            let t = t.strip_prefix(['+', '-']).unwrap_or(t);
            assert!(
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b'x' || b == b'X'),
                "{s:?} out of range but not a number"
            );
        }
        Err(NumberError::Invalid) => {}
    }
});
