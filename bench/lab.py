"""A network-namespace lab for roadie's benchmarks and soak runs.

Three namespaces, all private addresses inside them (nothing in the root
namespace but the namespace files and a temp dir):

    up  (sshd: the tunnel server; clients of the public side)
        up0 10.66.0.254/24 <-> wan0 10.66.0.2/24   rtr (roadie or ssh -R)
                                     lan0 192.168.1.1/24 <-> eth0 192.168.1.100/24  cl (target.py)

Everything started here is tracked by PID and stopped on close(), also on
Ctrl-C and on errors.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_IP = "10.66.0.254"
WAN_IP = "10.66.0.2"
NODE_IP = "192.168.1.100"
# The roadie binary under test: ROADIE_BIN when set (e.g. a static musl build
# from scripts/cross-build), else the host release build, honouring
# CARGO_TARGET_DIR as cargo does.
ROADIE_BIN = os.environ.get("ROADIE_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "roadie"
)


def sh(*args, check=True, capture=True):
    r = subprocess.run(args, capture_output=capture, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout if capture else ""


def wait_for(what, cond, timeout=20.0, step=0.01):
    """Poll `cond` until it is truthy; returns its value. No fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)


def iperf3(ns, extra, reverse):
    """iperf3 from namespace `ns` to SERVER_IP:5201 with `extra` arguments
    (`-t N` or `-n NM`); (bits per second, bytes). iperf3's server takes one
    test at a time and sometimes answers "busy" right after the previous
    one: try again a few times."""
    args = ["ip", "netns", "exec", ns, "iperf3", "-c", SERVER_IP, "-p", "5201", *extra, "-J"]
    if reverse:
        args.append("-R")
    for attempt in range(5):
        out = json.loads(sh(*args, check=False) or "{}")
        got = out.get("end", {}).get("sum_received")
        if got:
            return got["bits_per_second"], got["bytes"]
        print(f"  iperf3: {out.get('error', 'no result')}; again", flush=True)
        time.sleep(0.5 * (attempt + 1))
    raise RuntimeError("iperf3 kept failing")


def alive(pid):
    """True unless the process is gone or a zombie (LAB.md: check /proc, not kill -0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def listening(pid, port):
    """True when the process's namespace has a TCP listener on `port`."""
    hexport = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                if any(l.split()[1].endswith(hexport) and l.split()[3] == "0A" for l in f.readlines()[1:]):
                    return True
        except FileNotFoundError:
            pass
    return False


def descendants(pid):
    """PIDs of every living descendant of pid (children first)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(c) for c in f.read().split()]
            except FileNotFoundError:
                continue
            out += kids
            todo += kids
    return out


def proc_stat(pid):
    """(cpu seconds, VmRSS KiB, VmHWM KiB, threads, open fds) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = hwm = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "VmRSS":
                rss = int(v.split()[0])
            elif k == "VmHWM":
                hwm = int(v.split()[0])
            elif k == "Threads":
                threads = int(v)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return cpu, rss, hwm, threads, fds


class Lab:
    def __init__(self, tag="b", cipher=None, client_alive=(5, 3), server_ip=SERVER_IP, sshd_extra=""):
        """server_ip: where sshd listens. Another address than SERVER_IP goes on `lo`
        in the upstream namespace (/32, reached via the router's default route), so
        the tunnel server stays reachable when the router's uplink is renumbered.
        sshd_extra: more sshd_config lines."""
        if os.geteuid() != 0:
            sys.exit("the namespace lab needs root")
        self.id = f"r{tag}{os.getpid()}"
        self.up, self.rtr, self.cl = (f"{self.id}-{n}" for n in ("up", "rtr", "cl"))
        self.dir = tempfile.mkdtemp(prefix="roadie-lab.")
        self.procs = {}
        self.closed = False
        atexit.register(self.close)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._on_signal)
        for ns in (self.up, self.rtr, self.cl):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
                f.write("nameserver 127.0.0.1\n")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "add", "up0", "netns", self.up, "type", "veth", "peer", "name", "wan0", "netns", self.rtr)
        sh("ip", "link", "add", "lan0", "netns", self.rtr, "type", "veth", "peer", "name", "eth0", "netns", self.cl)
        for ns, dev in ((self.up, "up0"), (self.rtr, "wan0"), (self.rtr, "lan0"), (self.cl, "eth0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", self.up, "addr", "add", f"{SERVER_IP}/24", "dev", "up0")
        self.server_ip = server_ip
        if server_ip != SERVER_IP:
            sh("ip", "-n", self.up, "addr", "add", f"{server_ip}/32", "dev", "lo")
        sh("ip", "-n", self.rtr, "addr", "add", f"{WAN_IP}/24", "dev", "wan0")
        sh("ip", "-n", self.rtr, "route", "add", "default", "via", SERVER_IP)
        sh("ip", "-n", self.rtr, "addr", "add", "192.168.1.1/24", "dev", "lan0")
        sh("ip", "-n", self.cl, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        sh("ip", "-n", self.cl, "route", "add", "default", "via", "192.168.1.1")
        self._keys()
        self.cipher = cipher
        self.client_alive = client_alive
        self.sshd_extra = sshd_extra
        self.start_sshd()
        self.target = self.start("target", self.cl, [sys.executable, f"{ROOT}/bench/target.py"])
        wait_for("the target services", lambda: listening(self.target.pid, 8080))

    def _on_signal(self, signum, _frame):
        self.close()
        sys.exit(128 + signum)

    def _keys(self):
        d = self.dir
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/host_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/id_ed25519")
        shutil.copy(f"{d}/id_ed25519.pub", f"{d}/authorized_keys")
        os.chmod(d, 0o755)
        os.makedirs("/run/sshd", exist_ok=True)

    def start(self, name, ns, argv, log=None):
        """Start argv in namespace ns; `ip netns exec` execs, so the PID is the program's."""
        out = open(log or f"{self.dir}/{name}.log", "ab")
        # Own process group: sshd's per-session children go with it on stop().
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.procs[name] = p
        return p

    def kill_tree(self, name, sig):
        """Signal a started program's process group and every descendant's group.
        sshd's per-connection children call setsid(), so signalling the group alone misses them:
        this is what a crash of the whole server looks like."""
        p = self.procs[name]
        groups = {p.pid}
        for pid in descendants(p.pid):
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass
        for g in groups:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass

    def stop(self, name, sig=signal.SIGTERM, timeout=5.0):
        """Stop a started program; returns how long it took to exit."""
        p = self.procs.pop(name, None)
        if p is None:
            return None
        t0 = time.monotonic()
        try:
            os.killpg(p.pid, sig)
            p.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        took = time.monotonic() - t0
        try:
            os.killpg(p.pid, signal.SIGKILL)  # leftovers of the group
        except ProcessLookupError:
            pass
        return took

    def start_sshd(self):
        alive_i, alive_n = self.client_alive
        cfg = f"{self.dir}/sshd_config"
        with open(cfg, "w") as f:
            f.write(
                f"""ListenAddress {self.server_ip}
Port 22
HostKey {self.dir}/host_key
PidFile none
AuthorizedKeysFile {self.dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
GatewayPorts clientspecified
AllowTcpForwarding yes
ClientAliveInterval {alive_i}
ClientAliveCountMax {alive_n}
MaxStartups 100
LogLevel ERROR
"""
                + (f"Ciphers {self.cipher}\n" if self.cipher else "")
                + self.sshd_extra
            )
        self.sshd = self.start("sshd", self.up, ["/usr/sbin/sshd", "-D", "-e", "-f", cfg])
        wait_for("sshd", lambda: listening(self.sshd.pid, 22))
        return self.sshd

    def roadie_config(self, tunnels, keepalive_s=5, extra="", lan_extra=""):
        """tunnels: [(name, remote_port, target_port)] (remote_port may be a string such
        as "unix:/path"); extra goes into [[server]], lan_extra into [lan] (e.g. 'hook = "..."')."""
        cfg = f"""[daemon]
state = "{self.dir}/state.toml"
socket = "{self.dir}/roadie.sock"
log_level = "info"
[wan]
interfaces = ["wan0"]
probe_url = "off"
[lan]
interface = "lan0"
address = "192.168.1.1/24"
{lan_extra}
[[lan.host]]
name = "node"
address = "{NODE_IP}"
[[server]]
name = "lab"
host = "{self.server_ip}"
user = "root"
identity = "{self.dir}/id_ed25519"
known_hosts = "{self.dir}/known_hosts"
session = "none"
keepalive_s = {keepalive_s}
{extra}
"""
        for name, rport, tport in tunnels:
            remote = rport if isinstance(rport, str) else f"0.0.0.0:{rport}"
            cfg += f"""[[tunnel]]
name = "{name}"
server = "lab"
remote = "{remote}"
target = "node:{tport}"
"""
        path = f"{self.dir}/roadie.toml"
        with open(path, "w") as f:
            f.write(cfg)
        return path

    def start_roadie(self, tunnels, **kw):
        cfg = self.roadie_config(tunnels, **kw)
        return self.start("roadie", self.rtr, [ROADIE_BIN, "-c", cfg, "daemon"])

    def start_ssh(self, tunnels, name="ssh", alive=(5, 3)):
        """OpenSSH's client, as a user would run it (ssh -N -R ...)."""
        argv = [
            "ssh", "-N", "-i", f"{self.dir}/id_ed25519",
            "-o", f"UserKnownHostsFile={self.dir}/known_hosts_ssh", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ExitOnForwardFailure=yes", "-o", f"ServerAliveInterval={alive[0]}",
            "-o", f"ServerAliveCountMax={alive[1]}", "-o", "BatchMode=yes",
        ]
        for _, rport, tport in tunnels:
            argv += ["-R", f"0.0.0.0:{rport}:{NODE_IP}:{tport}"]
        argv.append(f"root@{self.server_ip}")
        return self.start(name, self.rtr, argv)

    def forwarded(self, port):
        """True when sshd listens on the forwarded port (the tunnel is up)."""
        return listening(self.sshd.pid, port)

    def client(self, *args):
        """Run bench/client.py in the upstream namespace; returns its stdout."""
        return sh("ip", "netns", "exec", self.up, sys.executable, f"{ROOT}/bench/client.py", *map(str, args))

    def close(self):
        if self.closed:
            return
        self.closed = True
        # Descendants in their own sessions (sshd's per-connection children) would
        # outlive their parent's process group: note them first, kill what is left.
        left = [d for p in self.procs.values() for d in descendants(p.pid)]
        for name in list(self.procs):
            self.stop(name, timeout=2.0)
        for pid in left:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in (self.up, self.rtr, self.cl):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        if not os.environ.get("ROADIE_LAB_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
