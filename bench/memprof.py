"""Where roadie's memory goes: idle with 3 tunnels, then while 200 connections
move data (the `memory` part of bench.py), from /proc/PID/smaps by mapping.

    sudo python3 bench/memprof.py                      # ROADIE_BIN as in lab.py
    sudo python3 bench/memprof.py heaptrack -o FILE    # run roadie under a wrapper
                                                       # (a heap profiler), argv prefix

Prints RSS per kind of mapping (the binary's pages, heap, anonymous mappings,
stacks) at idle and at the largest sample taken every 20 ms during the flood.
"""

import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402
import lab as L  # noqa: E402


def smaps(pid):
    """{kind: Rss KiB}; kind: the mapping's name, "anon" for unnamed mappings."""
    out, kind = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not line[0].isupper() or ":" not in head[0]:  # a mapping's first line
                name = head[5] if len(head) > 5 else "anon"
                kind = os.path.basename(name) if name.startswith("/") else name
            elif head[0] == "Rss:":
                out[kind] = out.get(kind, 0) + int(head[1])
    return out


def show(what, parts):
    total = sum(parts.values())
    body = ", ".join(f"{k} {v}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v)
    print(f"{what}: {total} KiB = {body}", flush=True)


def main():
    wrap = sys.argv[1:]
    lab = L.Lab(tag="p")
    try:
        cfg = lab.roadie_config(B.TUNNELS)
        p = lab.start("roadie", lab.rtr, [*wrap, L.ROADIE_BIN, "-c", cfg, "daemon"])
        L.wait_for("forwards", lambda: all(lab.forwarded(t[1]) for t in B.TUNNELS), timeout=30)
        pid = p.pid
        if wrap:  # the wrapper's child runs roadie
            pid = next(d for d in L.descendants(p.pid) if os.path.basename(os.readlink(f"/proc/{d}/exe")) == "roadie")
        L.wait_for("serving", lambda: B.serving(lab))
        time.sleep(0.5)
        show("idle", smaps(pid))
        peak, done = {}, threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                try:
                    s = smaps(pid)
                except OSError:
                    return
                if sum(s.values()) > sum(peak.values()):
                    peak = s
                time.sleep(0.02)

        t = threading.Thread(target=sample)
        t.start()
        r = json.loads(lab.client("flood", L.SERVER_IP, 9000, 200, 4 * 2**20))
        done.set()
        t.join()
        print(f"flood: {r}", flush=True)
        show("largest sample during the flood", peak)
        show("after the flood", smaps(pid))
        print(f"VmHWM {L.proc_stat(pid)[2]} KiB", flush=True)
        os.kill(pid, signal.SIGTERM)  # roadie only: a wrapper writes its results when it exits
        p.wait(60)
    finally:
        lab.close()


if __name__ == "__main__":
    main()
