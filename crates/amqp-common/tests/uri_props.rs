#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report
//! Property tests pinning the AMQP URI rules (rabbitmq-c's `amqp_parse_url`) and the promise of
//! `mask_password`: a password in a URI never reaches an error message.

use amqp_common::uri::{mask_password, parse, AmqpUri};
use proptest::prelude::*;

/// Characters that end a token in rabbitmq-c's parser, and '%' which starts an escape: these
/// must be percent-encoded to appear inside a value.
const SPECIAL: &[char] = &[':', '@', '/', '?', '#', '[', ']', '%'];

/// A value character and whether to percent-encode it even though it need not be.
fn value_char() -> impl Strategy<Value = (char, bool)> {
    let ch = prop_oneof![
        4 => proptest::char::range('\u{1}', '\u{7f}'),
        1 => any::<char>().prop_filter("NUL cannot be carried", |&c| c != '\0'),
    ];
    (ch, any::<bool>())
}

fn value() -> impl Strategy<Value = Vec<(char, bool)>> {
    proptest::collection::vec(value_char(), 0..12)
}

fn decoded(v: &[(char, bool)]) -> String {
    v.iter().map(|&(c, _)| c).collect()
}

/// Percent-encodes what must be, and the ASCII characters the flag asks for (decoding accepts
/// only 0x01..=0x7f, so non-ASCII characters stay raw).
fn encoded(v: &[(char, bool)]) -> String {
    let mut out = String::new();
    for &(c, force) in v {
        if SPECIAL.contains(&c) || (force && c.is_ascii()) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Creds {
    None,
    User(Vec<(char, bool)>),
    UserPassword(Vec<(char, bool)>, Vec<(char, bool)>),
}

#[derive(Debug, Clone)]
enum Host {
    Name(Vec<(char, bool)>),
    /// An IPv6 literal in brackets (hex digits and colons, raw).
    V6(String),
}

#[derive(Debug, Clone)]
struct Parts {
    tls: bool,
    creds: Creds,
    host: Host,
    port: Option<u16>,
    vhost: Option<Vec<(char, bool)>>,
}

fn parts() -> impl Strategy<Value = Parts> {
    let creds = prop_oneof![
        Just(Creds::None),
        value().prop_map(Creds::User),
        (value(), value()).prop_map(|(u, p)| Creds::UserPassword(u, p)),
    ];
    let host = prop_oneof![
        3 => proptest::collection::vec(value_char(), 1..12).prop_map(Host::Name),
        // '@' is data inside the brackets, and must not be taken for the end of the user info.
        1 => "[0-9a-f@]{0,4}(:[0-9a-f@]{0,4}){2,7}".prop_map(Host::V6),
    ];
    (
        any::<bool>(),
        creds,
        host,
        proptest::option::of(any::<u16>()),
        proptest::option::of(value()),
    )
        .prop_map(|(tls, creds, host, port, vhost)| Parts {
            tls,
            creds,
            host,
            port,
            vhost,
        })
}

/// The URI text for `parts`, with `password_text` standing in for the encoded password.
fn build(p: &Parts, password_text: Option<&str>) -> String {
    let mut s = String::from(if p.tls { "amqps://" } else { "amqp://" });
    match &p.creds {
        Creds::None => {}
        Creds::User(u) => {
            s += &encoded(u);
            s.push('@');
        }
        Creds::UserPassword(u, pw) => {
            s += &encoded(u);
            s.push(':');
            s += &password_text.map_or_else(|| encoded(pw), str::to_string);
            s.push('@');
        }
    }
    match &p.host {
        Host::Name(h) => s += &encoded(h),
        Host::V6(h) => s += &format!("[{h}]"),
    }
    if let Some(port) = p.port {
        s += &format!(":{port}");
    }
    if let Some(v) = &p.vhost {
        s.push('/');
        s += &encoded(v);
    }
    s
}

fn expected(p: &Parts) -> AmqpUri {
    let (user, password) = match &p.creds {
        Creds::None => ("guest".to_string(), "guest".to_string()),
        Creds::User(u) => (decoded(u), "guest".to_string()),
        Creds::UserPassword(u, pw) => (decoded(u), decoded(pw)),
    };
    AmqpUri {
        tls: p.tls,
        user,
        password,
        host: match &p.host {
            Host::Name(h) => decoded(h),
            Host::V6(h) => h.clone(),
        },
        port: p.port.unwrap_or(if p.tls { 5671 } else { 5672 }),
        vhost: p.vhost.as_deref().map_or_else(|| "/".to_string(), decoded),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// A URI built from random parts, percent-encoded where needed, parses back to them.
    #[test]
    fn built_uri_parses_back(p in parts()) {
        let s = build(&p, None);
        prop_assert_eq!(parse(&s), Ok(expected(&p)), "{}", s);
    }

    /// Masking a valid URI replaces exactly the password and nothing else.
    #[test]
    fn mask_replaces_exactly_the_password(p in parts()) {
        let s = build(&p, None);
        let want = match p.creds {
            Creds::UserPassword(..) => build(&p, Some("****")),
            _ => s.clone(),
        };
        prop_assert_eq!(mask_password(&s), want);
    }

    /// Whatever surrounds it, valid or not, a password typed between "user:" and "@" never
    /// survives masking, even with raw delimiters inside it.
    #[test]
    fn mask_never_leaves_the_password(
        scheme in prop_oneof![Just("amqp://"), Just("amqps://"), Just("amqp:/"), Just("http://"), Just("")],
        // A user part that starts with '[' makes "[:...@]" a valid IPv6 host literal: there is
        // no password in it to hide.
        user in "[^:]{0,8}".prop_filter("no scheme separator, no host literal", |u| {
            !u.contains("://") && !u.starts_with('[')
        }),
        noise in ".{0,8}",
        rest in ".{0,16}",
    ) {
        let secret = format!("Sup3r{noise}S3cret");
        let s = format!("{scheme}{user}:{secret}@{rest}");
        let masked = mask_password(&s);
        prop_assert!(!masked.contains(&secret), "{:?} -> {:?}", s, masked);
        prop_assert!(!masked.contains("Sup3r"), "{:?} -> {:?}", s, masked);
    }

    /// No input panics the parser or the masker, and a masked URI that was valid stays valid.
    #[test]
    fn any_string_is_handled(s in "(amqps?://)?.{0,40}") {
        let masked = mask_password(&s);
        if let Ok(uri) = parse(&s) {
            let again = parse(&masked);
            prop_assert!(again.is_ok(), "{:?} -> {:?}", s, masked);
            let again = again.unwrap();
            prop_assert_eq!((again.host, again.port, again.vhost), (uri.host, uri.port, uri.vhost));
        }
    }

    /// A decoded delimiter never acts as one: a password of only delimiters stays whole.
    #[test]
    fn decoded_delimiters_stay_data(
        pw in proptest::collection::vec(proptest::sample::select(SPECIAL.to_vec()), 1..10),
    ) {
        let pw: String = pw.into_iter().collect();
        let enc: String = pw.chars().map(|c| format!("%{:02x}", c as u32)).collect();
        let uri = parse(&format!("amqp://u:{enc}@h/v"));
        prop_assert_eq!(uri.map(|u| u.password), Ok(pw));
    }
}

/// Inputs found by fuzzing (fuzz/corpus/uri/regression-*), kept as regression tests.
#[test]
fn fuzz_regressions() {
    // The password region is the mask text itself: masking leaves it as it is.
    assert_eq!(mask_password("amp:****@[::1:]"), "amp:****@[::1:]");
    assert!(parse("amp:****@[::1:]").is_err());
    // A raw '@' inside an IPv6 literal is accepted (as by rabbitmq-c) and is not the end of
    // the user info: masking keeps the URI valid and the host intact.
    let s = "amqp://u:p%3Aq@[::1a@:7.]";
    assert_eq!(parse(s).map(|u| u.host), Ok("::1a@:7.".to_string()));
    assert_eq!(mask_password(s), "amqp://u:****@[::1a@:7.]");
    // Brackets holding '@' and ':' and no user info at all: nothing to mask.
    let s = "amqp://[\0\0\u{11}@aa\0:\0\u{11}\0\0\0\0\0@\0\0\0]";
    assert!(parse(s).is_ok());
    assert_eq!(mask_password(s), s);
}
