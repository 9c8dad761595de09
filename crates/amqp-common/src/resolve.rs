//! Host names to addresses, under the connect deadline.
//!
//! The system resolver has no timeout of its own, so a lookup that may reach the network runs
//! on a thread that is abandoned when it takes too long. A lookup that cannot reach the network
//! runs inline, without that thread (which costs a start-up and a wake-up per invocation): an
//! address, or a name that the system resolver answers from /etc/hosts before it asks DNS (the
//! default "localhost" included). It is still the system resolver that answers, so the result
//! is the same either way.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

pub fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
) -> std::result::Result<Vec<SocketAddr>, String> {
    if host.is_empty() {
        return Err("empty host name".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if answered_from_hosts_file(host) {
        return answer(host, (host, port).to_socket_addrs().map(Iterator::collect));
    }
    let (tx, rx) = mpsc::channel();
    let query = (host.to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(query.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(result) => answer(host, result),
        Err(_) => Err(format!(
            "resolving '{host}' took too long (see --connect-timeout)"
        )),
    }
}

fn answer(
    host: &str,
    result: std::io::Result<Vec<SocketAddr>>,
) -> std::result::Result<Vec<SocketAddr>, String> {
    match result {
        Ok(addrs) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(format!("host name '{host}' has no address")),
        Err(_) => Err(format!("cannot resolve host name '{host}'")),
    }
}

/// True when the system resolver looks in /etc/hosts first and will find `host` there.
fn answered_from_hosts_file(host: &str) -> bool {
    let files_first = if cfg!(target_env = "musl") {
        // musl reads /etc/hosts before DNS, always.
        true
    } else {
        // glibc follows nsswitch.conf; without one it asks DNS first.
        std::fs::read_to_string("/etc/nsswitch.conf").is_ok_and(|conf| hosts_files_first(&conf))
    };
    files_first
        && std::fs::read_to_string("/etc/hosts").is_ok_and(|hosts| hosts_file_names(&hosts, host))
}

/// The `hosts:` line of nsswitch.conf names `files` as its first source.
fn hosts_files_first(conf: &str) -> bool {
    conf.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .find_map(|line| line.trim_start().strip_prefix("hosts:"))
        .and_then(|sources| sources.split_whitespace().next())
        == Some("files")
}

/// An /etc/hosts text lists `host` (names compare without regard to ASCII case).
fn hosts_file_names(hosts: &str, host: &str) -> bool {
    hosts.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        fields
            .next()
            .is_some_and(|addr| addr.parse::<IpAddr>().is_ok())
            && fields.any(|name| name.eq_ignore_ascii_case(host))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nsswitch_order() {
        assert!(hosts_files_first(
            "passwd: files\nhosts:          files dns\n"
        ));
        assert!(hosts_files_first(
            "hosts: files mdns4_minimal [NOTFOUND=return] dns"
        ));
        assert!(!hosts_files_first("hosts: dns files"));
        assert!(!hosts_files_first(
            "hosts: resolve [!UNAVAIL=return] files dns"
        ));
        assert!(!hosts_files_first("# hosts: files\n"));
        assert!(!hosts_files_first("passwd: files\n"));
        assert!(!hosts_files_first("hosts:\n"));
    }

    #[test]
    fn hosts_file_lookup() {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# 10.0.0.1 broker\n\
                     10.0.0.2\tRabbit rabbit.example # 10.0.0.3 other\nbogus line\n";
        assert!(hosts_file_names(hosts, "localhost"));
        assert!(hosts_file_names(hosts, "ip6-localhost"));
        assert!(hosts_file_names(hosts, "rabbit"));
        assert!(hosts_file_names(hosts, "RABBIT.example"));
        assert!(!hosts_file_names(hosts, "broker"));
        assert!(!hosts_file_names(hosts, "other"));
        assert!(!hosts_file_names(hosts, "line"));
        assert!(!hosts_file_names(hosts, "rabbit.example.com"));
    }

    #[test]
    fn addresses_and_local_names() {
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            resolve("127.0.0.1", 5672, deadline).unwrap(),
            vec!["127.0.0.1:5672".parse().unwrap()]
        );
        assert_eq!(
            resolve("::1", 1, deadline).unwrap(),
            vec!["[::1]:1".parse().unwrap()]
        );
        assert!(resolve("", 1, deadline).unwrap_err().contains("empty"));
        let local = resolve("localhost", 5672, deadline).unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
        assert!(resolve("no-such-host.invalid", 1, deadline)
            .unwrap_err()
            .contains("no-such-host.invalid"));
    }
}
