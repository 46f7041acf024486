"""roadie on the router's own CPU: its cross build against Debian's `ssh` and
`dbclient` for the same architecture, all three under qemu-user, in the
namespace lab of bench/lab.py (same sshd, one cipher allowed per run).

Run through `scripts/bench router` (it prepares everything and sets the
environment below). What is measured, per cipher and direction:
  - guest instructions: the emulated program's own, counted by
    bench/qemu-plugin/insns.c (qemu's time is not a fair figure: qemu 7.2
    emulates MIPS unaligned stores byte by byte);
  - mmap/munmap calls: the guest's own syscalls, counted by the same plugin;
  - minor page faults of the qemu process (guest memory is host memory, so
    the guest's first touches of fresh pages are among them; qemu's own
    faults are too: the figure is an upper bound for the guest's);
  - throughput under qemu (says nothing about the router; shown to tell the
    runs apart).
Memory: resident pages inside the emulated address space (qemu runs with
-B, so that range is known), idle with 3 tunnels, the peak while 200
connections move data, and 25 s after they closed; and of those, the
anonymous pages (heap, stacks, written data): what the router cannot take
back under memory pressure.
The rest is file pages of the code that ran, in the program and its
libraries (the kernel maps up to 64 KiB around each first touch): for
roadie's static binary that came to all 2.2 MiB of its code in every run
until the MIPS builds put the code run at idle first (layout() below,
scripts/zig/hot-text.ld): about 1.4 MiB since.

Environment: ROUTER_ARCH (mipsel), ROUTER_SYSROOT, ROUTER_PLUGIN, ROADIE_BIN
(the cross build), ROUNDS (3), ROUTER_MIB (MiB per transfer, 128),
ROUTER_PARTS ("cpu memory"), ROUTER_SYMS (a file: per-symbol profile of
roadie, one server → target transfer per cipher, no table), ROUTER_LAYOUT
(a file: the linker script of the code roadie runs until it serves, for
scripts/cross-build; ROADIE_BIN must have symbols: cross-build's roadie.syms).
"""

import json
import os
import re
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as L  # noqa: E402

ARCH = os.environ.get("ROUTER_ARCH", "mipsel")
# Per Debian architecture: qemu, the Rust target, syscall numbers of the
# mmap family (Linux's per-ABI tables: MIPS o32 starts at 4000).
# The CPU: qemu's default for mipsel (Debian's mipsel is hard-float, and
# -cpu 24KEc kills it with SIGILL); for ARM the routers' cores, without
# which qemu offers ARMv8's AES and PMULL instructions that OpenSSL then uses
# (IPQ40xx's Cortex-A7 has none).
ARCHES = {
    "mipsel": ("qemu-mipsel", None, "mipsel-unknown-linux-musl",
               {"mmap": (4090, 4210), "munmap": (4091,), "mremap": (4167,)}),
    "armhf": ("qemu-arm", "cortex-a7", "armv7-unknown-linux-musleabihf",
              {"mmap": (192,), "munmap": (91,), "mremap": (163,)}),
    "arm64": ("qemu-aarch64", "cortex-a53", "aarch64-unknown-linux-musl",
              {"mmap": (222,), "munmap": (215,), "mremap": (216,)}),
}
QEMU, CPU, TRIPLE, SYSCALLS = ARCHES[ARCH]
SYSROOT = os.environ.get("ROUTER_SYSROOT", "")
PLUGIN = os.environ.get("ROUTER_PLUGIN", "")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
MIB = int(os.environ.get("ROUTER_MIB", "128"))
# Guest addresses start here in the host (qemu -B): an address range nothing
# else on an x86_64 Linux host uses, so the guest's pages can be told apart.
GUEST_BASE = 0x100000000000
GUEST_SPAN = 1 << 40
# (cipher, MAC sshd allows or None for an AEAD cipher, dbclient has it)
# Every cipher roadie offers (src/tunnel/session.rs, cipher_order); Debian's
# dbclient has chacha20-poly1305, aes128-ctr and aes256-ctr.
CIPHERS = [
    ("chacha20-poly1305@openssh.com", None, True),
    ("aes128-gcm@openssh.com", None, False),
    ("aes256-gcm@openssh.com", None, False),
    ("aes128-ctr", "hmac-sha2-256", True),
    ("aes192-ctr", "hmac-sha2-256", False),
    ("aes256-ctr", "hmac-sha2-256", True),
]
TUNNELS = [("ui", 8080, 8080), ("bulk", 5201, 5201), ("sink", 9000, 9000)]
IMPLS = ["roadie", "ssh", "dbclient"]
# A/B runs of roadie builds: ROUTER_ONLY=roadie measures only those clients
# and prints, without touching bench/results.md; ROUTER_CIPHERS picks ciphers
# by their short name (e.g. "aes128-ctr chacha20-poly1305").
ONLY = os.environ.get("ROUTER_ONLY", "").split() or IMPLS
if os.environ.get("ROUTER_CIPHERS"):
    CIPHERS = [c for c in CIPHERS if c[0].split("@")[0] in os.environ["ROUTER_CIPHERS"].split()]
HEADER, SLOTS, NSYS = 8, 64, 8192
# Seconds after the 200 connections before memory is read again (roadie
# gives kept packet buffers back after 10-20 s without traffic).
AFTER_S = 25
# arm64: roadie's resident memory did not move with 200 connections
# (1.68 -> 1.73 MiB, ssh's 7.8 -> 14.4): on that 64-bit guest its heap lies
# outside the range guest_rss reads, so memory is left out there.
MEMORY_READABLE = ARCH != "arm64"


def qemu(counters, prog, *args, syms=None):
    plugin = f"{PLUGIN},out={counters}" + (f",syms={syms}" if syms else "")
    cpu = ["-cpu", CPU] if CPU else []
    return [QEMU, *cpu, "-B", hex(GUEST_BASE), "-plugin", plugin, "-L", SYSROOT, prog, *args]


def start(lab, impl, cipher, mac, syms=None):
    """Start one tunnel client under qemu in the router namespace; returns
    (Popen, counters file) once sshd listens on every forwarded port."""
    counters = f"{lab.dir}/{impl}.counters"
    if impl == "roadie":
        cfg = lab.roadie_config(TUNNELS)
        argv = qemu(counters, L.ROADIE_BIN, "-c", cfg, "daemon", syms=syms)
    elif impl == "ssh":
        argv = qemu(
            counters, f"{SYSROOT}/usr/bin/ssh", "-N", "-i", f"{lab.dir}/id_ed25519",
            "-o", f"UserKnownHostsFile={lab.dir}/known_hosts_ssh", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=5", "-o", "BatchMode=yes",
            *(["-c", cipher] if cipher else []), *(["-m", mac] if mac else []),
            *[a for _, r, t in TUNNELS for a in ("-R", f"0.0.0.0:{r}:{L.NODE_IP}:{t}")],
            f"root@{lab.server_ip}",
        )
    else:
        key = f"{lab.dir}/id_dropbear"
        if not os.path.exists(key):
            L.sh(QEMU, "-L", SYSROOT, f"{SYSROOT}/usr/lib/dropbear/dropbearconvert",
                 "openssh", "dropbear", f"{lab.dir}/id_ed25519", key)
        # -y -y: accept the host key without asking or storing it.
        argv = qemu(
            counters, f"{SYSROOT}/usr/bin/dbclient", "-N", "-y", "-y", "-i", key, "-K", "5",
            *(["-c", cipher] if cipher else []), *(["-m", mac] if mac else []),
            *[a for _, r, t in TUNNELS for a in ("-R", f"0.0.0.0:{r}:{L.NODE_IP}:{t}")],
            f"root@{lab.server_ip}",
        )
    p = lab.start(impl, lab.rtr, argv)
    L.wait_for(f"{impl}'s forwards", lambda: all(lab.forwarded(t[1]) for t in TUNNELS) or not L.alive(p.pid), timeout=60)
    if not L.alive(p.pid):
        with open(f"{lab.dir}/{impl}.log", errors="replace") as f:
            raise RuntimeError(f"{impl} exited: {f.read()[-2000:]}")
    return p, counters


def snapshot(counters, pid):
    """(guest instructions, guest mmap-family calls, qemu minor faults)."""
    with open(counters, "rb") as f:
        data = f.read()
    if data[:8] != b"RDINSNS1":
        raise RuntimeError(f"{counters}: not the plugin's counters file")
    w = struct.unpack(f"<{len(data) // 8}Q", data)
    insns = sum(w[HEADER : HEADER + SLOTS])
    calls = w[HEADER + SLOTS : HEADER + SLOTS + NSYS]
    mm = {k: sum(calls[n] for n in nums) for k, nums in SYSCALLS.items()}
    with open(f"/proc/{pid}/stat") as f:
        minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    return insns, mm["mmap"] + mm["munmap"] + mm["mremap"], minflt


def iperf(lab, reverse):
    bps, nbytes = L.iperf3(lab.up, ["-n", f"{MIB}M"], reverse)
    return bps / 1e6, nbytes


def sshd_extra(mac):
    # No compression: Debian's sshd allows it after login and Debian's
    # dbclient then compresses iperf3's incompressible data (5 times the
    # instructions); OpenWrt builds Dropbear without zlib, and neither ssh
    # nor roadie asks for it.
    return "Compression no\n" + (f"MACs {mac}\n" if mac else "")


def impls_for(has_dbclient):
    return [i for i in IMPLS if (i != "dbclient" or has_dbclient) and i in ONLY]


def cpu():
    """{(cipher, direction): {impl: {metric: median}}}"""
    out = {}
    for cipher, mac, has_db in CIPHERS:
        short = cipher.split("@")[0] + (f" + {mac}" if mac else "")
        print(f"router cpu ({ARCH}), {short}", flush=True)
        lab = L.Lab(tag="c", cipher=cipher, sshd_extra=sshd_extra(mac))
        try:
            lab.iperf = lab.start("iperf", lab.cl, ["iperf3", "-s", "-p", "5201"])
            L.wait_for("iperf3 server", lambda: L.listening(lab.iperf.pid, 5201))
            runs = {d: {i: [] for i in impls_for(has_db)} for d in ("server → target", "target → server")}
            for _ in range(ROUNDS):
                for impl in impls_for(has_db):
                    p, counters = start(lab, impl, cipher, mac)
                    s0 = snapshot(counters, p.pid)
                    for d, reverse in (("server → target", False), ("target → server", True)):
                        (mbit, nbytes), peak = peak_during(p.pid, lambda: iperf(lab, reverse))
                        s1 = snapshot(counters, p.pid)
                        gib = nbytes / 2**30
                        runs[d][impl].append(
                            {"ginsns": (s1[0] - s0[0]) / gib / 1e9, "mmaps": (s1[1] - s0[1]) / gib,
                             "faults": (s1[2] - s0[2]) / gib, "mbit": mbit, "anon": peak[1] / 1024}
                        )
                        r = runs[d][impl][-1]
                        print(f"  {impl:8} {d}: {r['ginsns']:.1f} G insns/GiB, {r['mmaps']:.0f} mmap/munmap/GiB, "
                              f"{r['faults']:.0f} faults/GiB, {mbit:.0f} Mbit/s, "
                              f"peak {r['anon']:.2f} MiB anonymous", flush=True)
                        s0 = s1
                    lab.stop(impl)
            for d, per in runs.items():
                out[(short, d)] = {i: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for i, rs in per.items()}
        finally:
            lab.close()
    return out


def guest_rss(pid):
    """(KiB resident, KiB of it anonymous) inside the emulated address space
    of a qemu process."""
    rss, anon, inside = 0, 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-[0-9a-f]+ ", line)
            if m:
                inside = GUEST_BASE <= int(m.group(1), 16) < GUEST_BASE + GUEST_SPAN
            elif inside and line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif inside and line.startswith("Anonymous:"):
                anon += int(line.split()[1])
    return rss, anon


def peak_during(pid, fn):
    """(fn(), [KiB resident, KiB anonymous] at their largest while fn ran,
    sampled every 50 ms inside the guest's address space)."""
    peak, done = list(guest_rss(pid)), threading.Event()

    def sample():
        while not done.is_set():
            try:
                now = guest_rss(pid)
            except FileNotFoundError:
                return
            peak[:] = [max(a, b) for a, b in zip(peak, now)]
            done.wait(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        return fn(), peak
    finally:
        done.set()
        t.join()


def memory():
    """{impl: {when: (MiB resident, MiB of it anonymous)}} for `when` in
    idle, peak and after, medians of ROUNDS: each client's own cipher
    choice. The peaks are sampled (every 50 ms), so they vary more."""
    print(f"router memory ({ARCH})", flush=True)
    runs = {i: [] for i in IMPLS if i in ONLY}
    lab = L.Lab(tag="m", sshd_extra=sshd_extra(None))
    try:
        for _ in range(ROUNDS):
            for impl in runs:
                runs[impl].append(memory_once(lab, impl))
    finally:
        lab.close()
    return {i: {w: tuple(statistics.median(r[w][k] for r in rs) for k in range(2)) for w in rs[0]}
            for i, rs in runs.items()}


def memory_once(lab, impl):
    p, _ = start(lab, impl, None, None)
    L.wait_for("serving", lambda: serving(lab), timeout=30)
    idle = guest_rss(p.pid)
    # 200 connections at once; less data each than bench.py's flood (qemu
    # is slow), still all open and moving together.
    r, peak = peak_during(p.pid, lambda: json.loads(lab.client("flood", L.SERVER_IP, 9000, 200, 256 * 1024)))
    assert r["failed"] == 0, (impl, r)
    # What stays once the connections are gone (a fixed wait: this measures
    # memory some time after, as a router owner would see it).
    time.sleep(AFTER_S)
    after = guest_rss(p.pid)
    print(f"  {impl}: idle {idle[0] / 1024:.2f} MiB ({idle[1] / 1024:.2f} anonymous), "
          f"peak {peak[0] / 1024:.2f} MiB ({peak[1] / 1024:.2f} anonymous), "
          f"{AFTER_S} s after {after[0] / 1024:.2f} MiB ({after[1] / 1024:.2f} anonymous)", flush=True)
    lab.stop(impl)
    return {w: (v[0] / 1024, v[1] / 1024) for w, v in (("idle", idle), ("peak", peak), ("after", after))}


def serving(lab):
    try:
        lab.client("get", L.SERVER_IP, 8080, 0.5)
        return True
    except RuntimeError:
        return False


def stop_for_syms(lab, syms):
    """Stops roadie (SIGTERM: it exits, and the plugin writes `syms` then);
    returns that file's (instructions, symbol) rows."""
    lab.stop("roadie")
    L.wait_for("the symbol file", lambda: os.path.exists(syms))
    with open(syms) as f:
        return [(int(a), b.strip()) for a, b in (x.split("\t", 1) for x in f)]


def profile(path):
    """Per-symbol instructions of roadie (a build with symbols), one
    server → target transfer per cipher; the top 25 per cipher to `path`."""
    lines = [f"# roadie on {ARCH}: guest instructions by function", "",
             f"`ROUTER_SYMS=... scripts/bench router`: {MIB} MiB server → target per cipher, "
             "instructions attributed to the symbol of each translation block's first instruction.", ""]
    for cipher, mac, _ in CIPHERS:
        lab = L.Lab(tag="p", cipher=cipher, sshd_extra=sshd_extra(mac))
        syms = f"{lab.dir}/syms.txt"
        try:
            lab.iperf = lab.start("iperf", lab.cl, ["iperf3", "-s", "-p", "5201"])
            L.wait_for("iperf3 server", lambda: L.listening(lab.iperf.pid, 5201))
            p, _ = start(lab, "roadie", cipher, mac, syms=syms)
            iperf(lab, False)
            rows = stop_for_syms(lab, syms)
            names = subprocess.run(["c++filt", "-s", "rust"], input="\n".join(n for _, n in rows),
                                   capture_output=True, text=True, check=True).stdout.splitlines()
            rows = [(n, name) for (n, _), name in zip(rows, names)]
        finally:
            lab.close()
        total = sum(n for n, _ in rows)
        lines += [f"## {cipher}{' + ' + mac if mac else ''}: {total / 1e9:.2f} G instructions", "",
                  "| share | G insns | symbol |", "|---|---|---|"]
        lines += [f"| {100 * n / total:.1f} % | {n / 1e9:.2f} | `{s[:120]}` |" for n, s in rows[:25]]
        lines.append("")
        print("\n".join(lines[-28:]), flush=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))


# Code a symbol's name does not place: the C library (musl's C, one
# function per object, all in `.text`; Zig's own libc and compiler-rt, whose
# section names are not the names the plugin sees), the startup object and
# Poly1305's MIPS assembly (crates/openssh-chacha). All that is linked of
# them goes first: about 90 KB.
HOT_ARCHIVES = ["*crt1.o", "*libc.a:*", "*libzigc.a:*", "*libcompiler_rt.a:*", "*libopenssh_chacha_mips32.a:*"]


def hot_patterns(names):
    """Input-section patterns for the functions `names` (symbols as the
    plugin saw them run): each function's section, with the parts that change
    between builds of the same code left open: legacy mangling's hash (one
    pattern serves every instance of a generic function), v0's crate
    disambiguators; `.text*.` also takes LLVM's `.text.unlikely.` (cold
    functions)."""
    out = set()
    for n in names:
        if n == "?":  # the plugin's name for code outside every symbol
            continue
        m = re.fullmatch(r"(_ZN.*)17h[0-9a-f]{16}E(\.[0-9]+)?", n)  # .N: LTO's copies of a local
        if m:
            n = m.group(1) + "17h*"
        elif n.startswith("_R"):
            n = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", n)
        out.add(".text*." + n)
    return sorted(out)


def layout(path):
    """Writes to `path` the linker script that puts first, in `.text.hot`,
    the code roadie runs from its start until it serves (3 tunnels up, one
    request through them) and at its exit, started afresh and again with the
    state the first run left: from the plugin's per-symbol counts, run on
    cross-build's roadie.syms (the same link, with symbols). Why: at idle the
    kernel had every 64 KiB window of the code mapped, about half of it run;
    scripts/cross-build links the MIPS builds with the script."""
    lab = L.Lab(tag="l", sshd_extra=sshd_extra(None))
    names = set()
    try:
        # Twice: the second start finds the state file and the server's host
        # key the first left, as in memory()'s later rounds.
        for run in range(2):
            syms = f"{lab.dir}/syms{run}.txt"
            start(lab, "roadie", None, None, syms=syms)
            L.wait_for("serving", lambda: serving(lab), timeout=30)
            names |= {n for _, n in stop_for_syms(lab, syms)}
    finally:
        lab.close()
    if sum(n.startswith(("_ZN", "_R")) for n in names) < 100:
        sys.exit(f"router.py: {L.ROADIE_BIN} has no Rust symbols: give it cross-build's roadie.syms")
    pats = hot_patterns(names)
    header = f"""/* Generated: sudo ROUTER_LAYOUT=scripts/zig/hot-text.ld ROADIE_BIN=<roadie.syms> scripts/bench router
   (bench/router.py, layout()), from the {len(names)} functions roadie ran on {ARCH} from its start
   until it served and at its exit, afresh and again with the state it left. scripts/cross-build
   links the MIPS builds with it: that code first, so that at idle the kernel maps its 64 KiB
   windows of the code, not all of them. A name that matches nothing costs nothing;
   scripts/test-cross checks that the script still matches most of that code. */
"""
    with open(path, "w") as f:
        f.write(header + "SECTIONS {\n  .text.hot : {\n")
        f.write("".join(f"    {a}(.text .text.*)\n" for a in HOT_ARCHIVES))
        f.write("    *(\n" + "".join(f"      {p}\n" for p in pats) + "    )\n  }\n} INSERT BEFORE .text;\n")
    print(f"router.py: {path}: {len(pats)} patterns from {len(names)} functions", flush=True)


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}g}"


def fmt_k(v):
    """Counts: 74 k, 1.6 k, 310."""
    if v is None:
        return "–"
    if v >= 1e5:
        return f"{v / 1e3:.0f} k"
    return f"{v / 1e3:.2g} k" if v >= 1e3 else f"{v:.0f}"


def table(cpu_res, mem_res):
    size = os.path.getsize(L.ROADIE_BIN)
    ssh_v = subprocess.run([QEMU, "-L", SYSROOT, f"{SYSROOT}/usr/bin/ssh", "-V"], capture_output=True, text=True).stderr.strip()
    db_v = subprocess.run([QEMU, "-L", SYSROOT, f"{SYSROOT}/usr/bin/dbclient", "-V"], capture_output=True, text=True).stderr.strip()
    lines = [
        f"<!-- router-cpu {ARCH} -->",
        f"# On the router's CPU ({ARCH}): roadie vs `ssh -R` and `dbclient -R`",
        "",
        f"`scripts/bench router {ARCH}`: roadie's `scripts/cross-build {TRIPLE}` ({size:,} B stripped) against "
        f"Debian bookworm's {ARCH} `ssh` ({ssh_v}) and `dbclient` ({db_v.splitlines()[0] if db_v else '?'}), "
        f"all under Debian's qemu-user 7.2 ({f'-cpu {CPU}' if CPU else 'qemu default CPU'}), same sshd, one cipher allowed per run, "
        f"{MIB} MiB per transfer scaled to one GiB, {ROUNDS} rounds, medians. "
        "Instructions: the emulated program's own (bench/qemu-plugin/insns.c). mmap calls: the guest's "
        "mmap, mmap2, munmap and mremap syscalls. Faults: minor faults of the whole qemu process (the guest's "
        "first touches of fresh memory and qemu's own). Mbit/s: under qemu on this machine, not the router's.",
        "",
        "| cipher, direction | G instructions per GiB: roadie / ssh / dbclient | roadie ÷ ssh | roadie ÷ dbclient "
        "| mmap calls per GiB | minor faults per GiB | peak anonymous MiB during the transfer | Mbit/s under qemu |",
        "|---|---|---|---|---|---|---|---|",
    ]
    def anon(v):
        return "–" if v is None or not MEMORY_READABLE else f"{v:.2f}"

    for (c, d), per in cpu_res.items():
        g = {i: per.get(i, {}) for i in IMPLS}

        def three(k, f=fmt):
            return " / ".join(f(g[i].get(k)) for i in IMPLS)

        r_s = g["roadie"]["ginsns"] / g["ssh"]["ginsns"]
        r_d = g["roadie"]["ginsns"] / g["dbclient"]["ginsns"] if g["dbclient"] else None
        lines.append(f"| {c}, {d} | {three('ginsns')} | {r_s:.2f} | {fmt(r_d, 3)} | {three('mmaps', fmt_k)} | "
                     f"{three('faults', fmt_k)} | {three('anon', anon)} | {three('mbit')} |")
    def mem_row(label, cell):
        return f"| {label} | " + " | ".join(cell(mem_res[i]) for i in IMPLS) + " |"

    if mem_res:
        lines += [
            "",
            "| memory (resident inside the emulated address space) | roadie | ssh | dbclient |",
            "|---|---|---|---|",
            mem_row(f"idle, 3 tunnels (median of {ROUNDS})", lambda m: f"{m['idle'][0]:.2f} MiB"),
            mem_row(f"peak, 200 connections moving data (256 KiB each; median of {ROUNDS})",
                    lambda m: f"{m['peak'][0]:.2f} MiB"),
            mem_row("of which anonymous (heap, stacks; the rest is file pages of code), idle",
                    lambda m: f"{m['idle'][1]:.2f} MiB"),
            mem_row("of which anonymous, peak", lambda m: f"{m['peak'][1]:.2f} MiB"),
            mem_row(f"{AFTER_S} s after the 200 connections closed",
                    lambda m: f"{m['after'][0]:.2f} MiB ({m['after'][1]:.2f} anonymous)"),
        ]
    lines.append(f"<!-- /router-cpu {ARCH} -->")
    return "\n".join(lines)


def write_results(section):
    """Put the section at the top of bench/results.md, replacing this
    architecture's previous one; bench.py keeps these sections."""
    path = os.path.join(L.ROOT, "bench", "results.md")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    start, end = f"<!-- router-cpu {ARCH} -->", f"<!-- /router-cpu {ARCH} -->"
    if start in text and end in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + section + text[b:]
    else:
        text = section + "\n\n" + text
    with open(path, "w") as f:
        f.write(text)
    print(section)


if __name__ == "__main__":
    if not (SYSROOT and PLUGIN):
        sys.exit("router.py: run it through scripts/bench router")
    if os.environ.get("ROUTER_SYMS"):
        profile(os.environ["ROUTER_SYMS"])
        sys.exit(0)
    if os.environ.get("ROUTER_LAYOUT"):
        layout(os.environ["ROUTER_LAYOUT"])
        sys.exit(0)
    parts = os.environ.get("ROUTER_PARTS", "cpu memory" if MEMORY_READABLE else "cpu").split()
    c = cpu() if "cpu" in parts else {}
    m = memory() if "memory" in parts else {}
    if ONLY == IMPLS:
        write_results(table(c, m))
