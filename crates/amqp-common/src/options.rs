//! The connection options every tool shares, and how they combine into one endpoint.
//! The checks run in the C tools' order, so the first conflict reported is the same one.

use crate::addresses::{Address, Addresses};
use crate::authfile;
use crate::error::{Error, Result};
use crate::number::c_int;
use crate::uri::{self, AmqpUri};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Seconds allowed for DNS, TCP and the AMQP handshake together, unless --connect-timeout says
/// otherwise. Long enough for a slow broker, short enough that a Job does not hang.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Heartbeat interval asked for when --heartbeat is not given. The C tools ask for none, which
/// leaves a consumer waiting forever on a dead broker. The connection is declared dead after two
/// silent intervals, so 30 s notices a lost broker within a minute; the broker may lower it.
pub const DEFAULT_HEARTBEAT: u16 = 30;

/// Connection options, flattened into every tool's command line.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectionArgs {
    /// Broker to connect to, as amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] or amqps://...
    /// (default amqp://guest:guest@localhost:5672/%2f; the AMQP_URL environment variable is
    /// used when no connection option is given). Give it more than once (or several URLs in
    /// AMQP_URL, separated by spaces) for the nodes of a cluster: they are tried in order
    #[arg(
        short = 'u',
        long,
        value_name = "URL",
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    pub url: Vec<String>,

    /// Broker host name or address (default localhost)
    #[arg(short = 's', long, value_name = "HOST", allow_hyphen_values = true)]
    pub server: Option<String>,

    /// Broker port (default 5672, or 5671 with TLS)
    #[arg(long, value_name = "PORT", value_parser = c_int, allow_hyphen_values = true)]
    pub port: Option<i32>,

    /// Virtual host (default /)
    #[arg(long, value_name = "VHOST", allow_hyphen_values = true)]
    pub vhost: Option<String>,

    /// User name (default guest)
    #[arg(long, value_name = "USER", allow_hyphen_values = true)]
    pub username: Option<String>,

    /// Password (default guest); prefer --authfile, which keeps it out of the process list
    #[arg(long, value_name = "PASSWORD", allow_hyphen_values = true)]
    pub password: Option<String>,

    /// Read the user name and password from FILE: two lines, "username:USER" and
    /// "password:PASSWORD", each ending with a newline
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub authfile: Option<PathBuf>,

    /// Heartbeat interval in seconds, 0 to turn heartbeats off (default 30)
    #[arg(long, value_name = "SECS", value_parser = c_int, allow_hyphen_values = true)]
    pub heartbeat: Option<i32>,

    /// Give up if connecting (DNS, TCP, TLS and the AMQP handshake) takes longer than SECS
    /// (default 30)
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub connect_timeout: Option<Duration>,

    /// Use TLS (as amqps:// does); the port defaults to 5671
    #[arg(long)]
    pub ssl: bool,

    /// Also trust the CA certificates in FILE (PEM) when verifying the broker
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub cacert: Option<PathBuf>,

    /// Client certificate (PEM), sent when the broker asks for one; needs --key
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of the client certificate; needs --cert
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub key: Option<PathBuf>,

    /// Trust only --cacert, not the system's CA certificates
    #[arg(long)]
    pub no_default_cert_paths: bool,

    /// Do not verify the broker's certificate (insecure: for testing only)
    #[arg(long)]
    pub insecure: bool,
}

/// A positive number of seconds, fractions allowed.
pub fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let value: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a number of seconds".to_string())?;
    if !value.is_finite() || value <= 0.0 || value > 1e9 {
        return Err("expected a number of seconds greater than 0".into());
    }
    Ok(Duration::from_secs_f64(value))
}

/// TLS settings, carried to the connector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub no_default_cert_paths: bool,
    pub insecure: bool,
}

/// Where and how to connect, once every option has been checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub user: String,
    pub password: String,
    pub heartbeat: u16,
    pub connect_timeout: Duration,
    pub tls: Option<TlsSettings>,
}

impl Endpoint {
    /// `host:port` as shown in messages, IPv6 literals in brackets.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn conflict(a: &str, b: &str) -> Error {
    Error::config(format!("{a} and {b} cannot be used together"))
}

impl ConnectionArgs {
    /// True when any option naming the broker or the credentials was given; AMQP_URL is read
    /// only when none was.
    fn names_a_broker(&self) -> bool {
        !self.url.is_empty()
            || self.server.is_some()
            || self.port.is_some_and(|p| p >= 0)
            || self.username.is_some()
            || self.password.is_some()
            || self.vhost.is_some()
            || self.authfile.is_some()
    }

    /// Checks the options and combines them, in the C tools' order, into the addresses to try;
    /// `amqp_url` is the value of the AMQP_URL environment variable (one URL, or several
    /// separated by whitespace). Prints the --server port deprecation warning.
    pub fn resolve(&self, amqp_url: Option<&str>) -> Result<Addresses> {
        let urls: Vec<(&str, &str)> = match amqp_url {
            _ if !self.url.is_empty() => self.url.iter().map(|u| (u.as_str(), "--url")).collect(),
            Some(env) if !self.names_a_broker() && !env.is_empty() => {
                let urls: Vec<_> = env.split_ascii_whitespace().collect();
                if urls.is_empty() {
                    // Reported as the invalid URL it is.
                    vec![(env, "AMQP_URL")]
                } else {
                    urls.into_iter().map(|u| (u, "AMQP_URL")).collect()
                }
            }
            _ => Vec::new(),
        };
        if urls.is_empty() {
            let endpoint = self.resolve_one(None)?;
            let shown = endpoint.target();
            return Ok(Addresses::new(vec![Address { endpoint, shown }]));
        }
        let list = urls
            .into_iter()
            .map(|url| {
                self.resolve_one(Some(url)).map(|endpoint| Address {
                    endpoint,
                    shown: uri::mask_password(url.0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Addresses::new(list))
    }

    /// One address: `url` (with the name of the option or variable it came from) combined with
    /// the other options, or the other options alone.
    fn resolve_one(&self, url: Option<(&str, &str)>) -> Result<Endpoint> {
        let mut uri = AmqpUri::default();
        let mut explicit_port = false;
        if let Some((url, source)) = url {
            uri = uri::parse(url).map_err(|_| {
                Error::config(format!(
                    "invalid {} '{}': expected amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] \
                     (percent-encode ':', '@' and '/' inside values; no '?' options)",
                    if source == "--url" { "URL" } else { "AMQP_URL" },
                    uri::mask_password(url)
                ))
            })?;
            explicit_port = true;
            if self.ssl && !uri.tls {
                return Err(Error::config(
                    "--ssl asks for TLS but the URL starts with amqp:// (use amqps://)",
                ));
            }
        }
        let from_url = !self.url.is_empty();
        let tls_wanted = uri.tls || self.ssl;

        if let Some(server) = &self.server {
            if from_url {
                return Err(conflict("--server", "--url"));
            }
            if let Some((host, port)) = server.split_once(':') {
                eprintln!(
                    "{}: warning: HOST:PORT in --server is deprecated; use --port",
                    crate::cli::program_name()
                );
                if self.port.is_some_and(|p| p >= 0) {
                    return Err(Error::config(
                        "--server and --port both give a port; give it once",
                    ));
                }
                uri.port = parse_server_port(port).ok_or_else(|| {
                    Error::config(format!(
                        "bad port in --server '{server}': expected HOST:PORT with PORT from 0 to \
                         65535 (IPv6 addresses need --url amqp://[ADDR])"
                    ))
                })?;
                explicit_port = true;
                uri.host = host.to_string();
            } else {
                uri.host = server.clone();
            }
        }
        if let Some(port) = self.port.filter(|&p| p >= 0) {
            if from_url {
                return Err(conflict("--port", "--url"));
            }
            // No range check, as in the C tools: the connection attempt reports it.
            uri.port = u16::try_from(port).map_err(|_| {
                Error::config(format!(
                    "bad --port {port}: expected a number from 0 to 65535"
                ))
            })?;
            explicit_port = true;
        }
        if !explicit_port && tls_wanted {
            uri.port = 5671;
        }
        if let Some(user) = &self.username {
            if from_url {
                return Err(conflict("--username", "--url"));
            }
            if self.authfile.is_some() {
                return Err(conflict("--username", "--authfile"));
            }
            uri.user = user.clone();
        }
        if let Some(password) = &self.password {
            if from_url {
                return Err(conflict("--password", "--url"));
            }
            if self.authfile.is_some() {
                return Err(conflict("--password", "--authfile"));
            }
            uri.password = password.clone();
        }
        if let Some(path) = &self.authfile {
            if from_url {
                return Err(conflict("--authfile", "--url"));
            }
            let creds = authfile::read(path)
                .map_err(|e| Error::config(format!("bad --authfile '{}': {e}", path.display())))?;
            uri.user = creds.user;
            uri.password = creds.password;
        }
        if let Some(vhost) = &self.vhost {
            if from_url {
                return Err(conflict("--vhost", "--url"));
            }
            uri.vhost = vhost.clone();
        }
        let heartbeat = match self.heartbeat {
            None => DEFAULT_HEARTBEAT,
            Some(h) if h < 0 => {
                return Err(Error::config(format!(
                    "bad --heartbeat {h}: expected 0 (off) or a number of seconds"
                )))
            }
            Some(h) => u16::try_from(h).unwrap_or(u16::MAX),
        };
        let tls = tls_wanted.then(|| TlsSettings {
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            no_default_cert_paths: self.no_default_cert_paths,
            insecure: self.insecure,
        });
        Ok(Endpoint {
            host: uri.host,
            port: uri.port,
            vhost: uri.vhost,
            user: uri.user,
            password: uri.password,
            heartbeat,
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            tls,
        })
    }
}

/// The port part of a deprecated `--server HOST:PORT`: decimal, optional `+`, 0..=65535.
fn parse_server_port(s: &str) -> Option<u16> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u32>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
}

/// What `Debug` shows in place of a password.
pub(crate) const HIDDEN: &str = "<hidden>";

// Debug by hand for what holds a password: a `{:?}` anywhere (a log line, a failed test's
// message) must not show it.
impl std::fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self
            .url
            .iter()
            .map(|u| crate::uri::mask_password(u))
            .collect();
        f.debug_struct("ConnectionArgs")
            .field("url", &urls)
            .field("server", &self.server)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| HIDDEN))
            .field("authfile", &self.authfile)
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .field("ssl", &self.ssl)
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("no_default_cert_paths", &self.no_default_cert_paths)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .field("password", &HIDDEN)
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ConnectionArgs {
        ConnectionArgs::default()
    }

    impl ConnectionArgs {
        /// The one address the options give.
        fn resolve1(&self, amqp_url: Option<&str>) -> Result<Endpoint> {
            let addresses = self.resolve(amqp_url)?;
            assert_eq!(addresses.iter().count(), 1);
            Ok(addresses.get(0).endpoint.clone())
        }
    }

    #[test]
    fn defaults() {
        let e = args().resolve1(None).unwrap();
        assert_eq!(e.target(), "localhost:5672");
        assert_eq!((e.user.as_str(), e.password.as_str()), ("guest", "guest"));
        assert_eq!(e.vhost, "/");
        assert_eq!(e.heartbeat, DEFAULT_HEARTBEAT);
        assert!(e.tls.is_none());
    }

    #[test]
    fn amqp_url_only_without_connection_flags() {
        let e = args().resolve1(Some("amqp://h:1/v")).unwrap();
        assert_eq!((e.target(), e.vhost.as_str()), ("h:1".to_string(), "v"));
        let mut a = args();
        a.server = Some("other".into());
        assert_eq!(
            a.resolve1(Some("amqp://h:1")).unwrap().target(),
            "other:5672"
        );
        let mut a = args();
        a.url = vec!["amqp://u".into()];
        assert_eq!(a.resolve1(Some("amqp://h:1")).unwrap().host, "u");
    }

    #[test]
    fn conflicts_in_c_order() {
        let mut a = args();
        a.url = vec!["amqp://h".into()];
        a.port = Some(5672);
        a.vhost = Some("v".into());
        assert!(a
            .resolve1(None)
            .unwrap_err()
            .to_string()
            .starts_with("--port and --url"));
        let mut a = args();
        a.url = vec!["amqp://h".into()];
        a.port = Some(-5);
        assert!(
            a.resolve1(None).is_ok(),
            "a negative port means 'not given'"
        );
        let mut a = args();
        a.server = Some("h:5672".into());
        a.port = Some(5672);
        assert!(a.resolve1(None).is_err());
        let mut a = args();
        a.server = Some("h:+5673".into());
        assert_eq!(a.resolve1(None).unwrap().port, 5673);
        for bad in ["h:abc", "h:", "h:70000", "h:-1", "::1", "[::1]"] {
            let mut a = args();
            a.server = Some(bad.into());
            assert!(a.resolve1(None).is_err(), "{bad}");
        }
        let mut a = args();
        a.heartbeat = Some(-1);
        assert!(a.resolve1(None).is_err());
    }

    #[test]
    fn tls_ports() {
        let mut a = args();
        a.ssl = true;
        let e = a.resolve1(None).unwrap();
        assert_eq!(e.port, 5671);
        assert!(e.tls.is_some());
        a.server = Some("h".into());
        assert_eq!(a.resolve1(None).unwrap().target(), "h:5671");
        a.port = Some(5000);
        assert_eq!(a.resolve1(None).unwrap().target(), "h:5000");
        let mut a = args();
        a.ssl = true;
        a.url = vec!["amqp://h".into()];
        assert!(a.resolve1(None).is_err());
        let mut a = args();
        a.url = vec!["amqps://h".into()];
        assert_eq!(a.resolve1(None).unwrap().port, 5671);
    }

    #[test]
    fn bad_url_is_masked() {
        let mut a = args();
        a.url = vec!["amqp://u:s3cret@h?x=1".into()];
        let msg = a.resolve1(None).unwrap_err().to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("amqp://u:****@h?x=1"), "{msg}");
    }

    #[test]
    fn several_urls() {
        let mut a = args();
        a.url = vec!["amqp://u:s3cret@h1:1/v".into(), "amqps://h2".into()];
        let list = a.resolve(Some("amqp://ignored")).unwrap();
        let shown: Vec<&str> = list.iter().map(|x| x.shown.as_str()).collect();
        assert_eq!(shown, ["amqp://u:****@h1:1/v", "amqps://h2"]);
        assert_eq!(list.get(0).endpoint.target(), "h1:1");
        assert_eq!(list.get(0).endpoint.password, "s3cret");
        assert_eq!(list.get(1).endpoint.target(), "h2:5671");
        assert!(list.get(1).endpoint.tls.is_some() && list.get(0).endpoint.tls.is_none());

        // AMQP_URL: separated by any whitespace; a bad one names itself, masked.
        let list = args()
            .resolve(Some(" amqp://h1:1\tamqp://h2:2\n amqp://h3 "))
            .unwrap();
        let targets: Vec<String> = list.iter().map(|x| x.endpoint.target()).collect();
        assert_eq!(targets, ["h1:1", "h2:2", "h3:5672"]);
        let msg = args()
            .resolve(Some("amqp://h1 amqp://u:pw@h2?x"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("AMQP_URL 'amqp://u:****@h2?x'"), "{msg}");
        assert!(args().resolve(Some(" ")).is_err());

        // Every URL is checked against the other options.
        let mut a = args();
        a.url = vec!["amqps://h1".into(), "amqp://h2".into()];
        a.ssl = true;
        assert!(a.resolve(None).is_err());
        a.ssl = false;
        a.vhost = Some("v".into());
        assert!(a.resolve(None).is_err());

        // Without a URL the one address is shown as host:port.
        assert_eq!(args().resolve(None).unwrap().get(0).shown, "localhost:5672");
    }

    #[test]
    fn debug_hides_passwords() {
        let args = ConnectionArgs {
            url: vec!["amqp://u:s3cret-one@h/v".into()],
            password: Some("s3cret-two".into()),
            ..ConnectionArgs::default()
        };
        let shown = format!("{args:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("amqp://u:") && shown.contains(HIDDEN),
            "{shown}"
        );
        let endpoint = args
            .resolve(Some("amqp://u:s3cret-three@h/v"))
            .map(|a| format!("{a:?}"))
            .unwrap_or_default();
        assert!(!endpoint.contains("s3cret"), "{endpoint}");
        let uri = crate::uri::parse("amqp://u:s3cret-four@h/v").unwrap();
        assert!(!format!("{uri:?}").contains("s3cret"));
        let creds = crate::authfile::Credentials {
            user: "u".into(),
            password: "s3cret-five".into(),
        };
        assert!(!format!("{creds:?}").contains("s3cret"));
    }
}
