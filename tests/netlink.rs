//! The thin OS layers driven for real: `lan::apply` and `netwatch` against the
//! kernel's netlink, inside a network namespace this test creates and removes.
//! The test thread joins the namespace with setns(2) (a per-thread attribute),
//! so the library code runs exactly as in the daemon.

mod common;

use ipnet::Ipv4Net;
use roadie::lan::apply;
use roadie::netlink;
use roadie::netwatch::{self, NetState};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// A namespace with a veth pair `lan0`/`lan1`, removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        if !common::lab_possible() {
            return None;
        }
        let name = format!("rdn{}{tag}", std::process::id());
        let ns = Netns(name);
        ns.ip(&["netns", "add", &ns.0]);
        ns.ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns.ip(&[
            "-n", &ns.0, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
        ]);
        ns.ip(&["-n", &ns.0, "link", "set", "lan0", "up"]);
        ns.ip(&["-n", &ns.0, "link", "set", "lan1", "up"]);
        Some(ns)
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -4 -o addr show dev IF` as a list of CIDRs.
    fn addrs(&self, dev: &str) -> Vec<String> {
        self.ip(&["-n", &self.0, "-4", "-o", "addr", "show", "dev", dev])
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
            .collect()
    }

    /// Run `f` on a thread inside the namespace, with a current-thread runtime.
    fn run<T: Send + 'static>(&self, f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns file");
            // SAFETY: setns on a valid namespace fd; affects this thread only.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f())
        })
        .join()
        .expect("namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test prefix")
}

#[test]
fn apply_moves_the_address_and_is_idempotent() {
    let Some(ns) = Netns::new("a") else { return };
    ns.ip(&["-n", &ns.0, "addr", "add", "192.168.1.1/24", "dev", "lan0"]);
    let (first, second) = ns.run(async || {
        let mut nl = netlink::Socket::open().expect("netlink");
        let new = net("10.9.8.1/24");
        let old = [net("192.168.1.0/24")];
        let first = apply::apply(&mut nl, "lan0", new, &old).await;
        let second = apply::apply(&mut nl, "lan0", new, &old).await;
        (first, second)
    });
    let first = first.expect("first apply");
    assert!(first.added);
    assert_eq!(first.removed, vec![net("192.168.1.1/24")]);
    // The second run finds everything in place and changes nothing.
    assert_eq!(second.expect("second apply"), apply::Applied::default());
    assert_eq!(ns.addrs("lan0"), vec!["10.9.8.1/24"]);
    // Connected routes follow: the new prefix on lan0, the old one gone.
    let routes = ns.ip(&["-n", &ns.0, "-4", "route", "show", "dev", "lan0"]);
    assert!(routes.contains("10.9.8.0/24"), "{routes}");
    assert!(!routes.contains("192.168.1.0/24"), "{routes}");
}

#[test]
fn apply_leaves_unrelated_addresses_and_reports_missing_interfaces() {
    let Some(ns) = Netns::new("b") else { return };
    ns.ip(&["-n", &ns.0, "addr", "add", "192.168.1.1/24", "dev", "lan0"]);
    ns.ip(&["-n", &ns.0, "addr", "add", "172.20.0.1/16", "dev", "lan0"]);
    let (moved, missing) = ns.run(async || {
        let mut nl = netlink::Socket::open().expect("netlink");
        let moved = apply::apply(
            &mut nl,
            "lan0",
            net("10.9.8.1/24"),
            &[net("192.168.1.0/24")],
        )
        .await;
        let missing = apply::apply(&mut nl, "br-nope", net("10.9.8.1/24"), &[]).await;
        (moved, missing)
    });
    moved.expect("apply");
    let mut have = ns.addrs("lan0");
    have.sort();
    assert_eq!(have, vec!["10.9.8.1/24", "172.20.0.1/16"]);
    let e = missing.expect_err("a missing interface is an error");
    assert!(e.contains("br-nope") && e.contains("not found"), "{e}");
}

/// What crate::absorb uses in place of running `nft`: whether a table
/// exists, and a notification when any table goes (a firewall restart).
#[test]
fn nftables_tables_are_seen_and_their_removal_is_notified() {
    let Some(ns) = Netns::new("n") else { return };
    let nft_ok = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "nft", "add", "table", "netdev", "rdtest",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !nft_ok {
        common::skip("nft does not work here (nftables not installed?)");
        return;
    }
    let name = ns.0.clone();
    let (before, notified, after, missing) = ns.run(async move || {
        let mut q = netlink::Socket::open_netfilter(0).expect("netfilter socket");
        let mut ev = netlink::Socket::open_netfilter(netlink::GROUPS_NFTABLES)
            .expect("netfilter event socket");
        let before = q.nft_table_exists(netlink::NFPROTO_NETDEV, "rdtest").await;
        let del = tokio::process::Command::new("ip")
            .args([
                "netns", "exec", &name, "nft", "delete", "table", "netdev", "rdtest",
            ])
            .status()
            .await
            .expect("nft delete");
        assert!(del.success());
        let notified = tokio::time::timeout(Duration::from_secs(5), ev.event()).await;
        let after = q.nft_table_exists(netlink::NFPROTO_NETDEV, "rdtest").await;
        let missing = q.nft_table_exists(netlink::NFPROTO_NETDEV, "never").await;
        (before, notified, after, missing)
    });
    assert!(before.expect("query"), "the table is there");
    assert_eq!(
        notified.expect("a notification within 5 s").expect("event"),
        netlink::Event::Changed
    );
    assert!(!after.expect("query"), "the table is gone");
    assert!(!missing.expect("query"), "no such table");
}

#[test]
fn netwatch_dumps_then_follows_events() {
    let Some(ns) = Netns::new("w") else { return };
    ns.ip(&["-n", &ns.0, "addr", "add", "10.66.0.5/24", "dev", "lan1"]);
    ns.ip(&["-n", &ns.0, "route", "add", "default", "via", "10.66.0.254"]);
    let name = ns.0.clone();
    let seen = ns.run(async move || {
        let (tx, mut rx) = tokio::sync::watch::channel(NetState::default());
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(netwatch::run(tx, cancel.clone()));
        let wait = async |rx: &mut tokio::sync::watch::Receiver<NetState>,
                          what: &str,
                          f: &dyn Fn(&NetState) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if f(&rx.borrow_and_update()) {
                    return;
                }
                assert!(Instant::now() < deadline, "netwatch never showed {what}");
                let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
            }
        };
        let wan = vec!["lan1".to_string()];
        let uplink = |s: &NetState| netwatch::view(s, &wan, "lan0").0.remove(0);
        wait(&mut rx, "the initial dump", &|s| {
            uplink(s).gateway == Some("10.66.0.254".parse().unwrap())
        })
        .await;
        let first = uplink(&rx.borrow());
        // An event: the uplink renumbers. `ip` runs in this thread's namespace.
        let out = tokio::process::Command::new("ip")
            .args(["addr", "replace", "192.168.1.57/24", "dev", "lan1"])
            .output()
            .await
            .expect("ip");
        assert!(out.status.success(), "ip in {name}");
        wait(&mut rx, "the new address", &|s| {
            uplink(s).addresses.contains(&net("192.168.1.57/24"))
        })
        .await;
        let second = uplink(&rx.borrow());
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("netwatch stops on cancel")
            .expect("netwatch task");
        (first, second)
    });
    let (first, second) = seen;
    assert!(first.up);
    assert_eq!(first.addresses, vec![net("10.66.0.5/24")]);
    assert!(
        second.routes.contains(&net("192.168.1.0/24")),
        "{:?}",
        second.routes
    );
}

#[test]
fn a_dump_many_times_the_receive_buffer_comes_back_whole() {
    let Some(ns) = Netns::new("d") else { return };
    // 3,000 routes: a dump of several hundred KiB, so many datagrams of at
    // most the 16 KiB the socket reads at once.
    let batch = std::env::temp_dir().join(format!("roadie-routes-{}", std::process::id()));
    let lines: String = (0..3000)
        .map(|i| format!("route add 10.77.{}.{}/32 dev lan0\n", i / 250, i % 250))
        .collect();
    std::fs::write(&batch, lines).expect("write the ip batch");
    let path = batch.to_str().expect("utf-8 temp path").to_string();
    ns.ip(&["-n", &ns.0, "-batch", &path]);
    let _ = std::fs::remove_file(&batch);
    let routes = ns.run(async || {
        let mut nl = netlink::Socket::open().expect("netlink");
        nl.routes().await
    });
    let routes = routes.expect("route dump");
    let ours = routes
        .iter()
        .filter(|r| net("10.77.0.0/16").contains(&r.dst) && r.dst.prefix_len() == 32)
        .count();
    assert_eq!(ours, 3000, "every route of the dump");
}
