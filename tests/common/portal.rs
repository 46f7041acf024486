//! A hotel's captive portal inside a namespace: a tiny HTTP server that
//! answers every request like a portal (302 to [`PORTAL`]) while it holds
//! the router, and like the Internet (204) once it lets it through.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::ns;

/// Where the portal sends people.
pub const PORTAL: &str = "http://portal.example/login";
/// Where the portal server listens: next to sshd on `lo` in `up`, so the
/// router reaches it through its DHCP default route.
pub const PROBE_PORT: u16 = 80;

/// A tiny HTTP server inside a namespace (its socket opened there, see
/// [`ns::enter`]). Answers every request
/// with a 302 to [`PORTAL`] until `let_through`, then with 204.
pub struct PortalServer {
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    /// When the first 204 went out.
    pub first_open: Arc<Mutex<Option<Instant>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PortalServer {
    /// Listens on `addr` in namespace `ns`, holding the router.
    pub fn start(ns: &str, addr: &str) -> PortalServer {
        let l = ns::enter(ns, || {
            TcpListener::bind(addr).expect("bind the portal server")
        });
        l.set_nonblocking(true).unwrap();
        let open = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let first_open = Arc::new(Mutex::new(None));
        let thread = {
            let (open, stop, requests, first_open) = (
                open.clone(),
                stop.clone(),
                requests.clone(),
                first_open.clone(),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match l.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(false).unwrap();
                            requests.fetch_add(1, Ordering::SeqCst);
                            answer(s, &open, &first_open);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(e) => panic!("portal server accept: {e}"),
                    }
                }
            })
        };
        PortalServer {
            open,
            stop,
            requests,
            first_open,
            thread: Some(thread),
        }
    }

    /// The portal lets the router through: 204 from now on.
    pub fn let_through(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// The portal holds the router again: 302 from now on.
    pub fn hold(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(mut s: TcpStream, open: &AtomicBool, first_open: &Mutex<Option<Instant>>) {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let reply: &[u8] = if open.load(Ordering::SeqCst) {
        first_open.lock().unwrap().get_or_insert_with(Instant::now);
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    } else {
        b"HTTP/1.1 302 Found\r\nLocation: http://portal.example/login\r\n\
          Content-Type: text/html\r\nContent-Length: 34\r\nConnection: close\r\n\r\n\
          <a href=\"/login\">Log in here</a>\n"
    };
    let _ = s.write_all(reply);
}

impl Drop for PortalServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
