//! What tests/luci_view.rs needs around luci-app-roadie's view: [`Stand`],
//! a stand-in for the router's web side (uhttpd serving LuCI's files and
//! its `/ubus` JSON-RPC endpoint, rpcd checking the session's ACL and
//! running the `roadie` exec plugin), and [`browser::Browser`], headless
//! Chromium driven over the DevTools protocol.
//!
//! The stand-in serves tests/doubles/luci-double.{html,js,css} (the LuCI
//! runtime stand-in) and the package's htdocs/ as /luci-static/resources/,
//! and answers `call` requests the way uhttpd-mod-ubus and rpcd do: a
//! session that is not the page's, or a method its ACL does not grant, is
//! refused with JSON-RPC error -32002 ("Access denied"); anything else runs
//! `roadie -s SOCKET rpcd call METHOD` with the parameters on stdin (what
//! /usr/libexec/rpcd/roadie runs) and replies `[0, its JSON]`. The session
//! is a login whose only ACL group is luci-app-roadie (read and write), as
//! an rpcd `login` section listing just that group would give; the page at
//! `?readonly=1` gets a session with only its read side, and the env LuCI's
//! dispatcher sets for a read-only menu node.
#![allow(dead_code)]

pub mod browser;

use crate::common::ns::Ns;
use crate::common::{ROADIE, run_with};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The package, laid out as in the LuCI tree.
pub const PACKAGE: &str = "openwrt-package/luci-app-roadie";
pub const VIEW: &str = "htdocs/luci-static/resources/view/roadie/status.js";
pub const ACL: &str = "root/usr/share/rpcd/acl.d/luci-app-roadie.json";
pub const MENU: &str = "root/usr/share/luci/menu.d/luci-app-roadie.json";
/// The ACL group the package defines and its menu entry depends on.
pub const GROUP: &str = "luci-app-roadie";

pub fn package(rel: &str) -> PathBuf {
    Path::new(REPO).join(PACKAGE).join(rel)
}

/// What an ACL group grants over ubus: object -> methods, per side.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grants {
    pub read: BTreeMap<String, BTreeSet<String>>,
    pub write: BTreeMap<String, BTreeSet<String>>,
}

impl Grants {
    /// Group `group` of the rpcd ACL file at `path`.
    pub fn load(path: &Path, group: &str) -> Grants {
        let acl: Value = serde_json::from_str(&fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let g = &acl[group];
        let side = |name: &str| -> BTreeMap<String, BTreeSet<String>> {
            g[name]["ubus"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(object, methods)| {
                    let m = methods
                        .as_array()
                        .unwrap_or_else(|| panic!("{group}.{name}.ubus.{object} is not a list"))
                        .iter()
                        .map(|m| m.as_str().unwrap().to_string())
                        .collect();
                    (object.clone(), m)
                })
                .collect()
        };
        Grants {
            read: side("read"),
            write: side("write"),
        }
    }

    /// Whether a session with both sides may call `object`.`method` (rpcd
    /// also takes `*` for any method).
    pub fn allows(&self, object: &str, method: &str) -> bool {
        [&self.read, &self.write].iter().any(|side| {
            side.get(object)
                .is_some_and(|m| m.contains(method) || m.contains("*"))
        })
    }

    /// Whether a read-only session may call `object`.`method`.
    pub fn allows_read(&self, object: &str, method: &str) -> bool {
        self.read
            .get(object)
            .is_some_and(|m| m.contains(method) || m.contains("*"))
    }

    /// Every `object.method` granted, either side.
    pub fn all(&self) -> BTreeSet<String> {
        [&self.read, &self.write]
            .iter()
            .flat_map(|side| {
                side.iter()
                    .flat_map(|(o, ms)| ms.iter().map(move |m| format!("{o}.{m}")))
            })
            .collect()
    }
}

/// The router's web side for one page session (see the module doc).
pub struct Stand {
    pub port: u16,
    /// Every ubus call the page made, as `object.method`, in order.
    pub calls: Arc<Mutex<Vec<String>>>,
    /// The ones refused (wrong session or not granted).
    pub denied: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Everything a request handler needs.
struct Site {
    socket: PathBuf,
    session: String,
    /// The read-only page's session.
    session_ro: String,
    grants: Grants,
    calls: Arc<Mutex<Vec<String>>>,
    denied: Arc<Mutex<Vec<String>>>,
}

impl Stand {
    /// Listens on 127.0.0.1 (a free port) inside `ns`; its `roadie`
    /// object talks to the daemon on `socket`.
    pub fn start(ns: &Ns, socket: &Path) -> Stand {
        let listener = ns.listen("127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let denied = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let site = Arc::new(Site {
            socket: socket.to_path_buf(),
            session: format!(
                "{:032x}",
                std::process::id() as u128 * 0x9e37_79b9_7f4a_7c15
            ),
            session_ro: format!("{:032x}", std::process::id() as u128 * 0x85eb_ca6b),
            grants: Grants::load(&package(ACL), GROUP),
            calls: calls.clone(),
            denied: denied.clone(),
        });
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || accept_loop(listener, site, stop))
        };
        Stand {
            port,
            calls,
            denied,
            stop,
            thread: Some(thread),
        }
    }

    /// The page's URL, as LuCI's dispatcher would serve it.
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/cgi-bin/luci/admin/status/roadie",
            self.port
        )
    }

    /// The page as a user with read access only sees it.
    pub fn readonly_url(&self) -> String {
        self.url() + "?readonly=1"
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn denied(&self) -> Vec<String> {
        self.denied.lock().unwrap().clone()
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, site: Arc<Site>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let site = site.clone();
                // One thread per connection: a call the daemon is slow to
                // answer must not hold up the page's other requests.
                thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    let _ = serve(s, &site);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("stand-in accept: {e}"),
        }
    }
}

/// One HTTP/1.1 request, then the connection closes.
fn serve(mut s: TcpStream, site: &Site) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("/").to_string(),
    );
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let readonly = query.split('&').any(|kv| kv == "readonly=1");
    let (status, ctype, content) = route(&method, path, readonly, &body, site);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        content.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&content)
}

fn route(
    method: &str,
    path: &str,
    readonly: bool,
    body: &[u8],
    site: &Site,
) -> (&'static str, &'static str, Vec<u8>) {
    const JS: &str = "application/javascript; charset=utf-8";
    let doubles = Path::new(REPO).join("tests/doubles");
    let file = |p: PathBuf, ctype: &'static str| match fs::read(&p) {
        Ok(b) => ("200 OK", ctype, b),
        Err(_) => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    };
    match (method, path) {
        ("POST", p) if p.starts_with("/ubus") => {
            let reply = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Array(batch)) => {
                    Value::Array(batch.iter().map(|m| jsonrpc(m, site)).collect())
                }
                Ok(msg) => jsonrpc(&msg, site),
                Err(_) => json!({"jsonrpc": "2.0", "id": null,
                                 "error": {"code": -32700, "message": "Parse error"}}),
            };
            ("200 OK", "application/json", reply.to_string().into_bytes())
        }
        ("GET", "/" | "/cgi-bin/luci/admin/status/roadie") => {
            let env = json!({
                "sessionid": if readonly { &site.session_ro } else { &site.session },
                "token": "0123456789abcdef0123456789abcdef",
                "ubuspath": "/ubus/",
                "scriptname": "/cgi-bin/luci",
                "requestpath": ["admin", "status", "roadie"],
                "nodespec": {"satisfied": true, "readonly": readonly},
                "pollinterval": 5,
                "rpctimeout": 20,
            });
            let html = fs::read_to_string(doubles.join("luci-double.html"))
                .unwrap()
                .replace("@ENV@", &env.to_string());
            ("200 OK", "text/html; charset=utf-8", html.into_bytes())
        }
        ("GET", "/luci-static/resources/luci-double.js") => {
            file(doubles.join("luci-double.js"), JS)
        }
        ("GET", "/luci-static/resources/luci-double.css") => {
            file(doubles.join("luci-double.css"), "text/css")
        }
        ("GET", p) if p.starts_with("/luci-static/resources/") && !p.contains("..") => {
            let rel = p.trim_start_matches('/');
            file(package("htdocs").join(rel), JS)
        }
        _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    }
}

/// One JSON-RPC 2.0 message to uhttpd's /ubus, answered as it and rpcd do.
fn jsonrpc(msg: &Value, site: &Site) -> Value {
    let id = msg["id"].clone();
    let error = |code: i64, message: &str| json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    if msg["jsonrpc"] != "2.0" {
        return error(-32600, "Invalid request");
    }
    if msg["method"] != "call" {
        return error(-32601, "Method not found");
    }
    let p = &msg["params"];
    let (Some(sid), Some(object), Some(method)) = (p[0].as_str(), p[1].as_str(), p[2].as_str())
    else {
        return error(-32602, "Invalid parameters");
    };
    let name = format!("{object}.{method}");
    site.calls.lock().unwrap().push(name.clone());
    let allowed = if sid == site.session {
        site.grants.allows(object, method)
    } else {
        sid == site.session_ro && site.grants.allows_read(object, method)
    };
    if !allowed {
        site.denied.lock().unwrap().push(name);
        return error(-32002, "Access denied");
    }
    let args = if p[3].is_object() {
        p[3].clone()
    } else {
        json!({})
    };
    // What rpcd does for an exec plugin: `PLUGIN call METHOD`, the
    // parameters on stdin, one JSON object back on stdout.
    let out = run_with(
        Command::new(ROADIE)
            .arg("-s")
            .arg(&site.socket)
            .args(["rpcd", "call", method]),
        Some(args.to_string().as_bytes()),
        Duration::from_secs(60),
    );
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(reply @ Value::Object(_)) => json!({"jsonrpc": "2.0", "id": id, "result": [0, reply]}),
        // rpcd: a plugin that printed no JSON object is an unspecified error.
        _ => json!({"jsonrpc": "2.0", "id": id, "result": [9]}),
    }
}
