//! The harness for roadie's integration tests, one concern a file:
//!
//! - [`proc`]: run a command with a deadline, start one in the background
//!   with a log, look at processes in /proc, stop them by PID;
//! - [`wait`]: polling with a deadline (the only way the harness waits);
//! - [`ns`]: network namespaces, veth links, sockets inside a namespace;
//! - [`sshd`]: OpenSSH's sshd in a namespace, keys, the test account;
//! - [`daemon`]: `roadie daemon` in a namespace, its control socket, status;
//! - [`dhcp`]: the DHCP lab (dnsmasq upstream, udhcpc, a node), [`Lab`];
//! - [`clients`]: the 4-client lab (udhcpc, dhclient, dhcpcd, networkd on
//!   the router's bridge, a hotel uplink), [`clients::ClientLab`];
//! - [`openwrt`]: a router made of OpenWrt's own userland (`OPENWRT_ROOT`),
//!   [`openwrt::Router`];
//! - [`portal`]: a hotel's captive portal (an HTTP server in a namespace).
//!
//! The tunnel tests build their labs from the same parts in
//! tests/tunnel_lab. Everything a lab starts dies with the test process;
//! every private address lives in namespaces the lab creates and removes.
// Each test crate uses a different part of the harness.
#![allow(dead_code)]

pub mod clients;
pub mod daemon;
pub mod dhcp;
pub mod ns;
pub mod openwrt;
pub mod portal;
pub mod proc;
pub mod sshd;
pub mod wait;

#[allow(unused_imports)]
pub use daemon::{Roadie, evaluations, history_len, lan_prefix, settling, tunnel0, wan};
#[allow(unused_imports)]
pub use dhcp::{HookRun, Lab, LabOpts, SSHD_ADDR};
#[allow(unused_imports)]
pub use ns::Ns;
#[allow(unused_imports)]
pub use proc::{alive, descendants, proc_state, run_ok, run_with, sh, signal};
#[allow(unused_imports)]
pub use sshd::{SSHD, Sshd, USER, ensure_user, fingerprint, keygen};
#[allow(unused_imports)]
pub use wait::{wait_for, wait_until};

use ipnet::Ipv4Net;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

/// The binary under test.
pub const ROADIE: &str = env!("CARGO_BIN_EXE_roadie");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Default deadline for things that normally take well under a second.
pub const SHORT: Duration = Duration::from_secs(10);
/// Deadline for anything involving DHCP or roadie settling and moving.
pub const LONG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Skipping

/// True when the lab can run here. Otherwise prints "SKIP: reason" and
/// returns false — or panics when CI=true, because CI must not skip.
pub fn lab_possible() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the network-namespace lab needs root");
        return false;
    }
    true
}

pub fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the lab cannot run: {reason}");
    }
    println!("SKIP: {reason}");
    eprintln!("SKIP: {reason}");
}

// ---------------------------------------------------------------------------
// Names and files

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name prefix unique to this test process and lab: `<tag><pid>x<n>`.
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{tag}{}x{n}", std::process::id())
}

/// A fresh directory `<tmp>/<base>/<id>`, mode 0755 (sshd reads
/// authorized_keys there as the user logging in).
pub fn lab_dir(base: &str, id: &str) -> PathBuf {
    let d = std::env::temp_dir().join(base).join(id);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create lab dir");
    for p in [d.parent().unwrap(), d.as_path()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    d
}

/// Removes a [`lab_dir`], unless the test is panicking (then it says where
/// the files are) or ROADIE_LAB_KEEP is set.
pub fn remove_lab_dir(dir: &Path) {
    if thread::panicking() {
        eprintln!("lab files kept in {}", dir.display());
    } else if std::env::var_os("ROADIE_LAB_KEEP").is_none() {
        let _ = fs::remove_dir_all(dir);
    }
}

pub fn chmod_x(p: &Path) {
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------
// Addresses

pub fn net(cidr: &str) -> Ipv4Net {
    cidr.parse::<Ipv4Net>()
        .unwrap_or_else(|e| panic!("bad CIDR {cidr:?}: {e}"))
}

/// `192.168.1.77/24` -> `192.168.1.0/24`
pub fn prefix_of(cidr: &str) -> String {
    net(cidr).trunc().to_string()
}

/// The address at `offset` inside `prefix` (`10.9.8.0/24`, 100 -> `10.9.8.100`).
pub fn host_in(prefix: &str, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net(prefix).network()) + offset)
}
