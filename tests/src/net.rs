//! Network fault injection on loopback: a TCP proxy that can cut or freeze traffic, and
//! fake peers that misbehave from the first byte.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked loops wake to notice stop/pause flags.
const TICK: Duration = Duration::from_millis(10);
/// Read timeout of the proxy's pumps, so they notice flags while idle.
const PUMP_TICK: Duration = Duration::from_millis(50);
/// A write the other side does not drain within this is treated as a dead connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

fn listen() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    // Non-blocking so accept loops can poll their stop flag instead of hanging in accept().
    l.set_nonblocking(true).expect("set_nonblocking");
    l
}

fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().expect("local_addr").port()
}

/// A TCP forwarder from 127.0.0.1:<port> to a target, which tests use to cut or freeze
/// a tool's connection to the broker. Everything stops on drop.
pub struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct ProxyShared {
    target: SocketAddr,
    stop: AtomicBool,
    paused: AtomicBool,
    refusing: AtomicBool,
    accepted: AtomicUsize,
    next_id: AtomicU64,
    // Clones of both sockets of each live connection so `cut` can shut them from outside.
    live: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl Proxy {
    /// Starts forwarding from a fresh loopback port to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = listen();
        let port = port_of(&listener);
        let shared = Arc::new(ProxyShared {
            target,
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || accept_loop(listener, port, &s));
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// A proxy in front of the test broker (`broker_addr()`).
    pub fn to_broker() -> Proxy {
        let addr = crate::broker_addr();
        let target = std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve broker address {addr}"));
        Proxy::start(target)
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@127.0.0.1:<port>`, for tools under test.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}", self.port)
    }

    /// Shuts down (both ways, both sides) every live connection; new ones are still accepted.
    pub fn cut(&self) {
        for (_, (a, b)) in self.shared.live.lock().unwrap().drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// While true, the listening socket is closed so new connections get ECONNREFUSED;
    /// false reopens it on the same port.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
        // The acceptor applies the change within a tick; wait so the caller can rely on it.
        std::thread::sleep(TICK * 3);
    }

    /// Stops moving bytes either way (connections stay open): a silent, hung peer.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Resumes forwarding after `pause`.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// How many client connections were accepted so far (including cut ones).
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Local ports of the live upstream sockets: the `peer_port` the broker (rabbitmqctl
    /// `connections()`) sees for clients that came through this proxy.
    pub fn upstream_ports(&self) -> Vec<u16> {
        let live = self.shared.live.lock().unwrap();
        live.values()
            .filter_map(|(_, up)| up.local_addr().ok().map(|a| a.port()))
            .collect()
    }

    /// How many connections are currently being forwarded.
    pub fn live(&self) -> usize {
        self.shared.live.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, port: u16, shared: &Arc<ProxyShared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        let refusing = shared.refusing.load(Ordering::SeqCst);
        if refusing && listener.is_some() {
            listener = None;
        } else if !refusing && listener.is_none() {
            // std sets SO_REUSEADDR, so rebinding the port we just released works.
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("set_nonblocking");
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(TICK);
                    continue;
                }
            }
        }
        match listener.as_ref().map(TcpListener::accept) {
            Some(Ok((client, _))) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                start_forwarding(client, shared);
            }
            _ => std::thread::sleep(TICK),
        }
    }
}

fn start_forwarding(client: TcpStream, shared: &Arc<ProxyShared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(5)) else {
        // Target down: behave like it, by closing on the client.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let prepared = (|| -> std::io::Result<_> {
        client.set_nonblocking(false)?;
        for s in [&client, &upstream] {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(PUMP_TICK))?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
        }
        shared
            .live
            .lock()
            .unwrap()
            .insert(id, (client.try_clone()?, upstream.try_clone()?));
        Ok((client.try_clone()?, upstream.try_clone()?, client, upstream))
    })();
    let Ok((c_read, u_read, c_write, u_write)) = prepared else {
        shared.live.lock().unwrap().remove(&id);
        return;
    };
    let remaining = Arc::new(AtomicUsize::new(2));
    for (from, to) in [(c_read, u_write), (u_read, c_write)] {
        let shared = Arc::clone(shared);
        let remaining = Arc::clone(&remaining);
        std::thread::spawn(move || {
            pump(from, &to, &shared);
            if remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                shared.live.lock().unwrap().remove(&id);
            }
        });
    }
}

fn pump(mut from: TcpStream, mut to: &TcpStream, shared: &ProxyShared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if shared.paused.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                // Half-close: pass the EOF on, keep the other direction going.
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Keeps a fake peer alive; dropping it closes the listener and any held connections.
pub struct PeerGuard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// Runs `on_accept` for each connection on a fresh loopback port until the guard drops.
fn fake_peer(
    mut on_accept: impl FnMut(TcpStream, &AtomicBool) + Send + 'static,
) -> (u16, PeerGuard) {
    let listener = listen();
    let port = port_of(&listener);
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    on_accept(conn, &s);
                }
                Err(_) => std::thread::sleep(TICK),
            }
        }
    });
    (
        port,
        PeerGuard {
            stop,
            thread: Some(thread),
        },
    )
}

/// A port that accepts TCP connections and then never sends a byte (tests handshake timeouts).
pub fn silent_peer() -> (u16, PeerGuard) {
    let mut held = Vec::new();
    // Held until the guard drops, so the client sees an open but mute socket.
    fake_peer(move |conn, _| held.push(conn))
}

/// A port that accepts and immediately closes; depending on timing the client sees EOF or
/// ECONNRESET (if its protocol header arrived before the close).
pub fn closing_peer() -> (u16, PeerGuard) {
    fake_peer(|conn, _| {
        let _ = conn.shutdown(Shutdown::Both);
    })
}

/// A port that answers like a web server (`HTTP/1.1 400 Bad Request`) and closes, the way a
/// client pointed at the wrong service would see it.
pub fn http_peer() -> (u16, PeerGuard) {
    fake_peer(|mut conn, stop| {
        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 1024];
        // Read the client's opening bytes first: closing with unread data would send RST
        // and the client might never see the response.
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let _ = conn.shutdown(Shutdown::Write);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    })
}

/// A loopback port with nothing listening (connections get ECONNREFUSED).
pub fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    port_of(&l)
}
