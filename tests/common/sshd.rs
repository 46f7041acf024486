//! OpenSSH's sshd in the foreground inside a namespace, with its own host
//! key and authorized keys, plus key generation and the unprivileged test
//! account.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use super::ns::{Ns, spawn_in};
use super::proc::{descendants, kill_alive, read_log, run_ok, stop_child, wait_listening};

pub const SSHD: &str = "/usr/sbin/sshd";
/// The unprivileged account the tunnel lab's sshd lets in.
pub const USER: &str = "roadie-tun";

/// The tunnel lab's sshd drops a silent session after about 6 s.
const KEEPALIVE: &str = "ClientAliveInterval 2\nClientAliveCountMax 3\n";

/// A fresh key pair at `path` (and `path.pub`), no passphrase.
pub fn keygen(path: &Path, kind: &str) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-C", "roadie-test", "-t", kind, "-f"])
        .arg(path);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    run_ok(&mut c);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `SHA256:…` of a public key file.
pub fn fingerprint(pubkey: &Path) -> String {
    let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg(pubkey));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// The sshd test account [`USER`]: password field `*` (a locked `!` is
/// refused with UsePAM no), a shell, no home.
pub fn ensure_user() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for _ in 0..50 {
            let exists = Command::new("id")
                .arg(USER)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if exists {
                return;
            }
            // Another test process may hold the passwd lock: retry.
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/bin/sh", "--password", "*", USER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot create the test user {USER}");
    });
}

/// An sshd and its files: `host_ed25519`, `authorized_keys`, `sshd_config`
/// and `sshd.log` in `dir`. Stopped on drop, with its session processes.
pub struct Sshd {
    pub ns: String,
    pub dir: PathBuf,
    pub addr: String,
    pub port: u16,
    pub host_key: PathBuf,
    child: Option<Child>,
}

impl Sshd {
    /// The tunnel lab's sshd: [`USER`] may log in with the keys listed in
    /// `authorized` and forward remote ports, on `addr:port` inside `ns`;
    /// its files in `dir/sshd<port>`. Waits until it listens.
    pub fn start(ns: &Ns, dir: &Path, addr: &str, port: u16, authorized: &[&Path]) -> Sshd {
        Sshd::start_with(ns, dir, addr, port, authorized, KEEPALIVE)
    }

    /// As [`Sshd::start`], with `extra` sshd_config lines (keepalive settings).
    pub fn start_with(
        ns: &Ns,
        dir: &Path,
        addr: &str,
        port: u16,
        authorized: &[&Path],
        extra: &str,
    ) -> Sshd {
        ensure_user();
        let mut s = Sshd::new(&ns.name, &dir.join(format!("sshd{port}")), addr, port);
        s.configure(
            authorized,
            &format!("AllowUsers {USER}\nAllowTcpForwarding remote\nMaxStartups 100\n{extra}"),
        );
        s.run();
        s
    }

    /// An sshd for `addr:port` inside namespace `ns`, its files in `dir`;
    /// neither configured nor started.
    pub fn new(ns: &str, dir: &Path, addr: &str, port: u16) -> Sshd {
        Sshd {
            ns: ns.into(),
            dir: dir.into(),
            addr: addr.into(),
            port,
            host_key: dir.join("host_ed25519"),
            child: None,
        }
    }

    /// Writes a new host key, `authorized_keys` (the `.pub` of each key in
    /// `authorized`) and `sshd_config`; `extra` says who may log in and
    /// what they may do. Takes effect at the next [`Sshd::run`].
    pub fn configure(&self, authorized: &[&Path], extra: &str) {
        let (dir, addr, port) = (&self.dir, &self.addr, self.port);
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        fs::create_dir_all(dir).unwrap();
        // sshd reads authorized_keys as the user logging in.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        keygen(&self.host_key, "ed25519");
        let mut keys = String::new();
        for k in authorized {
            keys += &fs::read_to_string(k.with_extension("pub")).unwrap();
        }
        let ak = dir.join("authorized_keys");
        fs::write(&ak, keys).unwrap();
        fs::set_permissions(&ak, fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = format!(
            "Port {port}\nListenAddress {addr}\nHostKey {}\nPidFile none\nUsePAM no\nStrictModes no\n\
             AuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nGatewayPorts clientspecified\nLogLevel VERBOSE\n{extra}",
            self.host_key.display(),
            ak.display()
        );
        fs::write(dir.join("sshd_config"), cfg).expect("write sshd_config");
    }

    /// The host key's fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.host_key.with_extension("pub"))
    }

    /// Start sshd (again) and wait until it listens.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "sshd already running");
        let cfg = self.dir.join("sshd_config");
        let child = spawn_in(
            &self.ns,
            &[SSHD, "-D", "-e", "-f", cfg.to_str().unwrap()],
            &self.dir.join("sshd.log"),
        );
        let pid = child.id();
        self.child = Some(child);
        wait_listening("sshd", pid, "tcp", self.port, &self.dir.join("sshd.log"));
    }

    /// Kill sshd and every session process it forked (as a crashed or
    /// rebooted server would vanish).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let kids = descendants(c.id());
            let _ = c.kill();
            let _ = c.wait();
            kill_alive(&kids);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.join("sshd.log"))
    }

    /// A new host key (as if the server was reinstalled); takes effect at the next start.
    pub fn rekey(&self) {
        keygen(&self.host_key, "ed25519");
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Its per-connection processes outlive the listener. roadie
            // said goodbye by now, so normally there are none left; a
            // session from an address that is gone would linger until
            // sshd's keepalive gives up on it.
            let kids = descendants(c.id());
            stop_child(&mut c, libc::SIGTERM, Duration::from_secs(3));
            kill_alive(&kids);
        }
    }
}
