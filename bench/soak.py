"""Fault soak for roadie in the namespace lab (run through scripts/soak).

Two tunnels carry traffic the whole time (HTTP GETs through "ui", bulk
transfers to the sink through "sink", from the upstream namespace) while
faults are injected one after the other:

  kill      SIGKILL sshd and all its session children, start it again
  flap      `ip link set wan0 down`, wait until roadie saw it, `up`, default route
            back (as udhcpc's renew would)
  renumber  a new uplink address the way udhcpc's script applies a lease
            (flush, add, default route): alternately a prefix that does not
            collide (inside 10.66.0.0/24 or elsewhere) and the LAN's current
            prefix (the first time 192.168.1.0/24), which roadie must move away
            from; its [lan] hook moves the cluster node to the same offset

After each event: both tunnels serve again (polled with a deadline), the
recovery time is recorded, and the planner made exactly the decisions it
should. At the end: fds, threads and RSS against the warm-up values, every
byte sent acknowledged or its connection reported closed, the state file,
roadie alive. Exit status 1 on any violated check (with roadie's log tail).

  soak.py [--short] [--kills N] [--flaps N] [--renumbers N] [--rate BYTES/S]
"""

import argparse
import ctypes
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as L  # noqa: E402

STABLE_IP = "198.18.0.1"  # sshd's address on lo in the upstream namespace
HOME = "192.168.1.0/24"
UI, SINK = 8080, 9000
TUNNELS = [("ui", UI, 8080), ("sink", SINK, 9000)]
REQUEST = b"GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"
PAGE = b"hello from the cluster\n"
EVENT_DEADLINE = 45.0  # seconds for one event to be served again
CONN_TIMEOUT = 20.0  # a traffic connection silent this long counts as hung
FD_SLACK = 8
THREAD_SLACK = 8
RSS_SLACK = 0.20

# --- sockets inside a namespace --------------------------------------------
# setns(2) on a network namespace changes only the calling thread; a socket
# keeps the namespace it was created in. So: enter, create, leave.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000
_ROOT_NS = os.open("/proc/self/ns/net", os.O_RDONLY)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


class Ns:
    def __init__(self, name):
        self.fd = os.open(f"/run/netns/{name}", os.O_RDONLY)

    def connect(self, host, port, timeout):
        _setns(self.fd)
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(_ROOT_NS)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    def close(self):
        os.close(self.fd)


def read_http(s):
    """One response (the target sends Content-Length); raises on anything else."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"bad status line {head[:40]!r}")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the middle of the body")
        body += chunk
    if body != PAGE:
        raise ValueError(f"wrong body {body[:40]!r}")


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed before the acknowledgement")
        data += chunk
    return data


# --- traffic ------------------------------------------------------------------
class Traffic:
    """HTTP GETs through "ui" and bulk transfers to the sink through "sink",
    continuously, in threads whose sockets live in the upstream namespace.

    Outcome of each connection:
      ok       completed (the sink acknowledged exactly the bytes sent; the page came back whole)
      refused  the connection could not be opened (no tunnel listening): nothing sent
      closed   opened, then closed or reset before it completed: the fault was reported
      hung     neither completed nor closed for CONN_TIMEOUT: never reported (a violation)
      bad      a wrong answer: the sink acknowledged another count than was sent, or a
               corrupt page: bytes silently lost (a violation)"""

    OUTCOMES = ("ok", "refused", "closed", "hung", "bad")

    def __init__(self, ns, rate, bulk_workers=2, http_pace=0.02, retry_pace=0.05):
        self.ns = ns
        self.http_pace = http_pace
        self.retry_pace = retry_pace
        self.lock = threading.Lock()
        self.c = {f"{k}_{o}": 0 for k in ("http", "bulk") for o in self.OUTCOMES}
        self.c.update(bytes_sent=0, bytes_acked=0, bytes_in_closed=0, bytes_in_hung=0, bytes_in_bad=0)
        self.problems = []  # descriptions of hung/bad connections
        self.stopping = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.busy = 0
        self.threads = [threading.Thread(target=self._http, daemon=True, name="http")]
        for i in range(bulk_workers):
            self.threads.append(threading.Thread(target=self._bulk, args=(i,), daemon=True, name=f"bulk{i}"))
        self.per_worker_rate = rate / max(1, bulk_workers)

    def start(self):
        for t in self.threads:
            t.start()

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self.c[k] += v

    def snapshot(self):
        with self.lock:
            return dict(self.c)

    def _enter(self):
        """Wait while paused; False when stopping."""
        while not self.running.wait(0.1):
            if self.stopping.is_set():
                return False
        if self.stopping.is_set():
            return False
        with self.lock:
            self.busy += 1
        return True

    def _leave(self):
        with self.lock:
            self.busy -= 1

    def pause(self, timeout=CONN_TIMEOUT + 10):
        """Stop starting connections and wait until none is in flight."""
        self.running.clear()
        L.wait_for("traffic to pause", lambda: self.busy == 0, timeout=timeout)

    def resume(self):
        self.running.set()

    def stop(self, timeout=CONN_TIMEOUT + 10):
        self.stopping.set()
        self.running.set()
        for t in self.threads:
            if t.is_alive():
                t.join(timeout)

    def _problem(self, what):
        with self.lock:
            self.problems.append(f"{time.strftime('%H:%M:%S')} {what}")

    def _http(self):
        while self._enter():
            outcome = "ok"
            try:
                try:
                    s = self.ns.connect(STABLE_IP, UI, CONN_TIMEOUT)
                except OSError:
                    outcome = "refused"
                else:
                    with s:
                        try:
                            s.sendall(REQUEST)
                            read_http(s)
                        except socket.timeout:
                            outcome = "hung"
                            self._problem(f"http: no answer and no close for {CONN_TIMEOUT:.0f} s")
                        except ValueError as e:
                            outcome = "bad"
                            self._problem(f"http: {e}")
                        except OSError:
                            outcome = "closed"
                self.add(**{f"http_{outcome}": 1})
            finally:
                self._leave()
            time.sleep(self.http_pace if outcome == "ok" else self.retry_pace)  # pacing

    def _bulk(self, i):
        rnd = random.Random(i)
        block = bytes(64 * 1024)
        while self._enter():
            outcome = "ok"
            try:
                size = rnd.randint(64 * 1024, 2 * 2**20)
                sent = 0
                try:
                    s = self.ns.connect(STABLE_IP, SINK, CONN_TIMEOUT)
                except OSError:
                    outcome = "refused"
                else:
                    with s:
                        try:
                            t0 = time.monotonic()
                            while sent < size:
                                n = s.send(block[: min(len(block), size - sent)])
                                sent += n
                                self.add(bytes_sent=n)
                                ahead = sent / self.per_worker_rate - (time.monotonic() - t0)
                                if ahead > 0:
                                    time.sleep(ahead)  # rate limit
                            s.shutdown(socket.SHUT_WR)
                            ack = int.from_bytes(recv_exact(s, 8), "big")
                            if ack == sent:
                                self.add(bytes_acked=ack)
                            else:
                                outcome = "bad"
                                self._problem(f"bulk: sent {sent} bytes, the sink acknowledged {ack}")
                        except socket.timeout:
                            outcome = "hung"
                            self._problem(f"bulk: {sent} of {size} bytes sent, no ack and no close for {CONN_TIMEOUT:.0f} s")
                        except OSError:
                            outcome = "closed"
                kw = {f"bulk_{outcome}": 1}
                if outcome in ("closed", "hung", "bad"):
                    kw[f"bytes_in_{outcome}"] = sent
                self.add(**kw)
            finally:
                self._leave()
            if outcome != "ok":
                time.sleep(self.retry_pace)  # pacing


# --- the soak -----------------------------------------------------------------
class Failed(Exception):
    pass


class Soak:
    def __init__(self, args):
        self.args = args
        self.lab = L.Lab(tag="s", client_alive=(1, 2), server_ip=STABLE_IP)
        self.up = Ns(self.lab.up)
        self.ip = shutil.which("ip") or "/usr/sbin/ip"
        self.gateway = L.SERVER_IP  # the current upstream gateway (on up0)
        self.wan = f"{L.WAN_IP}/24"
        self.expected_moves = 0
        self.recoveries = {"kill": [], "flap": [], "renumber": [], "renumber-lan": []}
        self.events_done = 0
        # The lab's router reaches the gateway without naming the device; udhcpc names it.
        L.sh("ip", "-n", self.lab.rtr, "route", "replace", "default", "via", self.gateway, "dev", "wan0")
        hook = f"{self.lab.dir}/hook.sh"
        with open(hook, "w") as f:
            f.write(
                f"""#!/bin/sh
# roadie's [lan] hook in the soak: the cluster node follows the LAN (same offset).
set -e
net=${{ROADIE_NEW_PREFIX%/*}} len=${{ROADIE_NEW_PREFIX#*/}}
base=${{net%.*}}
{self.ip} -n {self.lab.cl} addr flush dev eth0
{self.ip} -n {self.lab.cl} addr add "$base.100/$len" dev eth0
{self.ip} -n {self.lab.cl} route replace default via "$base.1"
echo "$ROADIE_OLD_PREFIX -> $ROADIE_NEW_PREFIX ($ROADIE_REASON)" >> {self.lab.dir}/hook.log
"""
            )
        os.chmod(hook, 0o755)
        self.roadie = self.lab.start_roadie(TUNNELS, keepalive_s=2, lan_extra=f'hook = "{hook}"')
        self.traffic = Traffic(self.up, args.rate)

    # -- roadie --
    def call(self, method, params=None):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(f"{self.lab.dir}/roadie.sock")
            s.sendall(json.dumps({"method": method, "params": params or {}}).encode() + b"\n")
            line = s.makefile("rb").readline()
        reply = json.loads(line)
        if "error" in reply:
            raise Failed(f"{method}: {reply['error']}")
        return reply["result"]

    def status(self):
        return self.call("status")

    def check_alive(self):
        if not L.alive(self.roadie.pid):
            raise Failed(f"roadie exited (status {self.roadie.poll()})")

    # -- probes --
    def probe_ui(self):
        try:
            with self.up.connect(STABLE_IP, UI, 1.0) as s:
                s.sendall(REQUEST)
                read_http(s)
            return True
        except (OSError, ValueError):
            return False

    def probe_sink(self):
        try:
            with self.up.connect(STABLE_IP, SINK, 1.0) as s:
                s.sendall(bytes(4096))
                s.shutdown(socket.SHUT_WR)
                return int.from_bytes(recv_exact(s, 8), "big") == 4096
        except OSError:
            return False

    def serving(self):
        return self.probe_ui() and self.probe_sink()

    def wait(self, what, cond, timeout=EVENT_DEADLINE, step=0.02):
        try:
            return L.wait_for(what, cond, timeout=timeout, step=step)
        except TimeoutError as e:
            self.check_alive()
            raise Failed(str(e)) from None

    def reconnects(self, st=None):
        st = st or self.status()
        return {t["name"]: t["reconnects"] for t in st["tunnels"]}

    def recovered(self, before):
        """Every tunnel is up on a new session (its reconnect count grew) and serves."""
        self.check_alive()
        st = self.status()
        for t in st["tunnels"]:
            if t["state"] != "up" or t["reconnects"] <= before[t["name"]]:
                return False
        return self.serving()

    # -- network changes (as udhcpc's script would make them) --
    def set_gateway(self, gw):
        if gw != self.gateway:
            L.sh("ip", "-n", self.lab.up, "addr", "add", f"{gw}/24", "dev", "up0")
            L.sh("ip", "-n", self.lab.up, "addr", "del", f"{self.gateway}/24", "dev", "up0")
            self.gateway = gw

    def lease(self, addr, gw):
        """deconfig + bound: flush wan0, new address, default route via gw."""
        self.set_gateway(gw)
        L.sh("ip", "-n", self.lab.rtr, "addr", "flush", "dev", "wan0")
        L.sh("ip", "-n", self.lab.rtr, "addr", "add", addr, "dev", "wan0")
        L.sh("ip", "-n", self.lab.rtr, "route", "replace", "default", "via", gw, "dev", "wan0")
        self.wan = addr

    # -- planner checks --
    def settled(self, evaluations_before=None):
        st = self.status()
        if st["lan"]["settling"]:
            return None
        if evaluations_before is not None and st["lan"]["evaluations"] <= evaluations_before:
            return None
        return st

    def check_planner(self, st, where):
        lan = st["lan"]
        if lan["problem"] is not None:
            raise Failed(f"{where}: lan.problem = {lan['problem']!r}")
        if lan["collision"] is not None:
            raise Failed(f"{where}: lan.collision = {lan['collision']!r}")
        if len(lan["history"]) != self.expected_moves:
            raise Failed(
                f"{where}: lan.history has {len(lan['history'])} moves, expected {self.expected_moves}: "
                + json.dumps(lan["history"][-3:])
            )
        lanp = ipaddress.ip_network(lan["prefix"])
        for a in st["wan"][0]["addresses"]:
            if ipaddress.ip_interface(a).network.overlaps(lanp):
                raise Failed(f"{where}: the LAN {lanp} overlaps the uplink address {a}")

    def node_at(self, prefix):
        want = str(ipaddress.ip_network(prefix).network_address + 100)
        out = L.sh("ip", "-n", self.lab.cl, "-4", "-o", "addr", "show", "dev", "eth0")
        return f" {want}/" in out

    # -- events --
    def ev_kill(self):
        self.lab.kill_tree("sshd", signal.SIGKILL)
        self.lab.stop("sshd", sig=signal.SIGKILL)
        self.lab.start_sshd()
        return "sshd killed and restarted"

    def ev_flap(self):
        L.sh("ip", "-n", self.lab.rtr, "link", "set", "wan0", "down")
        self.wait("roadie to see wan0 down", lambda: not self.status()["wan"][0]["up"], timeout=10)
        L.sh("ip", "-n", self.lab.rtr, "link", "set", "wan0", "up")
        # The kernel dropped the default route with the link; udhcpc's renew puts it back.
        self.wait(
            "the default route back",
            lambda: subprocess_ok("ip", "-n", self.lab.rtr, "route", "replace", "default", "via", self.gateway, "dev", "wan0"),
            timeout=10,
        )
        return "wan0 down/up"

    def ev_renumber(self, n, lanp):
        """A lease that does not collide with the LAN: inside 10.66.0.0/24 or elsewhere."""
        cands = []
        if n % 2 == 0:
            cands.append(f"10.66.0.{10 + (n * 7) % 200}/24")
        cands += [f"172.16.{(n * 13) % 250 + 2}.{20 + n % 200}/24", f"10.200.{n % 250}.{30 + n % 200}/24",
                  f"192.168.{(n * 5) % 250 + 10}.40/24", f"10.66.0.{60 + n % 150}/24"]
        for c in cands:
            net = ipaddress.ip_interface(c).network
            if not net.overlaps(lanp) and c != self.wan:
                gw = str(net.network_address + 254)
                self.lease(c, gw)
                return f"lease {c} via {gw}"
        raise Failed(f"no renumbering candidate free of {lanp}")

    def ev_renumber_lan(self, lanp):
        """A lease inside the LAN's current prefix: roadie must move the LAN."""
        addr = f"{lanp.network_address + 57}/{lanp.prefixlen}"
        gw = str(lanp.network_address + 254)
        self.lease(addr, gw)
        return f"lease {addr} via {gw} (into the LAN)"

    def event(self, kind, n, total):
        self.check_alive()
        st = self.status()
        self.check_planner(st, f"before event {self.events_done + 1}")
        before = self.reconnects(st)
        evals = st["lan"]["evaluations"]
        lanp = ipaddress.ip_network(st["lan"]["prefix"])
        c0 = self.traffic.snapshot()
        t0 = time.monotonic()
        if kind == "kill":
            what = self.ev_kill()
        elif kind == "flap":
            what = self.ev_flap()
        elif kind == "renumber":
            what = self.ev_renumber(n, lanp)
        else:
            self.expected_moves += 1
            what = self.ev_renumber_lan(lanp)
            st = self.wait("roadie to move the LAN", lambda: (s := self.status())["lan"]["prefix"] != str(lanp) and s, timeout=10)
            newp = st["lan"]["prefix"]
            self.wait(f"the hook to move the node into {newp}", lambda: self.node_at(newp), timeout=35)
            what += f": LAN {lanp} -> {newp}"
        self.wait(f"both tunnels serving again after {kind}", lambda: self.recovered(before))
        took = time.monotonic() - t0
        self.recoveries[kind].append(took)
        # The planner: settled, and exactly the expected moves.
        st = self.wait("the planner to settle", lambda: self.settled(None if kind == "kill" else evals), timeout=10)
        self.check_planner(st, f"after event {self.events_done + 1} ({kind})")
        if kind == "renumber-lan":
            h = st["lan"]["history"][-1]
            if h["from"] != str(lanp) or h["to"] != st["lan"]["prefix"] or "wan0" not in h["reason"]:
                raise Failed(f"unexpected history entry {h}")
            hook = st["lan"]["hook"]
            if not hook or not hook["ok"]:
                raise Failed(f"hook failed: {hook}")
        elif st["lan"]["prefix"] != str(lanp):
            raise Failed(f"the LAN moved from {lanp} to {st['lan']['prefix']} without a collision")
        # Traffic flows again through both tunnels before the next event.
        if self.traffic.threads[0].is_alive():
            c1 = self.traffic.snapshot()
            self.wait(
                "the background traffic to complete a connection through each tunnel",
                lambda: (c := self.traffic.snapshot())["http_ok"] > c1["http_ok"] and c["bulk_ok"] > c1["bulk_ok"],
                timeout=30,
            )
        self.events_done += 1
        c = self.traffic.snapshot()
        d = {k: c[k] - c0[k] for k in c}
        print(
            f"[{self.events_done:3}/{total}] {kind:<12} {took:6.2f} s  {what}; lan {st['lan']['prefix']}; "
            f"traffic ok {d['http_ok'] + d['bulk_ok']}, refused {d['http_refused'] + d['bulk_refused']}, "
            f"closed {d['http_closed'] + d['bulk_closed']}",
            flush=True,
        )

    def sample(self, label):
        """Pause the traffic, wait until roadie carries nothing, sample /proc."""
        self.traffic.pause()
        self.wait("roadie to close every connection", lambda: all(t["active"] == 0 for t in self.status()["tunnels"]), timeout=30)
        _cpu, rss, hwm, threads, fds = L.proc_stat(self.roadie.pid)
        self.traffic.resume()
        print(f"{label}: RSS {rss} KiB (peak {hwm} KiB), {threads} threads, {fds} open fds", flush=True)
        return {"rss": rss, "hwm": hwm, "threads": threads, "fds": fds}

    def run(self):
        a = self.args
        t_start = time.monotonic()
        self.wait("roadie's forwards", lambda: all(self.lab.forwarded(p) for _, p, _ in TUNNELS), timeout=30)
        self.wait("both tunnels serving", self.serving, timeout=30)
        self.traffic.start()
        # Warm-up: traffic, and one fault of each kind that does not move the LAN.
        print(f"warm-up: {a.warmup:.0f} s of traffic, then one sshd restart and one link flap", flush=True)
        deadline = time.monotonic() + a.warmup
        while time.monotonic() < deadline:
            self.check_alive()
            time.sleep(0.2)
        for kind in ("kill", "flap"):
            self.event(kind, 0, "warm-up")
        self.events_done = 0
        for k in self.recoveries:
            self.recoveries[k].clear()
        warm = self.sample("after warm-up")

        # Interleave the kinds: sshd restarts back to back would only measure the
        # reconnect backoff (1, 2, 4 ... 60 s until a minute of stable uptime);
        # an uplink change between them resets it, by design.
        renums = ["renumber" if i % 2 == 0 else "renumber-lan" for i in range(a.renumbers)]
        plan = []
        for i in range(max(a.kills, a.flaps, len(renums))):
            if i < a.kills:
                plan.append("kill")
            if i < a.flaps:
                plan.append("flap")
            if i < len(renums):
                plan.append(renums[i])
        t_events = time.monotonic()
        for n, kind in enumerate(plan):
            self.event(kind, n, len(plan))
        events_s = time.monotonic() - t_events

        end = self.sample("at the end")
        self.traffic.stop()
        c = self.traffic.snapshot()
        st = self.status()
        self.check_planner(st, "at the end")
        self.check_alive()

        failures = []
        if end["fds"] > warm["fds"] + FD_SLACK:
            failures.append(f"open fds grew from {warm['fds']} to {end['fds']} (bound +{FD_SLACK})")
        if end["threads"] > warm["threads"] + THREAD_SLACK:
            failures.append(f"threads grew from {warm['threads']} to {end['threads']} (bound +{THREAD_SLACK})")
        if end["rss"] > warm["rss"] * (1 + RSS_SLACK):
            failures.append(f"RSS grew from {warm['rss']} KiB to {end['rss']} KiB (bound +{RSS_SLACK:.0%})")
        if c["bytes_sent"] != c["bytes_acked"] + c["bytes_in_closed"] + c["bytes_in_hung"] + c["bytes_in_bad"]:
            failures.append(f"byte accounting does not add up: {c}")
        for k in ("http_hung", "bulk_hung", "http_bad", "bulk_bad"):
            if c[k]:
                failures.append(f"{c[k]} {k.split('_')[0]} connection(s) {k.split('_')[1]}")
        failures += self.traffic.problems[:20]
        failures += self.check_state(st)
        with open(f"{self.lab.dir}/roadie.log", errors="replace") as f:
            refused_by_roadie = sum("refused a forwarded connection" in l for l in f)

        # Totals.
        conns = {k: sum(c[f"{k}_{o}"] for o in Traffic.OUTCOMES) for k in ("http", "bulk")}
        tun = {t["name"]: t for t in st["tunnels"]}
        mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
        print()
        print(f"roadie soak: {self.events_done} events survived in {events_s:.0f} s "
              f"({a.kills} sshd kills, {a.flaps} link flaps, {len(renums)} renumberings, "
              f"{renums.count('renumber-lan')} into the LAN); whole run {time.monotonic() - t_start:.0f} s")
        print(f"  bulk to the sink: {mib(c['bytes_sent'])} sent = {mib(c['bytes_acked'])} acknowledged "
              f"+ {mib(c['bytes_in_closed'])} in connections reported closed"
              f" + {mib(c['bytes_in_hung'])} hung + {mib(c['bytes_in_bad'])} wrongly counted")
        for k in ("bulk", "http"):
            print(f"  {k} connections: {conns[k]}: " + ", ".join(f"{c[f'{k}_{o}']} {o}" for o in Traffic.OUTCOMES))
        print("  roadie's counters: " + "; ".join(
            f"{n}: {t['connections']} connections, {mib(t['bytes_in'])} in, {mib(t['bytes_out'])} out, "
            f"{t['reconnects']} reconnects" for n, t in tun.items()))
        print(f"  connections roadie refused as 'no forward was requested' (log): {refused_by_roadie}")
        print(f"  LAN moves: {len(st['lan']['history'])} (expected {self.expected_moves}), now {st['lan']['prefix']}")
        print("  recovery (s)     events   median      max")
        for kind, v in self.recoveries.items():
            if v:
                print(f"    {kind:<14} {len(v):6}   {statistics.median(v):6.2f}   {max(v):6.2f}")
        print(f"  roadie: RSS {warm['rss']} -> {end['rss']} KiB, threads {warm['threads']} -> {end['threads']}, "
              f"fds {warm['fds']} -> {end['fds']}, peak RSS {end['hwm']} KiB")
        if failures:
            raise Failed("\n  ".join(["checks failed:"] + failures))
        print("soak: all checks passed")

    def check_state(self, st):
        path = f"{self.lab.dir}/state.toml"
        try:
            with open(path, "rb") as f:
                state = tomllib.load(f)
        except FileNotFoundError:
            return [] if self.expected_moves == 0 else [f"no state file {path}"]
        except tomllib.TOMLDecodeError as e:
            return [f"state file is not valid TOML: {e}"]
        out = []
        prefix = state.get("prefix", HOME)
        if prefix != st["lan"]["prefix"]:
            out.append(f"state file prefix {prefix}, roadie uses {st['lan']['prefix']}")
        if len(state.get("history", [])) != min(50, self.expected_moves):
            out.append(f"state file has {len(state.get('history', []))} moves, expected {self.expected_moves}")
        if "seed" not in state:
            out.append("state file has no seed")
        return out

    def log_tail(self, n=60):
        for name in ("roadie", "sshd"):
            try:
                with open(f"{self.lab.dir}/{name}.log", errors="replace") as f:
                    lines = f.readlines()
            except FileNotFoundError:
                continue
            print(f"--- last {min(n, len(lines))} lines of {name}'s log ---", file=sys.stderr)
            sys.stderr.writelines(lines[-n:])

    def close(self):
        self.traffic.stop(timeout=2)
        if os.environ.get("SOAK_KEEP_LOG"):
            shutil.copy(f"{self.lab.dir}/roadie.log", os.environ["SOAK_KEEP_LOG"])
        if "sshd" in self.lab.procs:
            self.lab.kill_tree("sshd", signal.SIGKILL)
        self.lab.close()
        self.up.close()


def subprocess_ok(*argv):
    try:
        L.sh(*argv)
        return True
    except RuntimeError:
        return False


def main():
    ap = argparse.ArgumentParser(description="roadie fault soak in a namespace lab")
    ap.add_argument("--short", action="store_true", help="the CI size: 5 kills, 5 flaps, 4 renumberings")
    ap.add_argument("--kills", type=int)
    ap.add_argument("--flaps", type=int)
    ap.add_argument("--renumbers", type=int, help="half of them (rounded down) into the LAN prefix")
    ap.add_argument("--rate", type=float, default=8 * 2**20, help="bulk bytes/s (default 8 MiB/s)")
    ap.add_argument("--warmup", type=float)
    a = ap.parse_args()
    short = (5, 5, 4, 5.0)
    full = (50, 50, 20, 15.0)
    d = short if a.short else full
    a.kills = d[0] if a.kills is None else a.kills
    a.flaps = d[1] if a.flaps is None else a.flaps
    a.renumbers = d[2] if a.renumbers is None else a.renumbers
    a.warmup = d[3] if a.warmup is None else a.warmup
    if os.geteuid() != 0:
        sys.exit("soak: needs root (network namespaces)")
    soak = None
    code = 0
    try:
        soak = Soak(a)
        soak.run()
    except (Failed, TimeoutError, RuntimeError) as e:
        print(f"\nsoak FAILED: {e}", file=sys.stderr)
        if soak:
            soak.log_tail()
        code = 1
    finally:
        if soak:
            soak.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
