"""Benchmark (not a test) of `[lan] on_collision = "absorb"`: from a colliding
lease going in (examples/udhcpc-absorb.script, as udhcpc runs it) to a
cluster node's first TCP connection through the router to a host beyond the
hotel, and the router's own; and the translation's per-packet cost
(iperf3 from the node through the router, absorbed hotel vs a hotel on
another prefix). Writes bench/absorb.md. Run by scripts/bench-absorb.

    hotel (192.168.1.1/24 = the router's LAN address; 198.18.0.1 beyond it)
      up0 <-> wan0   rtr (roadie, NAT)   lan0 192.168.1.1/24 <-> eth0 192.168.1.100/24  cl
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import ROADIE_BIN, ROOT, sh, wait_for  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "10"))
IPERF_S = int(os.environ.get("IPERF_S", "5"))
ID = f"rab{os.getpid()}"
UP, RTR, CL = f"{ID}-up", f"{ID}-rtr", f"{ID}-cl"
FAR = "198.18.0.1"
PIDS = []
TMP = tempfile.mkdtemp(prefix="roadie-bench-absorb.")
SCRIPT = os.path.join(ROOT, "examples", "udhcpc-absorb.script")
POLLER = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
while True:
    s = socket.socket()
    s.settimeout(0.005)
    try:
        s.connect((host, port))
        print(time.monotonic(), flush=True)
        break
    except OSError:
        time.sleep(0.001)
    finally:
        s.close()
"""


def ns(name, *args, check=True):
    return sh("ip", "netns", "exec", name, *args, check=check)


def spawn(name, *args, log="/dev/null"):
    p = subprocess.Popen(["ip", "netns", "exec", name, *args],
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    PIDS.append(p)
    return p


def cleanup():
    for p in PIDS:
        if p.poll() is None:
            p.terminate()
    for p in PIDS:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    for n in (UP, RTR, CL):
        sh("ip", "netns", "del", n, check=False)


def lease(ip, router):
    """What udhcpc does on `bound`: the event script with its variables."""
    env = dict(os.environ, interface="wan0", ip=ip, mask="24", router=router,
               ROADIE=ROADIE_BIN, ROADIE_SOCKET=f"{TMP}/roadie.sock")
    subprocess.run(["ip", "netns", "exec", RTR, "/bin/sh", SCRIPT, "bound"], env=env,
                   check=True, capture_output=True)


def release():
    env = dict(os.environ, interface="wan0", ROADIE=ROADIE_BIN, ROADIE_SOCKET=f"{TMP}/roadie.sock")
    subprocess.run(["ip", "netns", "exec", RTR, "/bin/sh", SCRIPT, "deconfig"], env=env,
                   check=True, capture_output=True)


def hotel(prefix_addr):
    sh("ip", "-n", UP, "addr", "flush", "dev", "up0")
    sh("ip", "-n", UP, "addr", "add", prefix_addr, "dev", "up0")


def first_connect(name):
    """A poller in `name` that prints when its first connection succeeds."""
    p = subprocess.Popen(["ip", "netns", "exec", name, "python3", "-c", POLLER, FAR, "8000"],
                         stdout=subprocess.PIPE, text=True)
    PIDS.append(p)
    assert p.stdout.readline().strip() == "ready"
    return p


def iperf():
    out = ns(CL, "iperf3", "-c", FAR, "-t", str(IPERF_S), "-J")
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def main():
    for n in (UP, RTR, CL):
        sh("ip", "netns", "add", n)
        sh("ip", "-n", n, "link", "set", "lo", "up")
    sh("ip", "link", "add", "up0", "netns", UP, "type", "veth", "peer", "name", "wan0", "netns", RTR)
    sh("ip", "link", "add", "lan0", "netns", RTR, "type", "veth", "peer", "name", "eth0", "netns", CL)
    for n, d in ((UP, "up0"), (RTR, "wan0"), (RTR, "lan0"), (CL, "eth0")):
        sh("ip", "-n", n, "link", "set", d, "up")
    sh("ip", "-n", UP, "addr", "add", f"{FAR}/32", "dev", "lo")
    sh("ip", "-n", RTR, "addr", "add", "192.168.1.1/24", "dev", "lan0")
    sh("ip", "-n", CL, "addr", "add", "192.168.1.100/24", "dev", "eth0")
    sh("ip", "-n", CL, "route", "add", "default", "via", "192.168.1.1")
    ns(RTR, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
    ns(RTR, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; };"
                   " add rule ip nat post oifname \"wan0\" masquerade")
    with open(f"{TMP}/roadie.toml", "w") as f:
        f.write(f'[daemon]\nstate = "{TMP}/state.toml"\nsocket = "{TMP}/roadie.sock"\nlog_level = "warn"\n'
                '[wan]\ninterfaces = ["wan0"]\n'
                '[lan]\ninterface = "lan0"\naddress = "192.168.1.1/24"\non_collision = "absorb"\n')
    spawn(RTR, ROADIE_BIN, "-c", f"{TMP}/roadie.toml", "daemon", log=f"{TMP}/roadie.log")
    wait_for("roadie's socket", lambda: os.path.exists(f"{TMP}/roadie.sock"))
    spawn(UP, "python3", "-m", "http.server", "8000", "--bind", FAR)
    spawn(UP, "iperf3", "-s", "-B", FAR)
    wait_for("the servers", lambda: "8000" in ns(UP, "ss", "-ltn") and "5201" in ns(UP, "ss", "-ltn"))

    node_ms, router_ms = [], []
    for i in range(ROUNDS):
        release()
        hotel("192.168.1.1/24")
        node, rtr = first_connect(CL), first_connect(RTR)
        t0 = time.monotonic()
        lease(f"192.168.1.{50 + i}", "192.168.1.1")
        for p, into in ((node, node_ms), (rtr, router_ms)):
            line = p.stdout.readline().strip()
            into.append((float(line) - t0) * 1000)
            p.wait()
    # Throughput: absorbed vs a hotel on another prefix, alternating.
    absorbed, plain = [], []
    for _ in range(3):
        release()
        hotel("192.168.1.1/24")
        lease("192.168.1.57", "192.168.1.1")
        absorbed.append(iperf())
        release()
        hotel("10.66.0.1/24")
        lease("10.66.0.57", "10.66.0.1")
        plain.append(iperf())

    def row(name, xs):
        return f"| {name} | {statistics.median(xs):.1f} ms | {min(xs):.1f} ms | {max(xs):.1f} ms |"

    ratio = statistics.median(absorbed) / statistics.median(plain)
    text = "\n".join([
        f"# Absorbing a colliding uplink ({ROUNDS} leases, release build)\n",
        "From the colliding lease going in (the udhcpc event script asking roadie and installing",
        "the alias values) to the first TCP connection to a host beyond the hotel:\n",
        "| from | median | best | worst |", "|---|---|---|---|",
        row("a cluster node (through the router's NAT)", node_ms),
        row("the router itself", router_ms),
        "",
        f"Throughput, iperf3 from the node through the router, {IPERF_S} s, 3 rounds each, alternating",
        "(namespaces on one x86_64 machine: the cost per packet shows as a ratio, not as router figures):\n",
        "| hotel | Gbit/s (median) | rounds |", "|---|---|---|",
        f"| on the cluster's prefix, absorbed | {statistics.median(absorbed):.2f} | "
        + ", ".join(f"{x:.2f}" for x in absorbed) + " |",
        f"| on another prefix (no translation) | {statistics.median(plain):.2f} | "
        + ", ".join(f"{x:.2f}" for x in plain) + " |",
        f"\nabsorbed ÷ plain: {ratio:.2f}",
    ])
    with open(os.path.join(ROOT, "bench", "absorb.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
