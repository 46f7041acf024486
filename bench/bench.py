"""roadie against OpenSSH's `ssh -R`, alternately, in the namespace lab.

Prints a table and writes bench/results.md. Run through scripts/bench.
ROUNDS (default 3) rounds per measurement; medians and ratios reported.
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as L  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = int(os.environ.get("SECONDS_EACH", "4"))
CIPHERS = ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"]
TUNNELS = [("ui", 8080, 8080), ("bulk", 5201, 5201), ("sink", 9000, 9000)]
IMPLS = ["roadie", "openssh"]
results = []  # (section, metric, roadie, openssh, unit, better)


def start(lab, impl, tunnels=TUNNELS, **kw):
    p = lab.start_roadie(tunnels, **kw) if impl == "roadie" else lab.start_ssh(tunnels)
    L.wait_for(f"{impl}'s forwards", lambda: all(lab.forwarded(t[1]) for t in tunnels), timeout=20)
    return p


def stop(lab, impl):
    lab.stop("roadie" if impl == "roadie" else "ssh")


def iperf(lab, reverse):
    bps, nbytes = L.iperf3(lab.up, ["-t", str(SECONDS)], reverse)
    return bps / 1e9, nbytes


def show(v, unit):
    """A measured value; float("inf") is a wait that hit its cap."""
    return f"> {STALE_CAP:g} {unit}" if v == float("inf") else f"{v:.3g} {unit}"


def record(section, metric, values, unit, better):
    r, o = statistics.median(values["roadie"]), statistics.median(values["openssh"])
    results.append((section, metric, r, o, unit, better))
    print(f"  {metric}: roadie {show(r, unit)}, openssh {show(o, unit)}", flush=True)


def throughput_and_cpu():
    for cipher in CIPHERS:
        short = cipher.split("@")[0]
        print(f"throughput, {short}", flush=True)
        lab = L.Lab(tag="t", cipher=cipher)
        try:
            lab.iperf = lab.start("iperf", lab.cl, ["iperf3", "-s", "-p", "5201"])
            L.wait_for("iperf3 server", lambda: L.listening(lab.iperf.pid, 5201))
            down = {i: [] for i in IMPLS}  # server -> target: the tunnel client decrypts
            up = {i: [] for i in IMPLS}  # target -> server: the tunnel client encrypts
            # CPU seconds of the tunnel client per GiB, per direction: it
            # decrypts server → target and encrypts target → server.
            cpu_down = {i: [] for i in IMPLS}
            cpu_up = {i: [] for i in IMPLS}
            for _ in range(ROUNDS):
                for impl in IMPLS:
                    p = start(lab, impl)
                    c0 = L.proc_stat(p.pid)[0]
                    g1, b1 = iperf(lab, reverse=False)
                    c1 = L.proc_stat(p.pid)[0]
                    g2, b2 = iperf(lab, reverse=True)
                    c2 = L.proc_stat(p.pid)[0]
                    down[impl].append(g1)
                    up[impl].append(g2)
                    cpu_down[impl].append((c1 - c0) / (b1 / 2**30))
                    cpu_up[impl].append((c2 - c1) / (b2 / 2**30))
                    stop(lab, impl)
            record("throughput", f"{short} server→target", down, "Gbit/s", "higher")
            record("throughput", f"{short} target→server", up, "Gbit/s", "higher")
            record("cpu", f"{short} CPU per GiB server→target", cpu_down, "s/GiB", "lower")
            record("cpu", f"{short} CPU per GiB target→server", cpu_up, "s/GiB", "lower")
        finally:
            lab.close()


def latency():
    print("latency", flush=True)
    lab = L.Lab(tag="l")
    try:
        seq = {i: ([], []) for i in IMPLS}
        conc = {i: ([], []) for i in IMPLS}
        for _ in range(ROUNDS):
            for impl in IMPLS:
                start(lab, impl)
                lab.client("latency", L.SERVER_IP, 8080, 50, 8)  # warm-up
                s = json.loads(lab.client("latency", L.SERVER_IP, 8080, 300, 1))
                c = json.loads(lab.client("latency", L.SERVER_IP, 8080, 1280, 64))
                assert s["errors"] == 0 and c["errors"] == 0, (impl, s, c)
                seq[impl][0].append(s["p50_ms"])
                seq[impl][1].append(s["p99_ms"])
                conc[impl][0].append(c["p50_ms"])
                conc[impl][1].append(c["p99_ms"])
                stop(lab, impl)
        record("latency", "sequential p50", {i: seq[i][0] for i in IMPLS}, "ms", "lower")
        record("latency", "sequential p99", {i: seq[i][1] for i in IMPLS}, "ms", "lower")
        record("latency", "64 concurrent p50", {i: conc[i][0] for i in IMPLS}, "ms", "lower")
        record("latency", "64 concurrent p99", {i: conc[i][1] for i in IMPLS}, "ms", "lower")
    finally:
        lab.close()


def serving(lab):
    try:
        lab.client("get", L.SERVER_IP, 8080, 0.5)
        return True
    except RuntimeError:
        return False


def recovery():
    """Times to serve again. OpenSSH runs under an autossh-style restart loop."""
    print("recovery", flush=True)
    alive = 5
    addr, restart, silent = ({i: [] for i in IMPLS} for _ in range(3))
    for _ in range(ROUNDS):
        for impl in IMPLS:
            lab = L.Lab(tag="r", client_alive=(alive, 3))
            try:
                if impl == "roadie":
                    p = start(lab, impl, keepalive_s=alive)
                else:
                    loop = (
                        "while :; do ssh -v -N -i {d}/id_ed25519 -o UserKnownHostsFile={d}/kh "
                        "-o StrictHostKeyChecking=accept-new -o ExitOnForwardFailure=yes "
                        "-o ServerAliveInterval={a} -o ServerAliveCountMax=3 -o BatchMode=yes "
                        "-R 0.0.0.0:8080:{n}:8080 root@{s}; sleep 1; done"
                    ).format(d=lab.dir, a=alive, n=L.NODE_IP, s=L.SERVER_IP)
                    p = lab.start("ssh", lab.rtr, ["sh", "-c", loop])
                    L.wait_for("ssh loop", lambda: lab.forwarded(8080), timeout=20)
                L.wait_for("serving", lambda: serving(lab))
                # 1. Uplink address change (a new DHCP lease in the same network).
                t0 = time.monotonic()
                before = ssh_forwards(lab) if impl == "openssh" else 0
                # As udhcpc's script applies a new lease: deconfig, then bound.
                L.sh("ip", "-n", lab.rtr, "addr", "flush", "dev", "wan0")
                L.sh("ip", "-n", lab.rtr, "addr", "add", "10.66.0.3/24", "dev", "wan0")
                L.sh("ip", "-n", lab.rtr, "route", "replace", "default", "via", L.SERVER_IP)
                # Do not probe the forwarded port until the client says it is
                # back: every connection to the stale listener wakes the old
                # session in sshd, whose ClientAlive check then never fires.
                if impl == "roadie":
                    L.wait_for("roadie's tunnel back up", lambda: tunnel_up_again(lab), timeout=120, step=0.05)
                else:
                    L.wait_for("a new ssh's forward", lambda: ssh_forwards(lab) > before, timeout=120, step=0.05)
                L.wait_for("serving after address change", lambda: serving(lab), timeout=120, step=0.05)
                addr[impl].append(time.monotonic() - t0)
                # 2. Tunnel server killed and restarted: time from sshd listening again.
                lab.kill_tree("sshd", signal.SIGKILL)  # the server and its sessions: a crash
                lab.stop("sshd", sig=signal.SIGKILL)
                lab.start_sshd()
                t0 = time.monotonic()
                L.wait_for("serving after sshd restart", lambda: serving(lab), timeout=120, step=0.05)
                restart[impl].append(time.monotonic() - t0)
                # 3. Silent path loss: the server freezes. Time until the client notices.
                silent[impl].append(silent_loss(lab, impl, lambda: L.descendants(p.pid)))
            finally:
                lab.close()
    record("recovery", "uplink address change → serving", addr, "s", "lower")
    record("recovery", "sshd back → serving", restart, "s", "lower")
    record("recovery", f"silent loss detected (keepalive {alive} s)", silent, "s", "lower")


def silent_loss(lab, impl, ssh_pids):
    """Freeze the server (SIGSTOP sshd and its sessions); seconds until the
    client notices: roadie reports a tunnel down, or the ssh processes
    `ssh_pids()` named before the freeze have all exited."""
    first = ssh_pids() if impl == "openssh" else []
    lab.kill_tree("sshd", signal.SIGSTOP)
    t0 = time.monotonic()
    if impl == "roadie":
        L.wait_for("roadie to notice", lambda: any(t["state"] != "up" for t in roadie_status(lab)["tunnels"]), timeout=120, step=0.05)
    else:
        L.wait_for("ssh to notice", lambda: not any(L.alive(c) for c in first), timeout=120, step=0.05)
    took = time.monotonic() - t0
    lab.kill_tree("sshd", signal.SIGCONT)
    return took


def silent():
    """Silent loss with one allowed miss: roadie `keepalive_max = 1` against
    ssh `ServerAliveCountMax=1`, both every 5 s; the server freezes (SIGSTOP)."""
    print("silent loss, keepalive_max 1", flush=True)
    alive = 5
    silent = {i: [] for i in IMPLS}
    for _ in range(ROUNDS):
        for impl in IMPLS:
            lab = L.Lab(tag="s", client_alive=(alive, 3))
            try:
                if impl == "roadie":
                    p = start(lab, impl, keepalive_s=alive, extra="keepalive_max = 1")
                else:
                    p = lab.start_ssh(TUNNELS, alive=(alive, 1))
                    L.wait_for("ssh's forwards", lambda: all(lab.forwarded(t[1]) for t in TUNNELS), timeout=20)
                L.wait_for("serving", lambda: serving(lab))
                silent[impl].append(silent_loss(lab, impl, lambda: [p.pid]))
            finally:
                lab.close()
    record("recovery", f"silent loss detected (keepalive {alive} s, 1 miss allowed)", silent, "s", "lower")


STALE_CAP = float(os.environ.get("STALE_CAP_S", "120"))
# Every lab of the stale part: the README's sshd settings for a self-hosted server.
STALE_SSHD = "AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n"
NEW_WAN_IP = "10.66.0.3"


STALE_NOTES = [
    "Stale-session rows (`scripts/bench stale`, issue 17): the router's uplink is renumbered; sshd has",
    "`ClientAliveInterval 5`, `ClientAliveCountMax 3`; OpenSSH runs `ssh -R` (ServerAlive 5 × 3,",
    "ExitOnForwardFailure) in a restart loop; \"GET every 20 ms\" is a visitor starting a GET through the",
    "tunnel every 20 ms (1 s timeout each); \"serving\" means every GET since has been answered for 2 s.",
    f"`> {STALE_CAP:g} s` is the cap of the wait. What ends the old session that sshd still holds:",
    "idle, its ClientAlive timeout; with visitors, each one wakes the dead session (ClientAlive counts idle",
    "time only), so only the server's TCP retransmission timeout ends it (`tcp_retries2` 15: about 15 min;",
    "5: about 13 s); with a unix-socket remote and `StreamLocalBindUnlink yes`, the new session's socket",
    "replaces it at once (ssh -R first needs its ServerAlive timeout to notice its own connection is dead);",
    "with the new address 100 ms before the old one goes, roadie cancels the old session's forwards and",
    "disconnects while its address still works, and connects from the new address.",
]


class Pulse:
    """Visitors of the tunnel: `client.py pulse` in the upstream namespace, a GET every
    20 ms whether or not the last one was answered (1 s timeout each)."""

    def __init__(self, lab, host, port):
        self.results = []  # (launch time, ok), in the order they finished
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", lab.up, sys.executable, f"{L.ROOT}/bench/client.py", "pulse", host, str(port), "20"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            t, ok = line.split()
            self.results.append((float(t), ok == "1"))

    def serving_again(self, t0, hold=2.0):
        """Seconds from t0 until every GET launched since has been answered, for `hold` s
        (0 when none launched after t0 failed); None while that has not happened yet.
        Only GETs launched over 1.5 s ago count: they have all finished (1 s timeout)."""
        horizon = time.monotonic() - 1.5
        r = [(t, ok) for t, ok in list(self.results) if t0 <= t <= horizon]
        fails = [t for t, ok in r if not ok]
        last_fail = max(fails) if fails else None
        oks = [t for t, ok in r if ok and (last_fail is None or t > last_fail)]
        if not oks or max(oks) - min(oks) < hold:
            return None
        return 0.0 if last_fail is None else min(oks) - t0

    def failed_since(self, t0):
        return sum(1 for t, ok in list(self.results) if t >= t0 and not ok)

    def close(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()


def stale_one(impl, event, remote, traffic, retries2=None):
    """One stale-session measurement: seconds until the tunnel serves again after `event`
    on the router's uplink ("renumber": the old address goes, then the new one comes, as
    udhcpc's script applies a lease; "overlap": the new address comes 100 ms before the
    old one goes), float("inf") past STALE_CAP. remote: 8080 or "unix"."""
    lab = L.Lab(tag="x", client_alive=(5, 3), sshd_extra=STALE_SSHD)
    pulse = None
    try:
        if retries2 is not None:
            # Per network namespace: only the server's own sockets.
            L.sh("ip", "netns", "exec", lab.up, "sysctl", "-qw", f"net.ipv4.tcp_retries2={retries2}")
        # The new address survives the old one's removal (else the kernel drops secondaries too).
        L.sh("ip", "netns", "exec", lab.rtr, "sysctl", "-qw", "net.ipv4.conf.wan0.promote_secondaries=1")
        sock = f"{lab.dir}/ui.sock"
        if impl == "roadie":
            rport = f"unix:{sock}" if remote == "unix" else remote
            lab.start_roadie([("ui", rport, 8080)], keepalive_s=5)
            L.wait_for("roadie's tunnel", lambda: roadie_tunnel_up(lab), timeout=20)
        else:
            spec = f"{sock}:{L.NODE_IP}:8080" if remote == "unix" else f"0.0.0.0:{remote}:{L.NODE_IP}:8080"
            loop = (
                "while :; do ssh -v -N -i {d}/id_ed25519 -o UserKnownHostsFile={d}/kh "
                "-o StrictHostKeyChecking=accept-new -o ExitOnForwardFailure=yes "
                "-o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o BatchMode=yes "
                "-R {spec} root@{s}; sleep 1; done"
            ).format(d=lab.dir, spec=spec, s=L.SERVER_IP)
            lab.start("ssh", lab.rtr, ["sh", "-c", loop])
            L.wait_for("ssh's forward", lambda: ssh_forwards(lab) > 0, timeout=20)
        host, port = ("unix", sock) if remote == "unix" else (L.SERVER_IP, remote)
        if traffic:
            pulse = Pulse(lab, host, port)
            start = time.monotonic()
            L.wait_for("visitors served", lambda: pulse.serving_again(start) is not None, timeout=20, step=0.05)
        else:
            L.wait_for("serving", lambda: serving(lab))
        before = ssh_forwards(lab) if impl == "openssh" else 0
        t0 = time.monotonic()
        if event == "renumber":
            L.sh("ip", "-n", lab.rtr, "addr", "flush", "dev", "wan0")
            L.sh("ip", "-n", lab.rtr, "addr", "add", f"{NEW_WAN_IP}/24", "dev", "wan0")
        else:
            L.sh("ip", "-n", lab.rtr, "addr", "add", f"{NEW_WAN_IP}/24", "dev", "wan0")
            time.sleep(0.1)  # the network's own timing under test, not a wait for a condition
            L.sh("ip", "-n", lab.rtr, "addr", "del", f"{L.WAN_IP}/24", "dev", "wan0")
        L.sh("ip", "-n", lab.rtr, "route", "replace", "default", "via", L.SERVER_IP)
        try:
            if traffic:
                took = L.wait_for("serving again", lambda: pulse.serving_again(t0), timeout=STALE_CAP, step=0.05)
                failed = pulse.failed_since(t0)
            else:
                # No probing until the client says it is back (a probe would wake the old session).
                if impl == "roadie":
                    L.wait_for("roadie back up", lambda: tunnel_up_again(lab), timeout=STALE_CAP, step=0.05)
                else:
                    L.wait_for("a new ssh's forward", lambda: ssh_forwards(lab) > before, timeout=STALE_CAP, step=0.05)
                L.wait_for("serving again", lambda: serving(lab), timeout=STALE_CAP, step=0.05)
                took, failed = time.monotonic() - t0, 0
        except TimeoutError:
            took, failed = float("inf"), pulse.failed_since(t0) if pulse else 0
        why = ""
        if impl == "roadie":
            t = roadie_status(lab)["tunnels"][0]
            why = f"; roadie: {t['state']}, reconnects {t['reconnects']}, last_error {t['last_error']}"
        print(f"    {impl} {event} {remote} traffic={traffic} retries2={retries2}: {took:.2f} s, {failed} GETs failed{why}", flush=True)
        return took
    finally:
        if pulse:
            pulse.close()
        lab.close()


def stale():
    """Recovery from a stale session on the server (issue 17), roadie and `ssh -R` in an
    autossh-style loop against one sshd (ClientAliveInterval 5, ClientAliveCountMax 3)."""
    print(f"stale sessions (cap {STALE_CAP:g} s)", flush=True)
    cases = [
        ("renumbered, idle", dict(event="renumber", remote=8080, traffic=False)),
        ("renumbered, GET every 20 ms", dict(event="renumber", remote=8080, traffic=True)),
        ("renumbered, GET every 20 ms, server tcp_retries2=5", dict(event="renumber", remote=8080, traffic=True, retries2=5)),
        ("unix socket + StreamLocalBindUnlink, renumbered, GET every 20 ms", dict(event="renumber", remote="unix", traffic=True)),
        ("new address 100 ms before the old goes, GET every 20 ms", dict(event="overlap", remote=8080, traffic=True)),
    ]
    only = os.environ.get("STALE_CASES")
    for i, (name, kw) in enumerate(cases):
        if only and str(i) not in only.split(","):
            continue
        print(f"  {name}", flush=True)
        values = {impl: [] for impl in IMPLS}
        for _ in range(ROUNDS):
            for impl in IMPLS:
                values[impl].append(stale_one(impl, **kw))
        record("recovery", f"stale session: {name} → serving", values, "s", "lower")


def roadie_status(lab):
    out = L.sh(L.ROADIE_BIN, "-s", f"{lab.dir}/roadie.sock", "call", "status")
    return json.loads(out)


def roadie_tunnel_up(lab):
    """The first tunnel is up (False while the daemon is still starting)."""
    try:
        return roadie_status(lab)["tunnels"][0]["state"] == "up"
    except RuntimeError:
        return False


def tunnel_up_again(lab):
    t = roadie_status(lab)["tunnels"][0]
    return t["state"] == "up" and t["reconnects"] > 0


def ssh_forwards(lab):
    """How many times an ssh of the restart loop had its forward accepted."""
    with open(f"{lab.dir}/ssh.log", "rb") as f:
        return f.read().count(b"remote forward success")


def build_label():
    """Which roadie build is measured: ROADIE_BIN_LABEL, else the target triple
    in ROADIE_BIN's path (target/TRIPLE/release/roadie), else "host"."""
    if os.environ.get("ROADIE_BIN_LABEL"):
        return os.environ["ROADIE_BIN_LABEL"]
    parts = L.ROADIE_BIN.split(os.sep)
    if len(parts) >= 3 and parts[-2] == "release" and "-" in parts[-3]:
        return parts[-3]
    return "host"


def rss_parts(pid):
    """RssAnon, RssFile (KiB) of a process: heap and stacks vs the binary's pages."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def memory():
    label = build_label()
    print(f"memory ({label}: {L.ROADIE_BIN})", flush=True)
    lab = L.Lab(tag="m")
    try:
        idle, busy = {i: [] for i in IMPLS}, {i: [] for i in IMPLS}
        for impl in IMPLS:
            p = start(lab, impl)
            L.wait_for("serving", lambda: serving(lab))
            idle[impl].append(L.proc_stat(p.pid)[1] / 1024)
            print(f"  {impl} idle: {rss_parts(p.pid)}", flush=True)
            r = json.loads(lab.client("flood", L.SERVER_IP, 9000, 200, 4 * 2**20))
            assert r["failed"] == 0, (impl, r)
            busy[impl].append(L.proc_stat(p.pid)[2] / 1024)
            print(f"  {impl} after the flood: {rss_parts(p.pid)}", flush=True)
            stop(lab, impl)
        record("memory", f"RSS idle, 3 tunnels ({label})", idle, "MiB", "lower")
        record("memory", f"peak RSS, 200 connections moving data ({label})", busy, "MiB", "lower")
    finally:
        lab.close()


def write_results():
    """Write bench/results.md: rows measured now replace rows of the same name;
    rows of parts not run this time are kept."""
    path = os.path.join(L.ROOT, "bench", "results.md")
    rows = {}
    try:
        with open(path) as f:
            router, rest = router_sections(f.read())
        for line in rest.splitlines():
            if line.startswith("| ") and not line.startswith("| what"):
                rows[line.split(" | ", 1)[0][2:]] = line
    except FileNotFoundError:
        router = ""
    for section, metric, r, o, unit, better in results:
        inf = float("inf")
        if inf in (r, o):
            ratio = "<" if o == inf and r != inf else "—"
        else:
            ratio = f"{r / o:.2f}×" if o else "—"
        key = f"{section}: {metric}"
        rows[key] = f"| {key} | {show(r, unit)} | {show(o, unit)} | {ratio} | {better} |"
    lines = [
        *([router] if router else []),
        "# roadie vs OpenSSH `ssh -R`",
        "",
        f"Same sshd ({subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip()}), "
        "namespace lab on this machine, "
        f"{ROUNDS} rounds each (memory: one), alternating; medians. Run by `scripts/bench`; "
        "memory rows name the roadie build measured (`ROADIE_BIN`).",
        "",
        "| what | roadie | OpenSSH | roadie / OpenSSH | better |",
        "|---|---|---|---|---|",
        *rows.values(),
        "",
        *STALE_NOTES,
    ]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)


def router_sections(text):
    """(the sections bench/router.py writes, kept as they are; the rest)."""
    kept, rest = [], text
    for m in re.finditer(r"<!-- router-cpu (\S+) -->.*?<!-- /router-cpu \1 -->\n*", text, re.S):
        kept.append(m.group(0).rstrip("\n") + "\n")
        rest = rest.replace(m.group(0), "")
    return "\n".join(kept), rest


def profile():
    """Where roadie's CPU goes while it decrypts (server → target), per cipher:
    perf samples a symbolized release build during one iperf3 run; the top
    symbols go to bench/profile.md. Not part of the default run."""
    target = os.path.join(L.ROOT, "target", "profiling")
    env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="false", CARGO_PROFILE_RELEASE_DEBUG="line-tables-only")
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--target-dir", target], cwd=L.ROOT, env=env, check=True)
    L.ROADIE_BIN = os.path.join(target, "release", "roadie")
    lines = [
        "# Where roadie's CPU goes, decrypting",
        "",
        "`scripts/bench profile`: perf (cpu-clock, 999 Hz) on a symbolized release build while iperf3 "
        f"sends server → target through one tunnel for {SECONDS} s. Symbols at 1 % or more of roadie's samples.",
    ]
    for cipher in CIPHERS:
        print(f"profile: server → target, {cipher}", flush=True)
        gbit, rows = profile_one(cipher)
        lines += [
            "",
            f"## {cipher}: {gbit:.2f} Gbit/s",
            "",
            "| share | symbol |",
            "|---|---|",
            *[f"| {pct:.1f} % | `{sym[:110]}` |" for pct, sym in rows],
        ]
        for pct, sym in rows:
            print(f"  {pct:5.1f} %  {sym[:100]}")
    with open(os.path.join(L.ROOT, "bench", "profile.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def profile_one(cipher):
    """One perf-recorded iperf3 run: (Gbit/s, [(percent, symbol)])."""
    lab = L.Lab(tag="p", cipher=cipher)
    data = os.path.join(lab.dir, "perf.data")
    try:
        lab.iperf = lab.start("iperf", lab.cl, ["iperf3", "-s", "-p", "5201"])
        L.wait_for("iperf3 server", lambda: L.listening(lab.iperf.pid, 5201))
        p = start(lab, "roadie")
        rec = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-p", str(p.pid), "-o", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        gbit, _ = iperf(lab, reverse=False)
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=30)
        report = L.sh("perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "--percent-limit", "1")
    finally:
        lab.close()
    rows = []
    for line in report.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+\[[.k]\]\s+(.*)", line)
        if m:
            rows.append((float(m.group(1)), " ".join(m.group(2).split())))
    return gbit, rows


if __name__ == "__main__":
    parts = sys.argv[1:] or ["throughput", "latency", "recovery", "silent", "stale", "memory"]
    for part in parts:
        {"throughput": throughput_and_cpu, "latency": latency, "recovery": recovery, "silent": silent,
         "stale": stale, "memory": memory, "profile": profile}[part]()
    write_results()
