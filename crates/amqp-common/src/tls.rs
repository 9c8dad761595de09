//! TLS for `amqps://` and `--ssl`: the connector built from the options, and OpenSSL failures
//! turned into one line that says what is wrong and what was trusted.
//!
//! The connector is native-tls (OpenSSL on Linux); the handshake is done here, before amiquip
//! speaks AMQP over the stream (see `wire`). PEM
//! files are read here with the openssl crate rather than native-tls, because native-tls takes
//! only the first certificate of a bundle and only PKCS#8 keys.

use crate::error::{io_reason, Error, Result};
use crate::options::TlsSettings;
use crate::wire::Socket;
use native_tls::{Certificate, Identity, TlsConnector};
use openssl::pkey::PKey;
use openssl::x509::X509;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A TLS connector, and what it needs to explain a failure.
pub struct TlsClient {
    connector: TlsConnector,
    settings: TlsSettings,
}

impl TlsClient {
    /// Reads the PEM files and builds the connector. Every file problem is a configuration
    /// error reported before anything is sent over the network.
    pub fn new(settings: &TlsSettings) -> Result<TlsClient> {
        let mut builder = TlsConnector::builder();
        if settings.no_default_cert_paths {
            builder.disable_built_in_roots(true);
        }
        if let Some(path) = &settings.cacert {
            for cert in read_ca_bundle(path)? {
                builder.add_root_certificate(cert);
            }
        }
        match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                builder.identity(read_identity(cert, key)?);
            }
            (Some(_), None) => {
                return Err(Error::config(
                    "--cert needs --key (the private key of the client certificate)",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "--key needs --cert (the client certificate of that key)",
                ))
            }
            (None, None) => {}
        }
        if settings.insecure {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        let connector = builder.build().map_err(|e| {
            Error::config(format!(
                "cannot set up TLS: {}",
                openssl_reason(&e.to_string())
            ))
        })?;
        if settings.insecure {
            eprintln!(
                "{}: warning: --insecure: the broker's certificate is not verified, so the \
                 connection is not protected against interception",
                crate::cli::program_name()
            );
        }
        Ok(TlsClient {
            connector,
            settings: settings.clone(),
        })
    }

    /// The TLS handshake over `socket`, blocking, each step bounded by the socket's deadline.
    /// A failure is OpenSSL's text, for `explain`.
    pub fn handshake(
        &self,
        host: &str,
        socket: Socket,
    ) -> std::result::Result<native_tls::TlsStream<Socket>, String> {
        // The TLS server name (SNI and verification) is the host as given: a name or an IP
        // address, which OpenSSL then checks against the IP SANs.
        match self.connector.connect(host, socket) {
            Ok(stream) => Ok(stream),
            Err(native_tls::HandshakeError::Failure(e)) => Err(e.to_string()),
            // A read or write that timed out: the deadline passed.
            Err(native_tls::HandshakeError::WouldBlock(_)) => Err("timed out".into()),
        }
    }

    /// Turns an OpenSSL failure text (a handshake error, or a read error right after the
    /// handshake, where TLS 1.3 servers report a missing client certificate) into a reason.
    /// For a certificate that does not fit the host name or has expired, the certificate is
    /// fetched once more, unverified and within the deadline, to say what it names.
    pub fn explain(
        &self,
        failure: &str,
        host: &str,
        peer: Option<SocketAddr>,
        deadline: Instant,
    ) -> String {
        let text = failure.to_ascii_lowercase();
        let has = |needle: &str| text.contains(needle);
        if has("hostname mismatch") || has("ip address mismatch") {
            let names = peer
                .and_then(|addr| self.peer_certificate(host, addr, deadline))
                .map(|cert| format!(" (the certificate is for {})", certificate_names(&cert)))
                .unwrap_or_default();
            return format!("the broker's certificate is not valid for '{host}'{names}");
        }
        if has("certificate has expired") {
            let when = peer
                .and_then(|addr| self.peer_certificate(host, addr, deadline))
                .map(|cert| format!(" (on {})", cert.not_after()))
                .unwrap_or_default();
            return format!("the broker's certificate has expired{when}");
        }
        if has("certificate is not yet valid") {
            return "the broker's certificate is not valid yet (check the clock)".into();
        }
        if has("unable to get local issuer certificate")
            || has("unable to get issuer certificate")
            || has("self-signed certificate")
            || has("self signed certificate")
            || has("unable to verify the first certificate")
        {
            return format!(
                "the broker's certificate is signed by an unknown CA (trusted: {}; use \
                 --cacert FILE to trust its CA)",
                self.trusted()
            );
        }
        if has("certificate verify failed") {
            return format!(
                "the broker's certificate did not verify: {}",
                verify_result(failure).unwrap_or_else(|| openssl_reason(failure))
            );
        }
        let sent_certificate = self.settings.cert.is_some();
        if has("alert certificate required")
            || (!sent_certificate && has("alert handshake failure"))
        {
            return "the broker requires a client certificate (give --cert and --key)".into();
        }
        if sent_certificate
            && (has("alert unknown ca")
                || has("alert bad certificate")
                || has("alert certificate unknown")
                || has("alert certificate expired")
                || has("alert decrypt error"))
        {
            let cert = self
                .settings
                .cert
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return format!(
                "the broker rejected the client certificate in --cert '{cert}' ({})",
                openssl_reason(failure)
            );
        }
        if has("wrong version number")
            || has("packet length too long")
            || has("record layer failure")
            || has("unexpected eof")
            || has("unexpected message")
            || has("record_layer_failure")
        {
            return "the peer does not speak TLS (is this a plain AMQP port? amqps:// and \
                    --ssl default to port 5671)"
                .into();
        }
        format!("TLS handshake failed: {}", openssl_reason(failure))
    }

    /// Why the broker dropped the connection right after the TLS handshake, when the first
    /// attempt only saw a reset. With TLS 1.3 a broker rejects a missing or untrusted client
    /// certificate after the handshake: its alert races with the AMQP header the client sends
    /// at once, and a reset can destroy the alert. So connect once more with the same settings
    /// and listen without sending anything: the alert then arrives intact.
    pub fn diagnose_reset(
        &self,
        host: &str,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Option<String> {
        let stream = connect_until(addr, deadline, Duration::from_secs(5))?;
        let mut tls = match self.connector.connect(host, Deadlined(stream)) {
            Ok(tls) => tls,
            Err(native_tls::HandshakeError::Failure(e)) => {
                return Some(self.explain(&e.to_string(), host, Some(addr), deadline))
            }
            Err(native_tls::HandshakeError::WouldBlock(_)) => return None,
        };
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(1));
        tls.get_ref().0.set_read_timeout(Some(limit)).ok()?;
        let mut byte = [0u8; 1];
        match tls.read(&mut byte) {
            Err(e) if e.to_string().contains("alert") => {
                Some(self.explain(&e.to_string(), host, Some(addr), deadline))
            }
            _ => None,
        }
    }

    /// What verification trusts, for messages.
    fn trusted(&self) -> String {
        let mut parts = Vec::new();
        if let Some(path) = &self.settings.cacert {
            parts.push(format!("--cacert '{}'", path.display()));
        }
        if !self.settings.no_default_cert_paths {
            parts.push(system_roots());
        }
        if parts.is_empty() {
            return "nothing, since --no-default-cert-paths was given without --cacert".into();
        }
        parts.join(" and ")
    }

    /// The broker's certificate, fetched without verification, for an error message only.
    fn peer_certificate(&self, host: &str, addr: SocketAddr, deadline: Instant) -> Option<X509> {
        let stream = connect_until(addr, deadline, Duration::from_secs(5))?;
        let probe = TlsConnector::builder()
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true)
            .build()
            .ok()?;
        let mut tls = probe.connect(host, Deadlined(stream)).ok()?;
        let der = tls.peer_certificate().ok()??.to_der().ok()?;
        let _ = tls.shutdown();
        X509::from_der(&der).ok()
    }
}

/// A blocking connection for a diagnostic, its I/O bounded by the deadline and by `cap`.
fn connect_until(addr: SocketAddr, deadline: Instant, cap: Duration) -> Option<TcpStream> {
    let remaining = deadline.saturating_duration_since(Instant::now()).min(cap);
    if remaining < Duration::from_millis(10) {
        return None;
    }
    let stream = TcpStream::connect_timeout(&addr, remaining).ok()?;
    let limit = deadline
        .saturating_duration_since(Instant::now())
        .min(cap)
        .max(Duration::from_millis(1));
    stream.set_read_timeout(Some(limit)).ok()?;
    stream.set_write_timeout(Some(limit)).ok()?;
    Some(stream)
}

/// A blocking stream whose timeouts end the handshake; native-tls wants Read + Write only.
struct Deadlined(TcpStream);

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The system trust store as OpenSSL will find it (native-tls honours SSL_CERT_FILE and
/// SSL_CERT_DIR when they name something that exists).
fn system_roots() -> String {
    let existing = |var: &str| {
        std::env::var_os(var)
            .filter(|v| Path::new(v).exists())
            .map(|v| format!("{var} '{}'", Path::new(&v).display()))
    };
    match (existing("SSL_CERT_FILE"), existing("SSL_CERT_DIR")) {
        (Some(f), Some(d)) => format!("{f} and {d}"),
        (Some(f), None) => f,
        (None, Some(d)) => format!("{d} and the system CA certificates"),
        (None, None) => "the system CA certificates".into(),
    }
}

/// "DNS:localhost, IP:127.0.0.1", or the subject's common name when there are no SANs.
fn certificate_names(cert: &X509) -> String {
    let mut names = Vec::new();
    if let Some(sans) = cert.subject_alt_names() {
        for san in sans.iter() {
            if let Some(dns) = san.dnsname() {
                names.push(format!("DNS:{dns}"));
            } else if let Some(ip) = san.ipaddress() {
                let ip = match ip.len() {
                    4 => <[u8; 4]>::try_from(ip).ok().map(|a| a.into()),
                    16 => <[u8; 16]>::try_from(ip).ok().map(|a| a.into()),
                    _ => None,
                };
                if let Some(ip) = ip.map(|ip: std::net::IpAddr| ip.to_string()) {
                    names.push(format!("IP:{ip}"));
                }
            }
        }
    }
    if names.is_empty() {
        for entry in cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        {
            if let Ok(cn) = entry.data().to_string() {
                names.push(format!("CN={cn}"));
            }
        }
    }
    if names.is_empty() {
        "no host name".into()
    } else {
        names.join(", ")
    }
}

/// The bracketed verify result native-tls appends: "... (unable to get local issuer
/// certificate)".
fn verify_result(text: &str) -> Option<String> {
    let start = text.rfind(" (")?;
    let inner = text[start + 2..].strip_suffix(')')?;
    (!inner.is_empty()).then(|| inner.to_string())
}

/// The reason field of an OpenSSL error line
/// ("error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/...:354:"), or
/// the text itself when it has another shape.
fn openssl_reason(text: &str) -> String {
    if let Some(start) = text.find("error:") {
        if let Some(reason) = text[start..].split(':').nth(4).filter(|r| !r.is_empty()) {
            return reason.to_string();
        }
    }
    text.lines().next().unwrap_or(text).trim().to_string()
}

fn read_file(option: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "cannot read {option} '{}': {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

/// Every certificate of a PEM bundle.
fn read_ca_bundle(path: &Path) -> Result<Vec<Certificate>> {
    let pem = read_file("--cacert", path)?;
    let certs = X509::stack_from_pem(&pem).unwrap_or_default();
    if certs.is_empty() {
        return Err(Error::config(format!(
            "--cacert '{}' holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    certs
        .iter()
        .map(|c| {
            c.to_der()
                .ok()
                .and_then(|der| Certificate::from_der(&der).ok())
                .ok_or_else(|| {
                    Error::config(format!(
                        "--cacert '{}' holds a certificate OpenSSL cannot use",
                        path.display()
                    ))
                })
        })
        .collect()
}

/// The client certificate (with any chain after it) and its key, in any PEM key format.
/// Messages name the files, never their content.
fn read_identity(cert_path: &Path, key_path: &Path) -> Result<Identity> {
    let cert_pem = read_file("--cert", cert_path)?;
    let certs = X509::stack_from_pem(&cert_pem).unwrap_or_default();
    let Some(leaf) = certs.first() else {
        return Err(Error::config(format!(
            "--cert '{}' holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            cert_path.display()
        )));
    };
    let key_pem = read_file("--key", key_path)?;
    // An empty passphrase callback: an encrypted key fails here instead of prompting.
    let key = PKey::private_key_from_pem_callback(&key_pem, |_| Ok(0)).map_err(|_| {
        Error::config(format!(
            "--key '{}' holds no usable private key (expected an unencrypted PEM key)",
            key_path.display()
        ))
    })?;
    let matches = leaf
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(Error::config(format!(
            "--key '{}' is not the private key of the certificate in --cert '{}'",
            key_path.display(),
            cert_path.display()
        )));
    }
    let pkcs8 = key.private_key_to_pem_pkcs8().map_err(|_| {
        Error::config(format!(
            "--key '{}': OpenSSL cannot use this private key",
            key_path.display()
        ))
    })?;
    Identity::from_pkcs8(&cert_pem, &pkcs8).map_err(|_| {
        Error::config(format!(
            "--cert '{}' and --key '{}' cannot be used together as a client identity",
            cert_path.display(),
            key_path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(
            openssl_reason(
                "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/record/ssl3_record.c:354:"
            ),
            "wrong version number"
        );
        assert_eq!(openssl_reason("plain text"), "plain text");
        assert_eq!(
            verify_result("error:0A000086:SSL routines:x:certificate verify failed:f:1: (certificate revoked)"),
            Some("certificate revoked".into())
        );
    }

    #[test]
    fn failures_are_explained() {
        let client = TlsClient::new(&TlsSettings::default()).expect("default connector");
        let now = Instant::now();
        let explain = |text: &str| client.explain(text, "h", None, now);
        let verify = "error:0A000086:SSL routines:tls_post_process_server_certificate:\
                      certificate verify failed:../ssl/statem/statem_clnt.c:1889:";
        assert_eq!(
            explain(&format!("{verify} (certificate has expired)")),
            "the broker's certificate has expired"
        );
        assert!(
            explain(&format!("{verify} (certificate is not yet valid)")).contains("not valid yet")
        );
        assert!(explain(&format!("{verify} (Hostname mismatch)")).contains("not valid for 'h'"));
        assert!(explain(&format!("{verify} (self-signed certificate)")).contains("unknown CA"));
        assert!(
            explain(&format!("{verify} (certificate revoked)")).ends_with("certificate revoked")
        );
        assert!(explain(
            "error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:\
             ../ssl/record/rec_layer_s3.c:1605:SSL alert number 116"
        )
        .contains("requires a client certificate"));
        assert!(explain(
            "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:x.c:354:"
        )
        .contains("does not speak TLS"));
        assert_eq!(
            explain(
                "error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:x:1:"
            ),
            "the broker requires a client certificate (give --cert and --key)"
        );
        assert_eq!(
            explain("error:0A0000C1:SSL routines:x:no shared cipher:x:1:"),
            "TLS handshake failed: no shared cipher"
        );
    }

    #[test]
    fn cert_without_key_is_config_error() {
        let settings = TlsSettings {
            cert: Some("/nonexistent/c.pem".into()),
            ..Default::default()
        };
        let err = TlsClient::new(&settings).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("--cert needs --key (the private key of the client certificate)")
        );
    }

    #[test]
    fn missing_files_are_named() {
        let settings = TlsSettings {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = TlsClient::new(&settings).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("cannot read --cacert '/nonexistent/ca.pem': No such file or directory")
        );
    }
}
