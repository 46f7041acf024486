//! `apply = "uci"`: moving the LAN the OpenWrt way, so that a reboot or a
//! `network reload` keeps the new prefix and dnsmasq hands the cluster hosts
//! their new addresses.
//!
//! A move reads `uci -X show network.<section>` and `uci -X show dhcp`, works
//! out the edits (pure: [`plan`]), writes and commits them, runs
//! `ubus call network reload` and `/etc/init.d/dnsmasq reload`, and leaves it to
//! the caller to wait for the kernel to show the new address. [`Changes`] keeps
//! the old values, so the same edits can be undone ([`Uci::write`] with
//! `undo`).
//!
//! Other people's uncommitted changes are never committed nor lost. uci's
//! default savedir (/tmp/.uci, where `uci set` in a shell stages) stays on
//! the delta path whatever `-t` says, and `commit` writes every delta path's
//! changes into the file (checked against uci 24.10). So roadie stages its own
//! changes in a savedir of its own ([`own_savedir`]) and, for as long as it
//! reads, commits and reloads, moves the users' delta files aside
//! ([`Aside`]), putting them back afterwards (merged with anything staged in
//! the meantime), and at the next start if it died in between. netifd and
//! dnsmasq's init script read staged changes too: set aside, they do not
//! apply a user's half-finished edit either.
//!
//! Only the LAN section's `ipaddr` (and `netmask`) and the `ip` of `dhcp` host
//! (and domain) sections are touched. Style is kept: `ipaddr` + `netmask`
//! stays that way; a CIDR `ipaddr` is written as a `list ipaddr` (netifd takes
//! both forms; `uci show` cannot tell a one-entry list from an option).

use crate::config::OpenWrt;
use crate::plan::map_host;
use crate::quote::Q;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A command that hangs (a wedged ubus) must not hold the LAN task forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// An option's value as `uci show` prints it: one quoted string or several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Single(String),
    List(Vec<String>),
}

impl Value {
    fn items(&self) -> Vec<&str> {
        match self {
            Value::Single(s) => vec![s.as_str()],
            Value::List(l) => l.iter().map(String::as_str).collect(),
        }
    }
}

/// One section of `uci -X show CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// `lan`, or the generated name of an anonymous section (`cfg0a1b2c`).
    pub name: String,
    /// The section type (`interface`, `host`, ...).
    pub kind: String,
    pub options: Vec<(String, Value)>,
}

impl Section {
    pub fn get(&self, option: &str) -> Option<&Value> {
        self.options
            .iter()
            .find(|(k, _)| k == option)
            .map(|(_, v)| v)
    }
}

/// Parse `uci -X show` output (`config.section=type`,
/// `config.section.option='value' ['value' ...]`) of one config.
pub fn parse_show(text: &str) -> Result<Vec<Section>, String> {
    let mut sections: Vec<Section> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("uci show, line {}: {why}: {}", n + 1, Q(line));
        let (key, value) = line.split_once('=').ok_or_else(|| bad("no '='"))?;
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            [_config, section] => {
                if sections.iter().any(|s| s.name == *section) {
                    return Err(bad("section shown twice"));
                }
                sections.push(Section {
                    name: section.to_string(),
                    kind: value.to_string(),
                    options: Vec::new(),
                });
            }
            [_config, section, option] => {
                let values = split_values(value).map_err(|e| bad(&e))?;
                let value = match values.len() {
                    0 => return Err(bad("no value")),
                    1 => Value::Single(values.into_iter().next().unwrap_or_default()),
                    _ => Value::List(values),
                };
                let Some(s) = sections.iter_mut().find(|s| s.name == *section) else {
                    return Err(bad("option before its section"));
                };
                s.options.push((option.to_string(), value));
            }
            _ => return Err(bad("not config.section[.option]")),
        }
    }
    Ok(sections)
}

/// `'a' 'b'` -> [a, b]; `'it'\''s'` -> [it's] (uci escapes `'` that way).
fn split_values(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => {
                in_token = true;
                cur.push(chars.next().ok_or("trailing backslash")?);
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

/// One option to change: its key (`network.lan.ipaddr`), what it was, what
/// it becomes (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The edits of one move, and the prefix the LAN was found in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    pub list: Vec<Change>,
    /// The prefix the UCI LAN address was in before (the dhcp hosts moved
    /// from there).
    pub found_in: Option<Ipv4Net>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The configs (`network`, `dhcp`) the changes touch, in order.
    pub fn configs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.list {
            let config = c.key.split('.').next().unwrap_or("").to_string();
            if !out.contains(&config) {
                out.push(config);
            }
        }
        out
    }
}

/// The `uci` argument lists that make `change` take effect (or, with `undo`,
/// bring back the old value).
pub fn commands(change: &Change, undo: bool) -> Vec<Vec<String>> {
    let (from, to) = if undo {
        (&change.new, &change.old)
    } else {
        (&change.old, &change.new)
    };
    let key = &change.key;
    let mut out = Vec::new();
    match to {
        None => {
            if from.is_some() {
                out.push(vec!["delete".to_string(), key.clone()]);
            }
        }
        Some(Value::Single(v)) => out.push(vec!["set".to_string(), format!("{key}={v}")]),
        Some(Value::List(items)) => {
            if from.is_some() {
                out.push(vec!["delete".to_string(), key.clone()]);
            }
            for v in items {
                out.push(vec!["add_list".to_string(), format!("{key}={v}")]);
            }
        }
    }
    out
}

/// An `ipaddr` entry: `192.168.1.1/24`, or a plain address whose length
/// comes from `netmask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    addr: Ipv4Addr,
    len: Option<u8>,
}

fn parse_entry(s: &str) -> Option<Entry> {
    match s.split_once('/') {
        Some((a, l)) => {
            let net: Ipv4Net = format!("{a}/{l}").parse().ok()?;
            Some(Entry {
                addr: net.addr(),
                len: Some(net.prefix_len()),
            })
        }
        None => Some(Entry {
            addr: s.parse().ok()?,
            len: None,
        }),
    }
}

fn mask_len(mask: &str) -> Option<u8> {
    let m = u32::from(mask.parse::<Ipv4Addr>().ok()?);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The address the LAN section has now, as `address/len` (for messages and
/// for [`lan_has`]).
pub fn lan_addresses(network: &[Section], section: &str) -> Result<Vec<Ipv4Net>, String> {
    let s = lan_section(network, section)?;
    let (entries, mask) = entries(s, section)?;
    Ok(entries
        .iter()
        .filter_map(|e| Ipv4Net::new(e.addr, e.len.or(mask).unwrap_or(32)).ok())
        .collect())
}

fn lan_section<'a>(network: &'a [Section], section: &str) -> Result<&'a Section, String> {
    network.iter().find(|s| s.name == section).ok_or_else(|| {
        format!(
            "network.{section} not found in UCI; set [openwrt] network_section to the LAN's section"
        )
    })
}

/// `ipaddr` entries (unparseable ones are an error) and the netmask length.
fn entries(s: &Section, section: &str) -> Result<(Vec<Entry>, Option<u8>), String> {
    let Some(ipaddr) = s.get("ipaddr") else {
        let proto = match s.get("proto") {
            Some(Value::Single(p)) => format!(" (proto {p})"),
            _ => String::new(),
        };
        return Err(format!(
            "network.{section} has no ipaddr{proto}; apply = \"uci\" needs a static LAN address"
        ));
    };
    let mask = match s.get("netmask") {
        None => None,
        Some(Value::Single(m)) => Some(
            mask_len(m)
                .ok_or_else(|| format!("network.{section}.netmask {} is not a netmask", Q(m)))?,
        ),
        Some(Value::List(_)) => return Err(format!("network.{section}.netmask is a list")),
    };
    let mut out = Vec::new();
    for item in ipaddr.items() {
        out.push(parse_entry(item).ok_or_else(|| {
            format!(
                "network.{section}.ipaddr {} is not an IPv4 address",
                Q(item)
            )
        })?);
    }
    Ok((out, mask))
}

/// The edits that move the LAN to `to` (the router's new address with its
/// length): the LAN section's address, and every dhcp `host`/`domain` `ip`
/// in the prefix the LAN was in, to the same offset in the new prefix.
///
/// The LAN is looked for in `from` (roadie's current prefix), then in `home`.
/// Already at `to`: no network change, and the dhcp entries still in `from`
/// follow.
pub fn plan(
    network: &[Section],
    section: &str,
    dhcp: &[Section],
    from: Ipv4Net,
    home: Ipv4Net,
    to: Ipv4Net,
) -> Result<Changes, String> {
    let s = lan_section(network, section)?;
    let (entries, mask) = entries(s, section)?;
    let len_of = |e: &Entry| e.len.or(mask);
    let new_prefix = to.trunc();
    let mut changes = Changes::default();

    let already = entries
        .iter()
        .any(|e| e.addr == to.addr() && len_of(e).is_none_or(|l| l == to.prefix_len()));
    let old_prefix = if already {
        from
    } else {
        let mut found = None;
        for candidate in [from, home] {
            if let Some(i) = entries.iter().position(|e| {
                candidate.contains(&e.addr) && len_of(e).is_none_or(|l| l == candidate.prefix_len())
            }) {
                found = Some((i, candidate));
                break;
            }
        }
        let Some((i, old_prefix)) = found else {
            let have: Vec<String> = entries
                .iter()
                .map(|e| match len_of(e) {
                    Some(l) => format!("{}/{l}", e.addr),
                    None => e.addr.to_string(),
                })
                .collect();
            return Err(format!(
                "network.{section}.ipaddr is {}, in neither the current prefix {from} nor the home prefix {home}; refusing to change it (check [lan] address)",
                have.join(" ")
            ));
        };
        let ipaddr = s.get("ipaddr").cloned();
        let key = format!("network.{section}.ipaddr");
        let cidr = entries.iter().any(|e| e.len.is_some());
        if cidr || entries.len() > 1 {
            // A list (CIDR style): replace the entry in place, keep the others.
            let items: Vec<String> = ipaddr
                .as_ref()
                .map(|v| v.items().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            let new_items = items
                .iter()
                .enumerate()
                .map(|(j, item)| {
                    if j != i {
                        item.clone()
                    } else if entries[i].len.is_some() {
                        to.to_string()
                    } else {
                        to.addr().to_string()
                    }
                })
                .collect();
            changes.list.push(Change {
                key,
                old: ipaddr,
                new: Some(Value::List(new_items)),
            });
        } else {
            changes.list.push(Change {
                key,
                old: ipaddr,
                new: Some(Value::Single(to.addr().to_string())),
            });
        }
        old_prefix
    };
    changes.found_in = Some(old_prefix);

    // dhcp reservations (host) and local DNS names (domain) in the old prefix.
    if old_prefix != new_prefix {
        for sec in dhcp
            .iter()
            .filter(|s| s.kind == "host" || s.kind == "domain")
        {
            let Some(ip) = sec.get("ip") else { continue };
            let mut changed = false;
            let moved: Vec<String> = ip
                .items()
                .iter()
                .map(|item| {
                    let words: Vec<String> = item
                        .split_whitespace()
                        .map(|w| match w.parse::<Ipv4Addr>() {
                            Ok(a) => match map_host(a, old_prefix, new_prefix) {
                                Some(m) => {
                                    changed = true;
                                    m.to_string()
                                }
                                None => w.to_string(),
                            },
                            Err(_) => w.to_string(),
                        })
                        .collect();
                    words.join(" ")
                })
                .collect();
            if changed {
                let new = match ip {
                    Value::Single(_) => Value::Single(moved.join(" ")),
                    Value::List(_) => Value::List(moved),
                };
                changes.list.push(Change {
                    key: format!("dhcp.{}.ip", sec.name),
                    old: Some(ip.clone()),
                    new: Some(new),
                });
            }
        }
    }
    Ok(changes)
}

/// Where roadie stages its own changes: beside uci's savedir, so that a
/// rename between them stays on one filesystem.
pub fn own_savedir(cfg: &OpenWrt) -> PathBuf {
    suffixed(&cfg.uci_savedir, ".roadie")
}

/// Where users' delta files wait while roadie works.
fn aside_dir(cfg: &OpenWrt) -> PathBuf {
    suffixed(&cfg.uci_savedir, ".roadie-aside")
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Pure: the delta file to put back, given what was set aside and what was
/// staged in uci's savedir meanwhile (None: nothing): the older lines first,
/// as uci would have appended the newer ones.
pub fn merged_delta(aside: &str, meanwhile: Option<&str>) -> String {
    let mut out = aside.to_string();
    if let Some(m) = meanwhile.filter(|m| !m.is_empty()) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(m);
    }
    out
}

/// Users' staged changes of some configs, set aside until dropped.
pub struct Aside {
    savedir: PathBuf,
    dir: PathBuf,
    configs: Vec<String>,
}

impl Aside {
    /// Move `configs`' delta files out of uci's savedir (after putting back
    /// any left from a roadie that died while they were aside).
    pub fn take(cfg: &OpenWrt, configs: &[&str]) -> Result<Aside, String> {
        restore_all(cfg)?;
        let dir = aside_dir(cfg);
        let mut aside = Aside {
            savedir: cfg.uci_savedir.clone(),
            dir: dir.clone(),
            configs: Vec::new(),
        };
        for config in configs {
            let staged = cfg.uci_savedir.join(config);
            match std::fs::metadata(&staged) {
                Ok(m) if m.len() > 0 => {}
                _ => continue,
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            std::fs::rename(&staged, dir.join(config)).map_err(|e| {
                format!(
                    "cannot set aside the uncommitted changes in {}: {e}",
                    staged.display()
                )
            })?;
            log::info!(
                "uncommitted UCI changes in {} set aside while roadie commits its own",
                staged.display()
            );
            aside.configs.push(config.to_string());
        }
        Ok(aside)
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        for config in std::mem::take(&mut self.configs) {
            if let Err(e) = restore(&self.dir, &self.savedir, &config) {
                log::error!("{e}");
            }
        }
    }
}

/// Put `config`'s set-aside delta back into `savedir`.
fn restore(dir: &Path, savedir: &Path, config: &str) -> Result<(), String> {
    let from = dir.join(config);
    let to = savedir.join(config);
    let aside = std::fs::read_to_string(&from)
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let meanwhile = std::fs::read_to_string(&to).ok();
    let text = merged_delta(&aside, meanwhile.as_deref());
    let lost = || format!("the uncommitted UCI changes are kept in {}", from.display());
    std::fs::create_dir_all(savedir)
        .map_err(|e| format!("cannot create {}: {e}; {}", savedir.display(), lost()))?;
    let tmp = suffixed(&to, ".roadie-tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &to))
        .map_err(|e| format!("cannot put back {}: {e}; {}", to.display(), lost()))?;
    std::fs::remove_file(&from).map_err(|e| format!("cannot remove {}: {e}", from.display()))
}

/// Put back every delta file left aside (a roadie that died mid-move).
pub fn restore_all(cfg: &OpenWrt) -> Result<(), String> {
    let dir = aside_dir(cfg);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        restore(&dir, &cfg.uci_savedir, &name)?;
        log::warn!(
            "put back uncommitted UCI changes of {name} that a previous roadie had set aside"
        );
    }
    Ok(())
}

/// The OpenWrt commands, at the configured paths.
pub struct Uci<'a> {
    pub cfg: &'a OpenWrt,
}

impl Uci<'_> {
    /// `uci -t OWN ARGS...`: roadie's changes go to its own savedir.
    async fn uci(&self, args: &[&str]) -> Result<String, String> {
        let own = own_savedir(self.cfg);
        let own = own.to_string_lossy();
        let mut all = vec!["-t", own.as_ref()];
        all.extend_from_slice(args);
        run(&self.cfg.uci, &all).await
    }

    /// `uci -X show WHAT`, parsed.
    pub async fn show(&self, what: &str) -> Result<Vec<Section>, String> {
        let out = self.uci(&["-X", "show", what]).await?;
        parse_show(&out)
    }

    pub async fn network(&self) -> Result<Vec<Section>, String> {
        self.show(&format!("network.{}", self.cfg.network_section))
            .await
    }

    pub async fn dhcp(&self) -> Result<Vec<Section>, String> {
        // No dhcp config at all (dnsmasq not installed): nothing to move.
        let path = self.cfg.uci.display().to_string();
        match self.uci(&["-X", "show", "dhcp"]).await {
            Ok(out) => parse_show(&out),
            Err(e) if e.contains("Entry not found") => {
                log::info!("{path}: no dhcp config; only the LAN address moves");
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Stage `changes` (or, with `undo`, their reverse) in roadie's own
    /// savedir and commit them. A failure before the commit drops what roadie
    /// staged (and only that). The caller holds an [`Aside`].
    pub async fn write(&self, changes: &Changes, undo: bool) -> Result<(), String> {
        let configs = changes.configs();
        for c in &changes.list {
            for args in commands(c, undo) {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                if let Err(e) = self.uci(&args).await {
                    for config in &configs {
                        let _ = self.uci(&["revert", config]).await;
                    }
                    return Err(e);
                }
            }
        }
        for config in &configs {
            self.uci(&["commit", config]).await?;
        }
        Ok(())
    }

    /// `ubus call network reload` and `/etc/init.d/dnsmasq reload`: netifd
    /// applies the new address, dnsmasq the new reservations.
    pub async fn reload(&self) -> Result<(), String> {
        run(&self.cfg.ubus, &["call", "network", "reload"]).await?;
        let dnsmasq = self.cfg.init_d.join("dnsmasq");
        if dnsmasq.exists() {
            run(&dnsmasq, &["reload"]).await?;
        } else {
            log::info!("{} not found: dnsmasq not reloaded", dnsmasq.display());
        }
        Ok(())
    }
}

/// Runs a command with [`COMMAND_TIMEOUT`]; see [`crate::command::run`].
async fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    crate::command::run(program, args, COMMAND_TIMEOUT).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_delta_keeps_the_set_aside_lines_first() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("a='1'\n", None, "a='1'\n"),
            ("a='1'\n", Some(""), "a='1'\n"),
            ("a='1'\n", Some("b='2'\n"), "a='1'\nb='2'\n"),
            ("a='1'", Some("b='2'\n"), "a='1'\nb='2'\n"),
            ("", Some("b='2'\n"), "b='2'\n"),
        ];
        for (aside, meanwhile, want) in cases {
            assert_eq!(
                merged_delta(aside, *meanwhile),
                *want,
                "{aside:?} {meanwhile:?}"
            );
        }
    }

    /// Set aside, staged meanwhile, put back merged; left over by a dead
    /// roadie, put back by the next one.
    #[test]
    fn aside_moves_users_deltas_out_and_back() {
        let dir = std::env::temp_dir().join(format!("roadie-aside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = OpenWrt {
            uci_savedir: dir.join(".uci"),
            ..OpenWrt::default()
        };
        std::fs::create_dir_all(&cfg.uci_savedir).unwrap();
        let network = cfg.uci_savedir.join("network");
        std::fs::write(&network, "network.wan.metric='20'\n").unwrap();
        std::fs::write(cfg.uci_savedir.join("dhcp"), "").unwrap();
        {
            let _aside = Aside::take(&cfg, &["network", "dhcp"]).unwrap();
            assert!(!network.exists(), "still staged while roadie commits");
            // Someone runs `uci set` meanwhile.
            std::fs::write(&network, "network.wan.mtu='1400'\n").unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&network).unwrap(),
            "network.wan.metric='20'\nnetwork.wan.mtu='1400'\n"
        );
        // An empty delta file is not moved.
        assert!(cfg.uci_savedir.join("dhcp").exists());

        // A roadie killed while the changes were aside: the next one puts
        // them back before anything else.
        let leftover = Aside::take(&cfg, &["network"]).unwrap();
        std::mem::forget(leftover);
        assert!(!network.exists());
        restore_all(&cfg).unwrap();
        assert_eq!(
            std::fs::read_to_string(&network).unwrap(),
            "network.wan.metric='20'\nnetwork.wan.mtu='1400'\n"
        );
        assert_eq!(own_savedir(&cfg), dir.join(".uci.roadie"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn single(s: &str) -> Option<Value> {
        Some(Value::Single(s.into()))
    }

    fn list(v: &[&str]) -> Option<Value> {
        Some(Value::List(v.iter().map(|s| s.to_string()).collect()))
    }

    const NETWORK_MASK: &str = "\
network.lan=interface
network.lan.device='br-lan'
network.lan.proto='static'
network.lan.ipaddr='192.168.1.1'
network.lan.netmask='255.255.255.0'
network.lan.ip6assign='60'
";

    const NETWORK_CIDR: &str = "\
network.lan=interface
network.lan.device='br-lan'
network.lan.proto='static'
network.lan.ipaddr='192.168.1.1/24' '172.31.0.1/16'
";

    const DHCP: &str = "\
dhcp.cfg01411c=dnsmasq
dhcp.cfg01411c.domainneeded='1'
dhcp.cfg01411c.server='/lan/' '8.8.8.8'
dhcp.lan=dhcp
dhcp.lan.interface='lan'
dhcp.lan.start='100'
dhcp.lan.limit='150'
dhcp.cfg04fe7e=host
dhcp.cfg04fe7e.name='master'
dhcp.cfg04fe7e.mac='52:54:00:12:34:56'
dhcp.cfg04fe7e.ip='192.168.1.100'
dhcp.worker=host
dhcp.worker.name='worker'
dhcp.worker.ip='192.168.1.101'
dhcp.cfg06fe7e=host
dhcp.cfg06fe7e.name='printer'
dhcp.cfg06fe7e.ip='10.0.0.5'
dhcp.cfg07fe7e=host
dhcp.cfg07fe7e.name='nomatch'
dhcp.cfg07fe7e.ip='ignore'
dhcp.cfg08fe7e=domain
dhcp.cfg08fe7e.name='api.cluster'
dhcp.cfg08fe7e.ip='192.168.1.100'
";

    #[test]
    fn parses_show_output() {
        let s = parse_show(NETWORK_CIDR).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "lan");
        assert_eq!(s[0].kind, "interface");
        assert_eq!(s[0].get("proto"), single("static").as_ref());
        assert_eq!(
            s[0].get("ipaddr"),
            list(&["192.168.1.1/24", "172.31.0.1/16"]).as_ref()
        );
        let d = parse_show(DHCP).unwrap();
        assert_eq!(d.len(), 7);
        assert_eq!(d[0].get("server"), list(&["/lan/", "8.8.8.8"]).as_ref());
        assert_eq!(d[2].name, "cfg04fe7e");
        assert_eq!(d[2].kind, "host");
    }

    #[test]
    fn show_values_unescape() {
        // (value as uci show prints it, values)
        let cases: &[(&str, &[&str])] = &[
            ("'a'", &["a"]),
            ("'a b'", &["a b"]),
            ("'a' 'b c' 'd'", &["a", "b c", "d"]),
            (r"'it'\''s'", &["it's"]),
            (r"'a'\''' 'b'", &["a'", "b"]),
            ("''", &[""]),
            ("plain", &["plain"]),
        ];
        for (text, want) in cases {
            let got = split_values(text).unwrap();
            assert_eq!(got, *want, "{text}");
        }
        assert!(split_values("'open").is_err());
    }

    #[test]
    fn bad_show_output_is_an_error_with_context() {
        for (text, needle) in [
            (
                "network.lan.ipaddr='1.2.3.4'\n",
                "option before its section",
            ),
            ("garbage\n", "no '='"),
            (
                "network.lan=interface\nnetwork.lan.ipaddr='open\n",
                "unterminated",
            ),
            ("a.b.c.d=x\n", "not config.section"),
        ] {
            let e = parse_show(text).unwrap_err();
            assert!(e.contains(needle) && e.contains("line"), "{text}: {e}");
        }
    }

    fn plan_str(network: &str, dhcp: &str, from: &str, to: &str) -> Result<Changes, String> {
        plan(
            &parse_show(network).unwrap(),
            "lan",
            &parse_show(dhcp).unwrap(),
            net(from),
            net("192.168.1.0/24"),
            net(to),
        )
    }

    #[test]
    fn plans_the_move() {
        struct Case {
            name: &'static str,
            network: &'static str,
            from: &'static str,
            to: &'static str,
            want: Vec<Change>,
        }
        let ch = |key: &str, old: Option<Value>, new: Option<Value>| Change {
            key: key.into(),
            old,
            new,
        };
        let hosts = |old: &str, new: &str| {
            vec![
                ch(
                    "dhcp.cfg04fe7e.ip",
                    single(&format!("{old}.100")),
                    single(&format!("{new}.100")),
                ),
                ch(
                    "dhcp.worker.ip",
                    single(&format!("{old}.101")),
                    single(&format!("{new}.101")),
                ),
                ch(
                    "dhcp.cfg08fe7e.ip",
                    single(&format!("{old}.100")),
                    single(&format!("{new}.100")),
                ),
            ]
        };
        let cases = vec![
            Case {
                name: "ipaddr + netmask: only ipaddr changes",
                network: NETWORK_MASK,
                from: "192.168.1.0/24",
                to: "10.9.8.1/24",
                want: [
                    vec![ch(
                        "network.lan.ipaddr",
                        single("192.168.1.1"),
                        single("10.9.8.1"),
                    )],
                    hosts("192.168.1", "10.9.8"),
                ]
                .concat(),
            },
            Case {
                name: "CIDR list: the entry is replaced in place, others kept",
                network: NETWORK_CIDR,
                from: "192.168.1.0/24",
                to: "10.9.8.1/24",
                want: [
                    vec![ch(
                        "network.lan.ipaddr",
                        list(&["192.168.1.1/24", "172.31.0.1/16"]),
                        list(&["10.9.8.1/24", "172.31.0.1/16"]),
                    )],
                    hosts("192.168.1", "10.9.8"),
                ]
                .concat(),
            },
            Case {
                name: "one CIDR value becomes a one-entry list",
                network: "network.lan=interface\nnetwork.lan.ipaddr='192.168.1.1/24'\n",
                from: "192.168.1.0/24",
                to: "10.9.8.1/24",
                want: [
                    vec![ch(
                        "network.lan.ipaddr",
                        single("192.168.1.1/24"),
                        list(&["10.9.8.1/24"]),
                    )],
                    hosts("192.168.1", "10.9.8"),
                ]
                .concat(),
            },
            Case {
                name: "moved before: found in the current prefix, not home",
                network: "network.lan=interface\nnetwork.lan.ipaddr='10.9.8.1'\nnetwork.lan.netmask='255.255.255.0'\n",
                from: "10.9.8.0/24",
                to: "10.20.30.1/24",
                want: vec![ch(
                    "network.lan.ipaddr",
                    single("10.9.8.1"),
                    single("10.20.30.1"),
                )],
            },
            Case {
                name: "state says moved, UCI still at home: moves from home",
                network: NETWORK_MASK,
                from: "10.9.8.0/24",
                to: "10.20.30.1/24",
                want: [
                    vec![ch(
                        "network.lan.ipaddr",
                        single("192.168.1.1"),
                        single("10.20.30.1"),
                    )],
                    hosts("192.168.1", "10.20.30"),
                ]
                .concat(),
            },
            Case {
                name: "already there: nothing to change in network; hosts still follow",
                network: "network.lan=interface\nnetwork.lan.ipaddr='10.9.8.1/24'\n",
                from: "192.168.1.0/24",
                to: "10.9.8.1/24",
                want: hosts("192.168.1", "10.9.8"),
            },
            Case {
                name: "a netmask of another length than [lan] address: refused",
                network: "network.lan=interface\nnetwork.lan.ipaddr='192.168.1.1'\nnetwork.lan.netmask='255.255.0.0'\n",
                from: "192.168.1.0/24",
                to: "10.9.8.1/24",
                want: vec![],
            },
        ];
        for c in cases {
            let got = plan_str(c.network, DHCP, c.from, c.to);
            if c.want.is_empty() {
                let e = got.unwrap_err();
                assert!(e.contains("in neither"), "{}: {e}", c.name);
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(got.list, c.want, "{}", c.name);
        }
    }

    #[test]
    fn plan_refuses_what_it_does_not_understand() {
        for (network, needle) in [
            ("network.wan=interface\n", "network.lan not found"),
            (
                "network.lan=interface\nnetwork.lan.proto='dhcp'\n",
                "no ipaddr (proto dhcp)",
            ),
            (
                "network.lan=interface\nnetwork.lan.ipaddr='192.168.8.1/24'\n",
                "is 192.168.8.1/24, in neither the current prefix 192.168.1.0/24 nor the home prefix 192.168.1.0/24",
            ),
            (
                "network.lan=interface\nnetwork.lan.ipaddr='router'\n",
                "not an IPv4 address",
            ),
            (
                "network.lan=interface\nnetwork.lan.ipaddr='192.168.1.1'\nnetwork.lan.netmask='255.0.255.0'\n",
                "not a netmask",
            ),
        ] {
            let e = plan_str(network, "", "192.168.1.0/24", "10.9.8.1/24").unwrap_err();
            assert!(e.contains(needle), "{network}: {e}");
        }
    }

    #[test]
    fn dhcp_entries_with_several_addresses_and_lists() {
        let dhcp = "dhcp.a=host\ndhcp.a.ip='192.168.1.7 192.168.1.8'\ndhcp.b=host\ndhcp.b.ip='192.168.1.9' '10.0.0.1'\n";
        let c = plan_str(NETWORK_MASK, dhcp, "192.168.1.0/24", "10.9.8.1/24").unwrap();
        assert_eq!(
            c.list[1..],
            [
                Change {
                    key: "dhcp.a.ip".into(),
                    old: single("192.168.1.7 192.168.1.8"),
                    new: single("10.9.8.7 10.9.8.8"),
                },
                Change {
                    key: "dhcp.b.ip".into(),
                    old: list(&["192.168.1.9", "10.0.0.1"]),
                    new: list(&["10.9.8.9", "10.0.0.1"]),
                },
            ]
        );
        assert_eq!(c.found_in, Some(net("192.168.1.0/24")));
        assert_eq!(c.configs(), ["network", "dhcp"]);
    }

    #[test]
    fn commands_do_and_undo() {
        let set = Change {
            key: "network.lan.ipaddr".into(),
            old: single("192.168.1.1"),
            new: single("10.9.8.1"),
        };
        assert_eq!(
            commands(&set, false),
            [["set", "network.lan.ipaddr=10.9.8.1"]]
        );
        assert_eq!(
            commands(&set, true),
            [["set", "network.lan.ipaddr=192.168.1.1"]]
        );
        let to_list = Change {
            key: "network.lan.ipaddr".into(),
            old: single("192.168.1.1/24"),
            new: list(&["10.9.8.1/24", "172.31.0.1/16"]),
        };
        assert_eq!(
            commands(&to_list, false),
            [
                vec!["delete", "network.lan.ipaddr"],
                vec!["add_list", "network.lan.ipaddr=10.9.8.1/24"],
                vec!["add_list", "network.lan.ipaddr=172.31.0.1/16"],
            ]
        );
        assert_eq!(
            commands(&to_list, true),
            [["set", "network.lan.ipaddr=192.168.1.1/24"]]
        );
        let add = Change {
            key: "network.lan.netmask".into(),
            old: None,
            new: single("255.255.255.0"),
        };
        assert_eq!(commands(&add, true), [["delete", "network.lan.netmask"]]);
        assert_eq!(
            commands(&add, false),
            [["set", "network.lan.netmask=255.255.255.0"]]
        );
    }

    #[test]
    fn lan_addresses_in_both_styles() {
        let n = parse_show(NETWORK_MASK).unwrap();
        assert_eq!(lan_addresses(&n, "lan").unwrap(), [net("192.168.1.1/24")]);
        let n = parse_show(NETWORK_CIDR).unwrap();
        assert_eq!(
            lan_addresses(&n, "lan").unwrap(),
            [net("192.168.1.1/24"), net("172.31.0.1/16")]
        );
    }

    #[test]
    fn netmask_lengths() {
        assert_eq!(mask_len("255.255.255.0"), Some(24));
        assert_eq!(mask_len("255.255.255.252"), Some(30));
        assert_eq!(mask_len("0.0.0.0"), Some(0));
        assert_eq!(mask_len("255.255.255.255"), Some(32));
        assert_eq!(mask_len("255.0.255.0"), None);
        assert_eq!(mask_len("x"), None);
    }
}
