#![no_main]
//! amqp_common::uri::parse and mask_password on any string.

use amqp_common::uri::{mask_password, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(input);
    let masked = mask_password(input);
    match parsed {
        Ok(uri) => {
            // Masking changes the password only: the rest of a valid URI reads the same, and a
            // password that was given is gone ("guest" is also the default, when none is).
            let again = parse(&masked).expect("a masked valid URI stays valid");
            assert_eq!(again.host, uri.host);
            assert_eq!(again.port, uri.port);
            assert_eq!(again.vhost, uri.vhost);
            assert_eq!(again.user, uri.user);
            assert_eq!(again.tls, uri.tls);
            assert!(
                again.password == "****" || (masked == input && uri.password == "guest"),
                "mask_password({input:?}) = {masked:?} keeps the password {:?}",
                uri.password
            );
        }
        Err(_) => {
            // Whatever sits where a password would be must not survive masking. Only
            // distinctive candidates are checked: one that occurs elsewhere in the input, or
            // holds '@', ':' or '*', can show up in the output without being the password (the
            // mask itself is ":****"; found by this target on "amp:****@[::1:]").
            if let Some(secret) = password_region(input) {
                if secret.len() >= 4
                    && input.matches(secret).count() == 1
                    && !secret.contains(['@', ':', '*'])
                {
                    assert!(
                        !masked.contains(secret),
                        "mask_password({input:?}) = {masked:?} keeps {secret:?}"
                    );
                }
            }
        }
    }
});

/// Where a password may have been typed in a URI that does not parse: after the first ':' of the user info, up to the last
/// '@' (what a user means by "user:password@host", even with raw '/', '?' or '#' in it).
fn password_region(input: &str) -> Option<&str> {
    let rest = input.split_once("://").map_or(input, |(_, r)| r);
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(&rest[colon + 1..at])
}
