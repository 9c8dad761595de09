//! AMQP URIs, read by the rules of rabbitmq-c's `amqp_parse_url` (not RFC 3986 and not the `url`
//! crate), because scripts depend on its quirks: a bare trailing `/` is the empty vhost, an
//! empty host is `localhost`, a decoded `%3A` never splits user from password, and query
//! strings are refused.

/// The parts of an `amqp://` or `amqps://` URI.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUri {
    pub tls: bool,
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub vhost: String,
}

impl std::fmt::Debug for AmqpUri {
    /// Without the password (see `options::HIDDEN`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpUri")
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &crate::options::HIDDEN)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .finish()
    }
}

impl Default for AmqpUri {
    fn default() -> Self {
        AmqpUri {
            tls: false,
            user: "guest".into(),
            password: "guest".into(),
            host: "localhost".into(),
            port: 5672,
            vhost: "/".into(),
        }
    }
}

/// The URI is not one the tools accept. Carries no detail on purpose: the caller prints the
/// URI with its password masked, and the rules are the ones in the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError;

/// Parses an AMQP URI. A line-by-line port of rabbitmq-c's `amqp_parse_url`, so that every URI a
/// script passes is read the same way (the table in the README lists the cases).
pub fn parse(input: &str) -> Result<AmqpUri, UriError> {
    let mut uri = AmqpUri::default();
    let rest = if let Some(rest) = input.strip_prefix("amqp://") {
        rest
    } else if let Some(rest) = input.strip_prefix("amqps://") {
        uri.tls = true;
        uri.port = 5671;
        rest
    } else {
        return Err(UriError);
    };
    let mut cursor = Cursor {
        s: rest.as_bytes(),
        pos: 0,
    };

    let mut host = cursor.token(true)?;
    let mut port: Option<Vec<u8>> = None;
    if host.delim == Some(b':') {
        // Either host:port or user:password@; the '@' tells which.
        let second = cursor.token(true)?;
        port = Some(second.text.clone());
        host.delim = second.delim;
        if second.delim == Some(b'@') {
            uri.user = text(host.text)?;
            uri.password = text(second.text)?;
            port = None;
            host = cursor.token(true)?;
        }
    } else if host.delim == Some(b'@') {
        uri.user = text(host.text)?;
        host = cursor.token(true)?;
    }

    let mut delim = host.delim;
    if delim == Some(b'[') {
        // An IPv6 literal: the bracket must open the host part.
        if !host.text.is_empty() {
            return Err(UriError);
        }
        let literal = cursor.token(false)?;
        if literal.delim != Some(b']') {
            return Err(UriError);
        }
        uri.host = text(literal.text)?;
        let after = cursor.token(true)?;
        if !after.text.is_empty() {
            return Err(UriError);
        }
        delim = after.delim;
    } else if !host.text.is_empty() {
        uri.host = text(host.text)?;
    }

    if delim == Some(b':') {
        let p = cursor.token(true)?;
        port = Some(p.text);
        delim = p.delim;
    }
    if let Some(p) = port {
        uri.port = parse_port(&p)?;
    }

    match delim {
        None => Ok(uri),
        Some(b'/') => {
            let vhost = cursor.token(true)?;
            if vhost.delim.is_some() {
                return Err(UriError);
            }
            uri.vhost = text(vhost.text)?;
            Ok(uri)
        }
        Some(_) => Err(UriError),
    }
}

struct Token {
    text: Vec<u8>,
    /// The raw delimiter that ended the token; `None` at the end of the input.
    delim: Option<u8>,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// rabbitmq-c's `find_delim`: reads up to a raw delimiter, percent-decoding on the way, so
    /// that a decoded character never acts as a delimiter.
    fn token(&mut self, colon_and_at_are_delims: bool) -> Result<Token, UriError> {
        let mut text = Vec::new();
        loop {
            let Some(&ch) = self.s.get(self.pos) else {
                return Ok(Token { text, delim: None });
            };
            self.pos += 1;
            match ch {
                b':' | b'@' if !colon_and_at_are_delims => text.push(ch),
                b':' | b'@' | b'/' | b'?' | b'#' | b'[' | b']' => {
                    return Ok(Token {
                        text,
                        delim: Some(ch),
                    })
                }
                b'%' => {
                    let hex = self.s.get(self.pos..self.pos + 2).ok_or(UriError)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(UriError);
                    }
                    let value = hex_value(hex[0]) * 16 + hex_value(hex[1]);
                    // rabbitmq-c refuses anything above CHAR_MAX; a NUL would end its string.
                    if value > 0x7f || value == 0 {
                        return Err(UriError);
                    }
                    text.push(value);
                    self.pos += 2;
                }
                _ => text.push(ch),
            }
        }
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

fn text(bytes: Vec<u8>) -> Result<String, UriError> {
    // Raw bytes come from a &str and decoded ones are ASCII, so this cannot fail in practice.
    String::from_utf8(bytes).map_err(|_| UriError)
}

/// Base-10 `strtol` as rabbitmq-c uses it: blanks and a sign allowed, then digits, nothing
/// after them, and a value from 0 to 65535.
fn parse_port(s: &[u8]) -> Result<u16, UriError> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(UriError);
    }
    let mut value: u32 = 0;
    for &d in digits {
        value = value.saturating_mul(10).saturating_add(u32::from(d - b'0'));
    }
    if negative && value != 0 {
        return Err(UriError);
    }
    u16::try_from(value).map_err(|_| UriError)
}

/// The URI as it may appear in an error: the password, if any, replaced by `****`.
///
/// Used on URIs that failed to parse too, so it must not rely on them being well formed.
/// In a valid URI the user info holds no raw '@' or '[', so it ends at the first '@' unless
/// that lies inside the host's brackets (`amqp://[a@b]` has no user info). In an invalid one a
/// raw '/', '?', '#', '[' or '@' may have been typed inside the password, so the user info runs
/// to the last '@'. The password starts after the first ':' of the user info. Without "://"
/// (a mistyped scheme) the whole input is searched, which may mask more than the password but
/// never less.
pub fn mask_password(input: &str) -> String {
    let valid = parse(input).is_ok();
    // Only a real amqp:// or amqps:// prefix is skipped; in anything else the first ':' may
    // already open the password, and masking a little too much is the safe side.
    let start = ["amqp://", "amqps://"]
        .iter()
        .find(|p| input.starts_with(*p))
        .map_or(0, |p| p.len());
    let after = &input[start..];
    let at = if valid {
        match (after.find('@'), after.find('[')) {
            (Some(at), Some(bracket)) if bracket < at => None,
            (at, _) => at,
        }
    } else {
        after.rfind('@')
    };
    let Some(at) = at else {
        return input.to_string();
    };
    let Some(colon) = after[..at].find(':') else {
        return input.to_string();
    };
    format!("{}:****{}", &input[..start + colon], &after[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> AmqpUri {
        parse(s).unwrap_or_else(|_| panic!("{s} should parse"))
    }

    fn uri(user: &str, password: &str, host: &str, port: u16, vhost: &str) -> AmqpUri {
        AmqpUri {
            tls: false,
            user: user.into(),
            password: password.into(),
            host: host.into(),
            port,
            vhost: vhost.into(),
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            ok("amqp://127.0.0.1"),
            uri("guest", "guest", "127.0.0.1", 5672, "/")
        );
        assert_eq!(ok("amqp://127.0.0.1/%2f").vhost, "/");
        assert_eq!(ok("amqp://127.0.0.1/%2F").vhost, "/");
        assert_eq!(ok("amqp://"), AmqpUri::default());
        assert_eq!(ok("amqp://:5672"), AmqpUri::default());
        assert_eq!(ok("amqp://guest:guest@"), AmqpUri::default());
        assert_eq!(ok("amqp://guest@127.0.0.1").password, "guest");
        assert_eq!(
            ok("amqp://gu%65st:gu%65st@127.0.0.1"),
            uri("guest", "guest", "127.0.0.1", 5672, "/")
        );
        assert_eq!(ok("amqp://[::1]").host, "::1");
        assert_eq!(ok("amqp://[::1]:1").port, 1);
        assert_eq!(ok("amqp://u:p@[::1]:7/v"), uri("u", "p", "::1", 7, "v"));
        assert_eq!(ok("amqp://127.0.0.1:+5672").port, 5672);
        assert_eq!(ok("amqp://127.0.0.1:05672").port, 5672);
        assert_eq!(ok("amqp://127.0.0.1/").vhost, "");
        assert_eq!(ok("amqp://127.0.0.1/spec%20x").vhost, "spec x");
        assert_eq!(ok("amqp://127.0.0.1/spec x").vhost, "spec x");
        assert_eq!(ok("amqp://@127.0.0.1").user, "");
        assert_eq!(ok("amqp://@127.0.0.1").password, "guest");
        assert_eq!(
            ok("amqp://:@127.0.0.1"),
            uri("", "", "127.0.0.1", 5672, "/")
        );
        assert_eq!(ok("amqp://guest:@127.0.0.1").password, "");
        assert_eq!(ok("amqp://u:p%3Aq@h").password, "p:q");
        assert_eq!(ok("amqp://h:1/v"), uri("guest", "guest", "h", 1, "v"));
        let tls = ok("amqps://h");
        assert!(tls.tls);
        assert_eq!(tls.port, 5671);
    }

    #[test]
    fn refused_forms() {
        for s in [
            "amqp://127.0.0.1/a/b",
            "amqp://127.0.0.1?heartbeat=10",
            "amqp://127.0.0.1/?x=1",
            "amqp://127.0.0.1/%2f?x=1",
            "AMQP://127.0.0.1",
            "amqp:/127.0.0.1",
            "127.0.0.1",
            "amqp://127.0.0.1:",
            "amqp://127.0.0.1/%zz",
            "amqp://127.0.0.1/%c3%a9",
            "amqp://127.0.0.1#frag",
            "amqp://user:pa:ss@127.0.0.1",
            "amqp://127.0.0.1:0x10",
            "amqp://127.0.0.1:99999",
            "amqp://h/%2",
            "amqp://h]",
            "amqp://[::1",
            "amqp://h/a:b",
            "amqp://h/%00",
            "amqp://x[::1]",
            "amqp://[::1]x",
            "amqp://h:-1",
            "",
        ] {
            assert_eq!(parse(s), Err(UriError), "{s:?} should be refused");
        }
    }

    #[test]
    fn masking_when_the_scheme_separator_follows_the_password() {
        // Found by the property test: no scheme, and "://" only after the '@'.
        assert_eq!(mask_password(":Sup3rS3cret@://"), ":****@://");
    }

    #[test]
    fn masking() {
        assert_eq!(mask_password("amqp://u:secret@h/v"), "amqp://u:****@h/v");
        assert_eq!(mask_password("amqp://u@h"), "amqp://u@h");
        assert_eq!(mask_password("amqp://h:5672"), "amqp://h:5672");
        assert_eq!(mask_password("amqp://u:p@ss@h"), "amqp://u:****@h");
        assert_eq!(mask_password("junk"), "junk");
        // Invalid URIs are masked too: raw delimiters typed inside the password.
        assert_eq!(mask_password("amqp://u:pa/ss@h/v"), "amqp://u:****@h/v");
        assert_eq!(mask_password("amqp://u:pa?ss@h"), "amqp://u:****@h");
        assert_eq!(mask_password("amqp://u:pa#ss@h"), "amqp://u:****@h");
        assert_eq!(mask_password("amqp:/u:secret@h"), "amqp:****@h");
        // A raw '@' inside the host's brackets is not the end of the user info (found by
        // fuzzing: fuzz/corpus/uri/regression-at-in-brackets).
        assert_eq!(
            mask_password("amqp://u:p%3Aq@[::1a@:7.]"),
            "amqp://u:****@[::1a@:7.]"
        );
        assert_eq!(mask_password("amqp://[::a@b]"), "amqp://[::a@b]");
    }
}
