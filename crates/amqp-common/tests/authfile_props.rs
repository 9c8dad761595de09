#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report
//! Property tests: --authfile round-trips any user name and password of up to 117 bytes (the
//! C tools' 128-byte line buffer) and refuses 118, and no input panics the parser.

use amqp_common::authfile::{parse, AuthfileError, Credentials};
use proptest::prelude::*;

/// A value of exactly `len` bytes: random characters (multi-byte ones included, never a
/// newline) filled up with ASCII to the exact length.
fn value_of_len(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>().prop_filter("one line", |&c| c != '\n'), 0..40)
        .prop_map(move |chars| {
            let mut s = String::new();
            for c in chars {
                if s.len() + c.len_utf8() <= len {
                    s.push(c);
                }
            }
            while s.len() < len {
                s.push('a');
            }
            s
        })
}

fn value_up_to(max: usize) -> impl Strategy<Value = String> {
    (0..=max).prop_flat_map(value_of_len)
}

fn file(user: &str, password: &str) -> Vec<u8> {
    format!("username:{user}\npassword:{password}\n").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn round_trips_up_to_117_bytes(user in value_up_to(117), password in value_up_to(117)) {
        let want = Credentials { user: user.clone(), password: password.clone() };
        prop_assert_eq!(parse(&file(&user, &password)), Ok(want));
    }

    #[test]
    fn round_trips_at_exactly_117_bytes(user in value_of_len(117), password in value_of_len(117)) {
        prop_assert!(parse(&file(&user, &password)).is_ok());
    }

    #[test]
    fn refuses_118_bytes(short in value_up_to(117), long in value_of_len(118)) {
        prop_assert_eq!(parse(&file(&long, &short)), Err(AuthfileError::UsernameTooLong));
        prop_assert_eq!(parse(&file(&short, &long)), Err(AuthfileError::PasswordTooLong));
    }

    #[test]
    fn refuses_anything_after_the_password_line(
        user in value_up_to(20),
        password in value_up_to(20),
        extra in proptest::collection::vec(any::<u8>(), 1..20),
    ) {
        let mut bytes = file(&user, &password);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(parse(&bytes), Err(AuthfileError::TrailingData));
    }

    /// Any bytes: no panic, and whatever is accepted is exactly a well-formed file.
    #[test]
    fn any_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(c) = parse(&bytes) {
            prop_assert_eq!(file(&c.user, &c.password), bytes);
        }
    }

    /// Near-valid files (right prefixes, random bodies): same rule.
    #[test]
    fn near_valid_files_are_handled(
        a in proptest::collection::vec(any::<u8>(), 0..130),
        b in proptest::collection::vec(any::<u8>(), 0..130),
        nl in any::<bool>(),
    ) {
        let mut bytes = b"username:".to_vec();
        bytes.extend_from_slice(&a);
        bytes.extend_from_slice(b"\npassword:");
        bytes.extend_from_slice(&b);
        if nl {
            bytes.push(b'\n');
        }
        if let Ok(c) = parse(&bytes) {
            prop_assert_eq!(file(&c.user, &c.password), bytes);
        }
    }
}
