//! The OpenWrt side of roadie without a router: the procd init script (sh -n,
//! shellcheck, and a run against a recording double of rc.common/procd), the
//! SDK Makefile's conventions, the packaged default config, and the .ipk that
//! scripts/build-ipk makes from the cross-built mipsel binary.
//!
//! The .ipk test needs target/mipsel-unknown-linux-musl/release/roadie (from
//! scripts/cross-build or scripts/test-cross). Without it the test prints
//! SKIP, except under CI=true, where it builds it (a few minutes cold).

mod common;

use common::{ROADIE, run_with, skip};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const INIT: &str = "openwrt-package/files/roadie.init";
const MIPSEL: &str = "mipsel-unknown-linux-musl";

fn repo(p: &str) -> PathBuf {
    Path::new(REPO).join(p)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("roadie-pkg-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Runs a command (5 min deadline), returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = run_with(cmd, None, Duration::from_secs(300));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every shell script this part of the project ships or tests with.
const UCI_DEFAULTS: &str = "openwrt-package/files/roadie.uci-defaults";

const SHELL_SCRIPTS: &[&str] = &[
    INIT,
    UCI_DEFAULTS,
    "scripts/cross-build",
    "scripts/build-ipk",
    "scripts/test-cross",
    "scripts/install-deps",
    "scripts/fresh-check",
    "scripts/test",
    "scripts/fuzz",
    "scripts/zig/cc",
    "scripts/zig/ar",
    "scripts/zig/mipsel-unknown-linux-musl",
    "scripts/zig/mips-unknown-linux-musl",
    "scripts/zig/aarch64-unknown-linux-musl",
    "scripts/zig/armv7-unknown-linux-musleabihf",
    "scripts/zig/x86_64-unknown-linux-musl",
    "examples/udhcpc-absorb.script",
    "openwrt-package/files/roadie.netifd-proto",
    "openwrt-package/files/roadie.dhcp-script",
    "tests/doubles/ubus-double",
    "tests/doubles/dnsmasq-init-double",
    "tests/doubles/rc.common-double",
    "tests/openwrt-router",
];

#[test]
fn shell_scripts_parse_and_pass_shellcheck() {
    for script in SHELL_SCRIPTS {
        let path = repo(script);
        let mode = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{script}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        let bash = fs::read_to_string(&path)
            .unwrap()
            .starts_with("#!/usr/bin/env bash");
        let (code, _, err) = run(Command::new(if bash { "bash" } else { "sh" })
            .arg("-n")
            .arg(&path));
        assert_eq!(code, 0, "{script} does not parse: {err}");
    }
    if !have("shellcheck") {
        skip("shellcheck is not installed (apt-get install shellcheck)");
        return;
    }
    let (code, out, err) = run(Command::new("shellcheck")
        .current_dir(REPO)
        .args(SHELL_SCRIPTS));
    assert_eq!(code, 0, "shellcheck:\n{out}{err}");
}

/// Runs `sh rc.common-double roadie.init ACTION` with `env`; returns the exit
/// code, the recorded procd calls (each as its arguments), stdout and stderr.
fn procd_with(action: &str, env: &[(&str, &str)]) -> (i32, Vec<Vec<String>>, String, String) {
    let dir = tmpdir(&format!("procd-{action}-{}", unique()));
    let log = dir.join("procd.log");
    let mut cmd = Command::new("sh");
    cmd.arg(repo("tests/doubles/rc.common-double"))
        .arg(repo(INIT))
        .arg(action)
        .env("PROCD_DOUBLE_LOG", &log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, out, err) = run(&mut cmd);
    let calls = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    let _ = fs::remove_dir_all(&dir);
    (code, calls, out, err)
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The init script run with the real roadie as PROG and `config` as its
/// config file.
fn procd_roadie(action: &str, config: &Path) -> (i32, Vec<Vec<String>>, String, String) {
    procd_with(
        action,
        &[
            ("RC_DOUBLE_PROG", ROADIE),
            ("RC_DOUBLE_CONFIG", config.to_str().unwrap()),
        ],
    )
}

fn procd(action: &str, config: &Path) -> (Vec<Vec<String>>, String) {
    let (code, calls, out, err) = procd_roadie(action, config);
    assert_eq!(code, 0, "roadie.init {action}: {out}{err}");
    (calls, out)
}

#[test]
fn init_script_under_a_procd_double() {
    let text = fs::read_to_string(repo(INIT)).unwrap();
    assert!(text.starts_with("#!/bin/sh /etc/rc.common\n"), "shebang");
    assert!(text.contains("\nPROG=/usr/sbin/roadie\n"), "PROG");
    assert!(
        text.contains("\nCONFIG=/etc/roadie/roadie.toml\n"),
        "CONFIG"
    );
    let start: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("START="))
        .and_then(|v| v.parse().ok())
        .expect("START=NN");
    assert!(start > 20, "START={start} must come after the network (20)");

    let dir = tmpdir("init");
    let config = dir.join("roadie.toml");
    fs::copy(repo("openwrt-package/files/roadie.toml"), &config).unwrap();
    let (calls, _) = procd("start", &config);
    let strs: Vec<Vec<&str>> = calls
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        strs.first().map(|c| &c[..2]),
        Some(&["procd_open_service", "roadie"][..])
    );
    let instance: Vec<&Vec<&str>> = strs
        .iter()
        .skip_while(|c| c[0] != "procd_open_instance")
        .take_while(|c| c[0] != "procd_close_instance")
        .collect();
    let param = |name: &str| -> Option<Vec<&str>> {
        instance
            .iter()
            .find(|c| c[0] == "procd_set_param" && c[1] == name)
            .map(|c| c[2..].to_vec())
    };
    // --syslog: logd gets each line's priority (procd logs stderr at err).
    assert_eq!(
        param("command"),
        Some(vec![
            ROADIE,
            "-c",
            config.to_str().unwrap(),
            "daemon",
            "--syslog"
        ]),
        "{strs:?}"
    );
    assert!(param("respawn").is_some(), "no respawn: {strs:?}");
    assert_eq!(param("stdout"), Some(vec!["1"]));
    assert_eq!(param("stderr"), Some(vec!["1"]));
    let term: u32 = param("term_timeout").expect("term_timeout")[0]
        .parse()
        .expect("term_timeout is a number");
    assert!(
        (3..=5).contains(&term),
        "term_timeout {term}: roadie stops within 2 s, so 3-5 s before SIGKILL"
    );
    assert!(
        strs.iter().any(|c| c[0] == "procd_close_instance"),
        "instance not closed"
    );

    let (calls, _) = procd("reload", &config);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c[0], "procd_send_signal");
    assert_eq!(c[1], "roadie");
    // procd's default signal is SIGHUP; an explicit one must be HUP too.
    assert!(
        c.get(3).is_none_or(|s| s == "HUP" || s == "1"),
        "reload must send SIGHUP: {c:?}"
    );

    let (calls, _) = procd("enable", &config);
    assert_eq!(calls[0][1], format!("S{start}roadie"));
    let _ = fs::remove_dir_all(&dir);
}

/// Defect 7 of the real-OpenWrt issue: an invalid file must not keep roadie
/// down. With no last good copy, `start` prints the errors and starts
/// nothing; with one, it starts (roadie runs with the copy) and says why.
#[test]
fn init_start_with_an_invalid_config() {
    let dir = tmpdir("init-bad");
    let config = dir.join("roadie.toml");
    fs::write(
        &config,
        "[wan]\ninterfaces = [\"eth1\"]\n[lan]\ninterface = \"br-lan\"\naddress = \"192.168.1.1/24\"\n[openwrt]\napply_timeout_ms = 20\n",
    )
    .unwrap();
    // rc.common's start exits with procd_close_service's status whatever
    // start_service returned: what matters is that no instance is opened.
    let (_, calls, _, err) = procd_roadie("start", &config);
    assert!(
        !calls.iter().any(|c| c[0] == "procd_open_instance"),
        "started with an invalid config and no copy: {calls:?}"
    );
    assert!(
        err.contains("roadie.toml:7:") && err.contains("apply_timeout_ms"),
        "the errors must name file:line and the key: {err}"
    );
    assert!(err.contains("not started"), "{err}");

    fs::copy(
        repo("openwrt-package/files/roadie.toml"),
        dir.join("roadie.toml.last-good"),
    )
    .unwrap();
    let (code, calls, out, err) = procd_roadie("start", &config);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        calls.iter().any(|c| c[0] == "procd_open_instance"),
        "{calls:?}"
    );
    assert!(
        err.contains("last configuration that loaded") && err.contains("apply_timeout_ms"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Defect 5: `status` answers like every procd service when roadie is not
/// running ("inactive", exit 3; a dead instance: "not running", 5), else with
/// roadie's own summary.
#[test]
fn init_status_like_procd_services() {
    let dir = tmpdir("status-prog");
    let fake = dir.join("roadie");
    fs::write(&fake, "#!/bin/sh\necho \"fake roadie: $*\"\n").unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let fake = fake.to_str().unwrap();
    let cases: &[(&str, i32, &str)] = &[
        ("inactive", 3, "inactive"),
        ("not running", 5, "not running"),
        (
            "running",
            0,
            "fake roadie: -c /etc/roadie/roadie.toml status",
        ),
    ];
    for (state, want_code, want_out) in cases {
        let (code, calls, out, err) = procd_with(
            "status",
            &[("RC_DOUBLE_PROG", fake), ("PROCD_DOUBLE_STATUS", state)],
        );
        assert!(calls.is_empty(), "{calls:?}");
        assert_eq!(
            (code, out.trim()),
            (*want_code, *want_out),
            "{state}: {err}"
        );
    }
    // procd still lists an instance that is stopping, and roadie no longer
    // answers: a dead instance's answer.
    let silent = dir.join("silent");
    fs::write(
        &silent,
        "#!/bin/sh\necho 'roadie: not running' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&silent, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, out, _) = procd_with(
        "status",
        &[
            ("RC_DOUBLE_PROG", silent.to_str().unwrap()),
            ("PROCD_DOUBLE_STATUS", "running"),
        ],
    );
    assert_eq!((code, out.trim()), (5, "not running"));
    let _ = fs::remove_dir_all(&dir);
}

/// `NAME:=value` from the SDK Makefile.
fn mk_var(mk: &str, name: &str) -> Option<String> {
    mk.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:=")))
        .map(|v| v.trim().to_string())
}

fn mk_define<'a>(mk: &'a str, name: &str) -> Vec<&'a str> {
    mk.lines()
        .skip_while(|l| l.trim() != format!("define {name}"))
        .skip(1)
        .take_while(|l| l.trim() != "endef")
        .map(str::trim)
        .collect()
}

/// Defect 2: only what the package ships. What roadie writes at run time is
/// kept by keep.d (see `keep_d_keeps_what_roadie_writes`).
const CONFFILES: [&str; 1] = ["/etc/roadie/roadie.toml"];

#[test]
fn sdk_makefile_follows_the_packages_feed() {
    let mk = fs::read_to_string(repo("openwrt-package/Makefile")).unwrap();
    let cargo = fs::read_to_string(repo("Cargo.toml")).unwrap();
    let cargo: toml::Table = cargo.parse().unwrap();
    assert_eq!(
        mk_var(&mk, "PKG_VERSION").as_deref(),
        cargo["package"]["version"].as_str(),
        "PKG_VERSION and Cargo.toml's version differ"
    );
    assert_eq!(mk_var(&mk, "PKG_NAME").as_deref(), Some("roadie"));
    assert!(mk_var(&mk, "PKG_RELEASE").is_some());
    assert_eq!(
        mk_var(&mk, "PKG_BUILD_DEPENDS").as_deref(),
        Some("rust/host")
    );
    assert!(mk.contains("include $(TOPDIR)/rules.mk"));
    assert!(mk.contains("include $(INCLUDE_DIR)/package.mk"));
    assert!(
        mk.lines()
            .any(|l| l.starts_with("include ") && l.ends_with("lang/rust/rust-package.mk"))
    );
    let pkg = mk_define(&mk, "Package/roadie");
    // The same dependencies as the ipk scripts/build-ipk makes.
    assert!(
        pkg.contains(&"DEPENDS:=$(RUST_ARCH_DEPENDS) +kmod-nft-netdev +nftables-json"),
        "{pkg:?}"
    );
    assert_eq!(mk_define(&mk, "Package/roadie/conffiles"), CONFFILES);
    let install = mk_define(&mk, "Package/roadie/install").join("\n");
    for want in [
        "$(INSTALL_BIN) $(PKG_INSTALL_DIR)/bin/roadie $(1)/usr/sbin/roadie",
        "$(INSTALL_BIN) ./files/roadie.init $(1)/etc/init.d/roadie",
        "$(INSTALL_CONF) ./files/roadie.toml $(1)/etc/roadie/roadie.toml",
    ] {
        assert!(install.contains(want), "install lacks {want}:\n{install}");
    }
    assert!(mk.contains("$(eval $(call RustBinPackage,roadie))"));
    assert!(mk.contains("$(eval $(call BuildPackage,roadie))"));
    // Nothing that ties it to one package format (ipk on 24.10, apk on 25.12).
    for line in mk.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(
            !line.contains("ipkg") && !line.contains(".ipk") && !line.contains(".apk"),
            "{line}"
        );
    }
}

/// Build/Prepare copies what the SDK's cargo builds from. Copy exactly that
/// into an empty directory and ask cargo to resolve it: a missing file, or a
/// `[patch]` path that was not copied, fails here instead of in the SDK.
#[test]
fn sdk_build_prepare_copies_everything_cargo_needs() {
    let mk = fs::read_to_string(repo("openwrt-package/Makefile")).unwrap();
    let prepare = mk_define(&mk, "Build/Prepare");
    let cp = prepare
        .iter()
        .find_map(|l| l.strip_prefix("$(CP) "))
        .expect("Build/Prepare has a $(CP) line");
    let mut items: Vec<&str> = cp.split_whitespace().collect();
    assert_eq!(items.pop(), Some("$(PKG_BUILD_DIR)/"), "{cp}");
    let dir = tmpdir("prepare");
    for item in items {
        let rel = item
            .strip_prefix("$(ROADIE_SRC)/")
            .unwrap_or_else(|| panic!("{item} is not under $(ROADIE_SRC)"));
        let (code, _, err) = run(Command::new("cp").arg("-r").arg(repo(rel)).arg(&dir));
        assert_eq!(code, 0, "cp {rel}: {err}");
    }
    // Not --offline: metadata needs every crate Cargo.lock names, those of
    // other platforms too, and a cargo cache that only built for this host
    // lacks them (cargo fetches them, as the SDK's own build does). --locked
    // still refuses any change to the resolution.
    let (code, out, err) = run(Command::new("cargo")
        .args(["metadata", "--locked", "--format-version", "1"])
        .current_dir(&dir));
    assert_eq!(code, 0, "cargo metadata in the Build/Prepare copy:\n{err}");
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Every crate that is not from crates.io must come from inside the copy.
    for pkg in meta["packages"].as_array().unwrap() {
        if pkg["source"].is_null() {
            let manifest = pkg["manifest_path"].as_str().unwrap();
            assert!(
                Path::new(manifest).starts_with(&dir),
                "{} resolves outside the copy: {manifest}",
                pkg["name"]
            );
        }
    }
    let russh = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "russh")
        .expect("russh in the dependency graph");
    assert!(
        russh["source"].is_null(),
        "russh is not the vendored one: {russh}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn packaged_default_config_passes_check_config() {
    let (code, out, err) = run(Command::new(ROADIE)
        .args(["-c", "openwrt-package/files/roadie.toml", "check-config"])
        .current_dir(REPO));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "ok");
}

// ---------------------------------------------------------------------------
// The .ipk

/// The cross-built binary for `target`, or None (skipped) when it is not
/// there; under CI=true it is built.
fn cross_binary(target: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target"));
    let bin = dir.join(target).join("release/roadie");
    if bin.exists() {
        return Some(bin);
    }
    if std::env::var("CI").as_deref() != Ok("true") {
        skip(&format!(
            "{} not built; run scripts/cross-build {target} (or scripts/test-cross)",
            bin.display()
        ));
        return None;
    }
    // A cold release build with -Zbuild-std: minutes, longer when the other
    // target's build holds cargo's lock on the target directory first.
    let out = run_with(
        Command::new(repo("scripts/cross-build")).arg(target),
        None,
        Duration::from_secs(1800),
    );
    let (code, out, err) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, 0, "scripts/cross-build {target}:\n{out}{err}");
    assert!(bin.exists(), "cross-build made no {}", bin.display());
    Some(bin)
}

/// (mode, uid, gid, size) of each entry of a tar.gz, by name.
fn tar_listing(file: &Path) -> BTreeMap<String, (u32, u32, u32, u64)> {
    // GNU tar's verbose listing: "-rwxr-xr-x 0/0  1234 2026-01-01 00:00 ./name"
    let (code, out, err) = run(Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(file));
    assert_eq!(code, 0, "tar -tvzf {}: {err}", file.display());
    let mut entries = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 6, "unexpected tar listing line {line:?}");
        let perms = f[0];
        let mut mode = 0;
        for (i, c) in perms[1..10].chars().enumerate() {
            if c != '-' {
                mode |= 1 << (8 - i);
            }
        }
        let (uid, gid) = f[1].split_once('/').expect("uid/gid");
        entries.insert(
            f[5].to_string(),
            (
                mode,
                uid.parse().unwrap(),
                gid.parse().unwrap(),
                f[2].parse().unwrap(),
            ),
        );
    }
    entries
}

/// Checks the outer gzip'd tar is what ipkg-build makes (those three
/// members, in that order) and unpacks it into `into`.
fn unpack_ipk(ipk: &Path, into: &Path) -> PathBuf {
    let (code, names, _) = run(Command::new("tar").arg("-tzf").arg(ipk));
    assert_eq!(code, 0);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    );
    untar(ipk, into);
    into.to_path_buf()
}

/// The files (not directories) of a tar listing, with their modes.
fn files_and_modes(listing: &BTreeMap<String, (u32, u32, u32, u64)>) -> Vec<(&str, u32)> {
    listing
        .iter()
        .filter(|(n, _)| !n.ends_with('/'))
        .map(|(n, (m, _, _, _))| (n.as_str(), *m))
        .collect()
}

fn untar(file: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let (code, _, err) = run(Command::new("tar")
        .arg("-xzf")
        .arg(file)
        .arg("-C")
        .arg(into));
    assert_eq!(code, 0, "tar -xzf {}: {err}", file.display());
}

#[test]
fn ipk_unpacks_with_tar_and_carries_the_mipsel_binary() {
    check_ipk(MIPSEL, "mipsel_24kc", 8);
}

/// Defect 1: x86_64 is an OpenWrt target too (mini PCs, VMs).
#[test]
fn ipk_for_x86_64() {
    check_ipk("x86_64-unknown-linux-musl", "x86_64", 62);
}

/// The files the package installs: (path in the package, mode, source).
const DATA: &[(&str, u32, &str)] = &[
    ("./etc/init.d/roadie", 0o755, INIT),
    (
        "./etc/roadie/roadie.toml",
        0o600,
        "openwrt-package/files/roadie.toml",
    ),
    ("./etc/uci-defaults/90-roadie-dhcp", 0o755, UCI_DEFAULTS),
    (
        "./lib/netifd/proto/dhcp-roadie.sh",
        0o755,
        "openwrt-package/files/roadie.netifd-proto",
    ),
    (
        "./lib/upgrade/keep.d/roadie",
        0o644,
        "openwrt-package/files/roadie.keep",
    ),
    (
        "./usr/libexec/roadie/dhcp.script",
        0o755,
        "openwrt-package/files/roadie.dhcp-script",
    ),
    (
        "./usr/libexec/rpcd/roadie",
        0o755,
        "openwrt-package/files/roadie.rpcd",
    ),
    ("./usr/sbin/roadie", 0o755, ""),
    (
        "./usr/share/rpcd/acl.d/roadie.json",
        0o644,
        "openwrt-package/files/roadie.acl.json",
    ),
];

/// build-ipk for `target`: the outer tar, control, postinst/prerm, the data
/// files with their modes and contents, and the binary's ELF header.
fn check_ipk(target: &str, arch: &str, elf_machine: u16) {
    let Some(bin) = cross_binary(target) else {
        return;
    };
    let dir = tmpdir(&format!("ipk-{arch}"));
    let out_dir = dir.join("out");
    let (code, out, err) = run(Command::new(repo("scripts/build-ipk"))
        .arg(target)
        .env("OUT", &out_dir)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert_eq!(code, 0, "build-ipk:\n{out}{err}");
    let mk = fs::read_to_string(repo("openwrt-package/Makefile")).unwrap();
    let version = format!(
        "{}-r{}",
        mk_var(&mk, "PKG_VERSION").unwrap(),
        mk_var(&mk, "PKG_RELEASE").unwrap()
    );
    let ipk = PathBuf::from(out.trim());
    assert_eq!(ipk, out_dir.join(format!("roadie_{version}_{arch}.ipk")));

    let outer = unpack_ipk(&ipk, &dir.join("outer"));
    assert_eq!(
        fs::read_to_string(outer.join("debian-binary")).unwrap(),
        "2.0\n"
    );

    // control.tar.gz
    let control = dir.join("control");
    untar(&outer.join("control.tar.gz"), &control);
    let listing = tar_listing(&outer.join("control.tar.gz"));
    for (name, mode) in [
        ("./control", 0o644),
        ("./conffiles", 0o644),
        ("./postinst", 0o755),
        ("./postinst-pkg", 0o755),
        ("./postrm", 0o755),
        ("./prerm", 0o755),
    ] {
        let (m, uid, gid, _) = listing[name];
        assert_eq!((m, uid, gid), (mode, 0, 0), "{name}");
    }
    let text = fs::read_to_string(control.join("control")).unwrap();
    let fields: BTreeMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(": "))
        .collect();
    assert_eq!(fields["Package"], "roadie");
    assert_eq!(fields["Version"], version);
    assert_eq!(fields["Depends"], "libc, kmod-nft-netdev, nftables-json");
    assert_eq!(fields["Architecture"], arch);
    assert_eq!(fields["Section"], "net");
    assert_eq!(fields["SourceDateEpoch"], "1700000000");
    assert!(fields.contains_key("Description"));
    assert_eq!(
        fs::read_to_string(control.join("conffiles"))
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        CONFFILES
    );
    for (script, call) in [("postinst", "default_postinst"), ("prerm", "default_prerm")] {
        let path = control.join(script);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
        assert!(text.contains(&format!("{call} $0 $@")), "{script}:\n{text}");
        assert!(text.contains("/lib/functions.sh"), "{script}");
        let (code, _, err) = run(Command::new("sh").arg("-n").arg(&path));
        assert_eq!(code, 0, "{script}: {err}");
    }
    // The Makefile's own postinst, which default_postinst sources: rpcd must
    // learn of the plugin and ACL, on a running router only.
    // ...and forget them after removal (the SDK packs postrm as it is).
    for script in ["postinst-pkg", "postrm"] {
        let pkg = fs::read_to_string(control.join(script)).unwrap();
        assert!(
            pkg.contains("[ -n \"${IPKG_INSTROOT}\" ] || /etc/init.d/rpcd reload"),
            "{script}: {pkg}"
        );
    }

    // data.tar.gz: files, modes, owners.
    let listing = tar_listing(&outer.join("data.tar.gz"));
    let want: Vec<(&str, u32)> = DATA.iter().map(|(n, m, _)| (*n, *m)).collect();
    assert_eq!(files_and_modes(&listing), want);
    assert!(
        listing
            .values()
            .all(|(_, uid, gid, _)| (*uid, *gid) == (0, 0))
    );
    let total: u64 = listing.values().map(|e| e.3).sum();
    assert_eq!(fields["Installed-Size"], total.to_string());
    let data = dir.join("data");
    untar(&outer.join("data.tar.gz"), &data);
    let packaged = fs::read(data.join("usr/sbin/roadie")).unwrap();
    assert!(
        packaged == fs::read(&bin).unwrap(),
        "the packaged binary is not {}",
        bin.display()
    );
    assert_eq!(&packaged[..4], b"\x7fELF");
    assert_eq!(packaged[5], 1, "little-endian");
    assert_eq!(
        u16::from_le_bytes([packaged[18], packaged[19]]),
        elf_machine,
        "ELF e_machine"
    );
    for (name, _, source) in DATA.iter().filter(|d| !d.2.is_empty()) {
        assert_eq!(
            fs::read(data.join(name)).unwrap(),
            fs::read(repo(source)).unwrap(),
            "{name}"
        );
    }

    // The host's glibc test binary is no router binary: refused, saying why.
    let (code, _, err) = run(Command::new(repo("scripts/build-ipk"))
        .args([MIPSEL, ROADIE])
        .env("OUT", &out_dir));
    assert_ne!(code, 0);
    assert!(err.contains("ELF machine"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

/// The uci-defaults script over OpenWrt's default /etc/config/dhcp (through
/// tests/doubles/uci-double, which keeps uci's file format): short leases
/// and T1/T2 once, a repeat changes nothing, a lease someone chose stays.
#[test]
fn uci_defaults_shorten_the_lans_leases_once() {
    let dir = tmpdir("uci-defaults");
    let conf = dir.join("config");
    let bin = dir.join("bin");
    fs::create_dir_all(&conf).unwrap();
    fs::create_dir_all(&bin).unwrap();
    // OpenWrt 24.10's package/network/services/dnsmasq/files/dhcp.conf, in part.
    let stock = "config dnsmasq\n\toption domainneeded '1'\n\toption authoritative '1'\n\n\
                 config dhcp 'lan'\n\toption interface 'lan'\n\toption start '100'\n\toption limit '150'\n\toption leasetime '12h'\n\n\
                 config dhcp 'wan'\n\toption interface 'wan'\n\toption ignore '1'\n";
    // `uci` on PATH is the double over this config dir, with its own savedir.
    let uci = bin.join("uci");
    fs::write(
        &uci,
        format!(
            "#!/bin/sh\nexec python3 {} -c {} -t {} \"$@\"\n",
            repo("tests/doubles/uci-double").display(),
            conf.display(),
            dir.join("save").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&uci, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let defaults = |text: &str| {
        fs::write(conf.join("dhcp"), text).unwrap();
        for _ in 0..2 {
            let (code, out, err) = run(Command::new("sh")
                .arg(repo(UCI_DEFAULTS))
                .env("PATH", &path)
                .env("UCI_DOUBLE_SAVEDIR", dir.join("user")));
            assert_eq!(code, 0, "{out}{err}");
        }
        let get = |key: &str| {
            let (_, out, _) = run(Command::new(&uci).args(["-q", "get", key]));
            out.trim().to_string()
        };
        (
            get("dhcp.lan.leasetime"),
            get("dhcp.lan.dhcp_option"),
            get("dhcp.wan.ignore"),
        )
    };
    assert_eq!(
        defaults(stock),
        ("2m".into(), "58,30 59,90".into(), "1".into()),
        "stock: 2 min leases, T1 30 s, T2 90 s; run twice, added once"
    );
    let chosen = stock.replace("'12h'", "'1h'");
    assert_eq!(
        defaults(&chosen),
        ("1h".into(), "".into(), "1".into()),
        "a chosen lease is kept"
    );
    let own_t1 = stock.replace("\toption leasetime '12h'\n", "\tlist dhcp_option '58,10'\n");
    assert_eq!(
        defaults(&own_t1),
        ("2m".into(), "58,10 59,90".into(), "1".into()),
        "no lease set (12 h): shortened; an own T1 is kept"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Defect 2: what roadie writes at run time (the state file, learned host
/// keys, the last good config) is no conffile (the package does not ship
/// it), so sysupgrade keeps it through /lib/upgrade/keep.d/roadie. Read the
/// file the way sysupgrade does (`sed -ne '/^[[:space:]]*$/d; /^#/d; p'`,
/// then `find` on each entry) over a copy of /etc/roadie in a temporary root.
#[test]
fn keep_d_keeps_what_roadie_writes() {
    use roadie::config::{DEFAULT_CONFIG, DEFAULT_KNOWN_HOSTS, DEFAULT_STATE};
    let last_good = roadie::lastgood::path_for(Path::new(DEFAULT_CONFIG));
    let written = [
        DEFAULT_CONFIG,
        DEFAULT_STATE,
        DEFAULT_KNOWN_HOSTS,
        last_good.to_str().unwrap(),
        "/etc/roadie/id_ed25519",
    ];
    let root = tmpdir("keep");
    for f in written {
        let p = root.join(f.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "x").unwrap();
    }
    let keep = repo("openwrt-package/files/roadie.keep");
    let (code, entries, err) = run(Command::new("sed")
        .args(["-ne", "/^[[:space:]]*$/d; /^#/d; p"])
        .arg(&keep));
    assert_eq!(code, 0, "{err}");
    let mut found = Vec::new();
    for entry in entries.lines() {
        let (code, out, _) = run(Command::new("find")
            .arg(root.join(entry.trim_start_matches('/')))
            .args(["(", "-type", "f", "-o", "-type", "l", ")"]));
        assert_eq!(code, 0, "find {entry}");
        found.extend(
            out.lines()
                .map(|l| format!("/{}", Path::new(l).strip_prefix(&root).unwrap().display())),
        );
    }
    for f in written {
        assert!(
            found.iter().any(|x| x == f),
            "sysupgrade would not keep {f}: {found:?}"
        );
    }
    let _ = fs::remove_dir_all(&root);
}

/// The rpcd ACL grants exactly the ubus methods roadie has: reading
/// (status, list) to the read side, the rest only to write.
#[test]
fn rpcd_acl_grants_exactly_roadies_methods() {
    let acl: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(repo("openwrt-package/files/roadie.acl.json")).unwrap(),
    )
    .expect("the ACL is JSON");
    let group = &acl["roadie"];
    let names = |side: &str| -> Vec<String> {
        let mut v: Vec<String> = group[side]["ubus"]["roadie"]
            .as_array()
            .unwrap_or_else(|| panic!("{side}.ubus.roadie: {acl}"))
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("read"), ["list", "status"]);
    assert_eq!(
        names("write"),
        [
            "absorb.lease",
            "absorb.release",
            "readdress",
            "reload",
            "tunnel.restart"
        ]
    );
    let mut all: Vec<String> = names("read").into_iter().chain(names("write")).collect();
    all.sort();
    let mut methods: Vec<String> = roadie::control::protocol::METHODS
        .iter()
        .map(|(m, _)| m.to_string())
        .collect();
    methods.sort();
    assert_eq!(all, methods, "the ACL and roadie's methods differ");
    assert_eq!(
        group.as_object().map(|o| o.len()),
        Some(3),
        "only description, read, write"
    );
    // The plugin is roadie itself.
    let plugin = fs::read_to_string(repo("openwrt-package/files/roadie.rpcd")).unwrap();
    assert!(
        plugin.contains("exec /usr/sbin/roadie rpcd \"$@\""),
        "{plugin}"
    );
}

// ---------------------------------------------------------------------------
// luci-app-roadie

const LUCI: &str = "openwrt-package/luci-app-roadie";

/// The files luci-app-roadie installs (luci.mk: htdocs/ under /www, root/
/// as is): (path in the package, source).
const LUCI_DATA: &[(&str, &str)] = &[
    (
        "./usr/share/luci/menu.d/luci-app-roadie.json",
        "root/usr/share/luci/menu.d/luci-app-roadie.json",
    ),
    (
        "./usr/share/rpcd/acl.d/luci-app-roadie.json",
        "root/usr/share/rpcd/acl.d/luci-app-roadie.json",
    ),
    (
        "./www/luci-static/resources/view/roadie/status.js",
        "htdocs/luci-static/resources/view/roadie/status.js",
    ),
];

/// The LuCI app's SDK Makefile follows the LuCI feed's conventions, and
/// its version is roadie's.
#[test]
fn luci_makefile_follows_the_luci_feed() {
    let mk = fs::read_to_string(repo(&format!("{LUCI}/Makefile"))).unwrap();
    let cargo: toml::Table = fs::read_to_string(repo("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    // luci.mk names the package after its directory.
    assert_eq!(mk_var(&mk, "PKG_NAME").as_deref(), Some("luci-app-roadie"));
    assert!(LUCI.ends_with("/luci-app-roadie"));
    assert_eq!(
        mk_var(&mk, "PKG_VERSION").as_deref(),
        cargo["package"]["version"].as_str()
    );
    assert!(mk_var(&mk, "PKG_RELEASE").is_some());
    assert_eq!(
        mk_var(&mk, "LUCI_DEPENDS").as_deref(),
        Some("+luci-base +roadie")
    );
    assert_eq!(mk_var(&mk, "LUCI_PKGARCH").as_deref(), Some("all"));
    assert!(mk_var(&mk, "LUCI_TITLE").is_some());
    assert!(mk.contains("include $(TOPDIR)/rules.mk"));
    assert!(
        mk.lines()
            .any(|l| l.starts_with("include ") && l.ends_with("/luci.mk"))
    );
    assert_eq!(
        mk.lines().rfind(|l| !l.trim().is_empty()),
        Some("# call BuildPackage - OpenWrt buildroot signature")
    );
    let postinst = mk_define(&mk, "Package/luci-app-roadie/postinst").join("\n");
    assert!(postinst.contains("/etc/init.d/rpcd reload"), "{postinst}");
    assert!(postinst.contains("luci-indexcache"), "{postinst}");
    for line in mk.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(!line.contains(".ipk") && !line.contains(".apk"), "{line}");
    }
}

/// `scripts/build-ipk luci`: one package, architecture all, the view, the
/// menu entry and the ACL as luci.mk installs them, and the Makefile's
/// postinst; no binary needed.
#[test]
fn luci_ipk_is_arch_all() {
    let dir = tmpdir("luci-ipk");
    let out_dir = dir.join("out");
    let (code, out, err) = run(Command::new(repo("scripts/build-ipk"))
        .arg("luci")
        .env("OUT", &out_dir)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert_eq!(code, 0, "build-ipk luci:\n{out}{err}");
    let mk = fs::read_to_string(repo(&format!("{LUCI}/Makefile"))).unwrap();
    let version = format!(
        "{}-r{}",
        mk_var(&mk, "PKG_VERSION").unwrap(),
        mk_var(&mk, "PKG_RELEASE").unwrap()
    );
    let ipk = PathBuf::from(out.trim());
    assert_eq!(
        ipk,
        out_dir.join(format!("luci-app-roadie_{version}_all.ipk"))
    );
    assert_eq!(
        fs::read_dir(&out_dir).unwrap().count(),
        1,
        "one package only"
    );
    let outer = unpack_ipk(&ipk, &dir.join("outer"));

    let control = dir.join("control");
    untar(&outer.join("control.tar.gz"), &control);
    let text = fs::read_to_string(control.join("control")).unwrap();
    let fields: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(": ")).collect();
    assert_eq!(fields["Package"], "luci-app-roadie");
    assert_eq!(fields["Version"], version);
    assert_eq!(fields["Depends"], "luci-base, roadie");
    assert_eq!(fields["Architecture"], "all");
    assert_eq!(fields["Section"], "luci");
    assert_eq!(fields["SourceDateEpoch"], "1700000000");
    assert!(!control.join("conffiles").exists(), "nothing to keep");
    for script in ["postinst", "prerm", "postinst-pkg"] {
        let (code, _, err) = run(Command::new("sh").arg("-n").arg(control.join(script)));
        assert_eq!(code, 0, "{script}: {err}");
    }
    let pkg = fs::read_to_string(control.join("postinst-pkg")).unwrap();
    let want = mk_define(&mk, "Package/luci-app-roadie/postinst").join("\n");
    assert_eq!(
        pkg.lines().map(str::trim).collect::<Vec<_>>().join("\n"),
        want.replace("$$", "$"),
        "postinst-pkg is the Makefile's postinst"
    );

    let listing = tar_listing(&outer.join("data.tar.gz"));
    let want: Vec<(&str, u32)> = LUCI_DATA.iter().map(|(n, _)| (*n, 0o644)).collect();
    assert_eq!(files_and_modes(&listing), want);
    assert!(listing.iter().all(|(n, (m, uid, gid, _))| {
        (*uid, *gid) == (0, 0) && (!n.ends_with('/') || *m == 0o755)
    }));
    let total: u64 = listing.values().map(|e| e.3).sum();
    assert_eq!(fields["Installed-Size"], total.to_string());
    let data = dir.join("data");
    untar(&outer.join("data.tar.gz"), &data);
    for (name, source) in LUCI_DATA {
        assert_eq!(
            fs::read(data.join(name)).unwrap(),
            fs::read(repo(&format!("{LUCI}/{source}"))).unwrap(),
            "{name}"
        );
    }

    let (code, _, err) = run(Command::new(repo("scripts/build-ipk"))
        .args(["luci", "extra"])
        .env("OUT", &out_dir));
    assert_eq!(code, 2, "{err}");
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// netifd's dhcp protocol with roadie's event script (doubles; the real netifd
// and udhcpc: tests/openwrt_router.rs)

/// OpenWrt's shell, when there is one (ash, as on the router), else sh.
fn ash() -> Command {
    if have("busybox") {
        let mut c = Command::new("busybox");
        c.arg("sh");
        c
    } else {
        Command::new("sh")
    }
}

/// A roadie double that records its arguments (one line a call) and answers
/// `absorb-lease` with `answer` (printed as is) and exit code `code`.
fn roadie_double(dir: &Path, answer: &str, code: i32) -> PathBuf {
    let p = dir.join("roadie");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$*\" >>{args}\n[ \"$1\" = absorb-lease ] && printf '%s' '{answer}'\nexit {code}\n",
            args = dir.join("roadie.args").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// udhcpc runs roadie's event script with `event` and a lease of
/// 192.168.1.57/24 (router and DNS 192.168.1.1, a classless route through
/// 192.168.1.254); returns what OpenWrt's dhcp.script (a recording
/// stand-in) was given, and roadie's arguments.
fn event(dir: &Path, roadie: &Path, event: &str) -> (String, String) {
    let stock = dir.join("dhcp.script");
    let got = dir.join("got");
    fs::write(
        &stock,
        format!(
            "#!/bin/sh\necho \"$1 ip=$ip subnet=$subnet mask=$mask router=$router dns=$dns staticroutes=$staticroutes\" >{}\n",
            got.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&stock, fs::Permissions::from_mode(0o755)).unwrap();
    let _ = fs::remove_file(&got);
    let _ = fs::remove_file(dir.join("roadie.args"));
    let (code, out, err) = run(ash()
        .arg(repo("openwrt-package/files/roadie.dhcp-script"))
        .arg(event)
        .env("ROADIE", roadie)
        .env("ROADIE_DHCP_SCRIPT", &stock)
        .env("interface", "wan0")
        .env("ip", "192.168.1.57")
        .env("mask", "24")
        .env("subnet", "255.255.255.0")
        .env("router", "192.168.1.1")
        .env("dns", "192.168.1.1 9.9.9.9")
        .env(
            "staticroutes",
            "10.0.0.0/8 192.168.1.254 8.8.8.0/24 192.168.1.1",
        ));
    assert_eq!(code, 0, "dhcp.script {event}: {out}{err}");
    (
        fs::read_to_string(&got)
            .unwrap_or_default()
            .trim()
            .to_string(),
        fs::read_to_string(dir.join("roadie.args"))
            .unwrap_or_default()
            .trim()
            .to_string(),
    )
}

#[test]
fn dhcp_script_hands_netifd_what_roadie_answers() {
    let dir = tmpdir(&format!("dhcp-script-{}", unique()));
    // Absorbed: the alias values go to netifd, classless routes too.
    let absorb = roadie_double(
        &dir,
        "ip=10.168.183.57\nmask=24\nrouter=10.168.183.1\ndns=\"10.168.183.1 9.9.9.9\"\n",
        0,
    );
    let (got, args) = event(&dir, &absorb, "bound");
    assert_eq!(
        args,
        "absorb-lease wan0 192.168.1.57/24 192.168.1.1 192.168.1.1 9.9.9.9"
    );
    assert_eq!(
        got,
        "bound ip=10.168.183.57 subnet=255.255.255.0 mask=24 router=10.168.183.1 \
         dns=10.168.183.1 9.9.9.9 staticroutes=10.0.0.0/8 10.168.183.254 8.8.8.0/24 10.168.183.1"
    );
    let (got, _) = event(&dir, &absorb, "renew");
    assert!(got.starts_with("renew ip=10.168.183.57 "), "{got}");
    // No collision: roadie answers with the lease, which goes in as it is.
    let same = roadie_double(
        &dir,
        "ip=192.168.1.57\nmask=24\nrouter=192.168.1.1\ndns=\"192.168.1.1 9.9.9.9\"\n",
        0,
    );
    let lease = "bound ip=192.168.1.57 subnet=255.255.255.0 mask=24 router=192.168.1.1 \
                 dns=192.168.1.1 9.9.9.9 staticroutes=10.0.0.0/8 192.168.1.254 8.8.8.0/24 192.168.1.1";
    assert_eq!(event(&dir, &same, "bound").0, lease);
    // roadie cannot answer (not installed right, usage error): the lease as
    // it is, netifd still gets it.
    let broken = roadie_double(&dir, "", 2);
    assert_eq!(event(&dir, &broken, "bound").0, lease);
    // The lease ends: roadie lets the uplink go, then netifd's script runs.
    let (got, args) = event(&dir, &absorb, "deconfig");
    assert_eq!(args, "absorb-release wan0");
    assert!(got.starts_with("deconfig "), "{got}");
    // Other events reach netifd's script, roadie is not asked.
    let (got, args) = event(&dir, &absorb, "leasefail");
    assert_eq!(args, "");
    assert!(got.starts_with("leasefail "), "{got}");
}

/// dhcp-roadie.sh runs OpenWrt's dhcp.sh (here a stand-in of its shape)
/// with roadie's event script in udhcpc's command line; with a dhcp.sh of
/// another shape it declares nothing (netifd then keeps dhcp.sh's "dhcp").
#[test]
fn netifd_proto_is_openwrts_dhcp_with_roadies_event_script() {
    let dir = tmpdir(&format!("netifd-proto-{}", unique()));
    let out = dir.join("command");
    let stand_in = |udhcpc: &str| {
        let p = dir.join("dhcp.sh");
        fs::write(
            &p,
            format!(
                "#!/bin/sh\n[ \"$2\" = setup ] || exit 0\nproto_run_command() {{ shift; echo \"$*\" >{}; }}\n\
                 proto_run_command \"$3\" {udhcpc}\n",
                out.display()
            ),
        )
        .unwrap();
        p
    };
    let handler = |dhcp_sh: &Path| {
        let _ = fs::remove_file(&out);
        let (code, o, e) = run(ash()
            .arg(repo("openwrt-package/files/roadie.netifd-proto"))
            .args(["", "setup", "wan", "{}", "wan0"])
            .env("ROADIE_DHCP_SH", dhcp_sh));
        assert_eq!(code, 0, "{o}{e}");
        fs::read_to_string(&out).unwrap_or_default()
    };
    let p =
        stand_in("udhcpc -p /var/run/udhcpc-wan0.pid -s /lib/netifd/dhcp.script -f -t 0 -i wan0");
    assert_eq!(
        handler(&p).trim(),
        "udhcpc -p /var/run/udhcpc-wan0.pid -s /usr/libexec/roadie/dhcp.script -f -t 0 -i wan0"
    );
    let p = stand_in("udhcpc -p /var/run/udhcpc-wan0.pid -s /lib/netifd/other.script -i wan0");
    assert_eq!(
        handler(&p),
        "",
        "a dhcp.sh of another shape runs as it is, not from here"
    );
    assert_eq!(handler(&dir.join("none.sh")), "");
}

/// The packaged config absorbs a colliding uplink (issue 18's default on
/// OpenWrt: netifd's dhcp protocol asks roadie, fw4 keeps to its own
/// table, the package depends on kmod-nft-netdev), rewrites hotel DNS
/// through OpenWrt's dnsmasq conf-dir, and moves the LAN through UCI
/// where it cannot absorb.
#[test]
fn the_packaged_config_absorbs_collisions() {
    let path = Path::new(REPO).join("openwrt-package/files/roadie.toml");
    let text = fs::read_to_string(&path).unwrap();
    let c = roadie::config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.lan.on_collision, roadie::config::OnCollision::Absorb);
    assert_eq!(c.lan.apply, roadie::config::ApplyMode::Uci);
    assert_eq!(
        c.lan.dns_alias_file.as_deref(),
        Some(Path::new("/tmp/dnsmasq.d/roadie-absorb.conf"))
    );
}
