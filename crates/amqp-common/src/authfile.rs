//! `--authfile`: a user name and a password kept out of the process list. The format and its
//! limits are the C tools' (two lines, `username:` and `password:`, each ending in a newline,
//! values taken verbatim, at most 117 bytes each), so existing files keep working.

use std::path::Path;

/// Credentials read from an auth file.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Without the password (see `options::HIDDEN`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &crate::options::HIDDEN)
            .finish()
    }
}

/// What is wrong with an auth file. Never carries the file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthfileError {
    Unreadable(String),
    MissingUsername,
    UsernameTooLong,
    MissingPassword,
    PasswordTooLong,
    TrailingData,
    NotUtf8,
}

impl std::fmt::Display for AuthfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthfileError::Unreadable(reason) => return write!(f, "cannot be read: {reason}"),
            AuthfileError::MissingUsername => "line 1 must start with 'username:'",
            AuthfileError::UsernameTooLong => {
                "line 1 must end with a newline and the user name be at most 117 bytes"
            }
            AuthfileError::MissingPassword => "line 2 must start with 'password:'",
            AuthfileError::PasswordTooLong => {
                "line 2 must end with a newline and the password be at most 117 bytes"
            }
            AuthfileError::TrailingData => "nothing may follow the password line",
            AuthfileError::NotUtf8 => "the user name and password must be UTF-8",
        })
    }
}

/// The C tools read each line into a 128-byte buffer: 9 bytes of prefix, the value, the newline
/// and the terminating NUL.
const MAX_VALUE: usize = 117;

/// Reads and checks an auth file.
pub fn read(path: &Path) -> Result<Credentials, AuthfileError> {
    match read_prefix(path) {
        Ok(bytes) => parse(&bytes),
        // The C tools report a directory as a malformed file; keep that meaning.
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Err(AuthfileError::MissingUsername),
        Err(e) => Err(AuthfileError::Unreadable(io_reason(&e))),
    }
}

/// A valid file is at most 2 * 128 bytes, and `parse` decides every invalid one within its
/// first 2 * 128 + 1 bytes, so reading more can change nothing; reading everything would let
/// `--authfile /dev/zero` (or any huge file) exhaust memory, where the C tools read 2 lines.
const READ_LIMIT: u64 = 1024;

fn read_prefix(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(READ_LIMIT)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Checks the content of an auth file.
pub fn parse(bytes: &[u8]) -> Result<Credentials, AuthfileError> {
    let (user, rest) = field(
        bytes,
        b"username:",
        AuthfileError::MissingUsername,
        AuthfileError::UsernameTooLong,
    )?;
    let (password, rest) = field(
        rest,
        b"password:",
        AuthfileError::MissingPassword,
        AuthfileError::PasswordTooLong,
    )?;
    if !rest.is_empty() {
        return Err(AuthfileError::TrailingData);
    }
    Ok(Credentials {
        user: String::from_utf8(user.to_vec()).map_err(|_| AuthfileError::NotUtf8)?,
        password: String::from_utf8(password.to_vec()).map_err(|_| AuthfileError::NotUtf8)?,
    })
}

fn field<'a>(
    bytes: &'a [u8],
    prefix: &[u8],
    missing: AuthfileError,
    too_long: AuthfileError,
) -> Result<(&'a [u8], &'a [u8]), AuthfileError> {
    let line_end = bytes.iter().position(|&b| b == b'\n');
    // fgets stops after 127 bytes, so the prefix check sees at most that much.
    let visible = &bytes[..bytes.len().min(prefix.len())];
    if visible != prefix {
        return Err(missing);
    }
    match line_end {
        Some(end) if end - prefix.len() <= MAX_VALUE => {
            Ok((&bytes[prefix.len()..end], &bytes[end + 1..]))
        }
        _ => Err(too_long),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_file() {
        let c = parse(b"username:guest\npassword:guest\n").unwrap();
        assert_eq!(c.user, "guest");
        assert_eq!(c.password, "guest");
        // Verbatim: blanks and CR are part of the value.
        let c = parse(b"username: guest\r\npassword:p:w\n").unwrap();
        assert_eq!(c.user, " guest\r");
        assert_eq!(c.password, "p:w");
        let c = parse(b"username:\npassword:\n").unwrap();
        assert_eq!(c.user, "");
    }

    #[test]
    fn malformed_files() {
        use AuthfileError::*;
        assert_eq!(
            parse(b"username:guest\npassword:guest"),
            Err(PasswordTooLong)
        );
        assert_eq!(
            parse(b"username:guest\npassword:guest\n\n"),
            Err(TrailingData)
        );
        assert_eq!(
            parse(b"password:guest\nusername:guest\n"),
            Err(MissingUsername)
        );
        assert_eq!(parse(b"username:guest\n"), Err(MissingPassword));
        assert_eq!(parse(b""), Err(MissingUsername));
        assert_eq!(parse(b"username:guest"), Err(UsernameTooLong));
        assert_eq!(
            parse(b"Username:guest\npassword:guest\n"),
            Err(MissingUsername)
        );
    }

    #[test]
    fn endless_file_is_refused_without_reading_it_all() {
        // Regression (found by reading a fuzzed --authfile path): /dev/zero used to be read
        // until memory ran out.
        assert_eq!(
            read(Path::new("/dev/zero")),
            Err(AuthfileError::MissingUsername)
        );
    }

    #[test]
    fn length_limits() {
        let ok = format!("username:{}\npassword:x\n", "u".repeat(117));
        assert!(parse(ok.as_bytes()).is_ok());
        let long = format!("username:{}\npassword:x\n", "u".repeat(118));
        assert_eq!(parse(long.as_bytes()), Err(AuthfileError::UsernameTooLong));
        let long = format!("username:u\npassword:{}\n", "p".repeat(118));
        assert_eq!(parse(long.as_bytes()), Err(AuthfileError::PasswordTooLong));
    }
}
