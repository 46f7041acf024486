"""Clients for the lab's public side (run in the upstream namespace).

  client.py latency HOST PORT REQUESTS CONCURRENCY   -> JSON {p50_ms, p99_ms, errors, n}
  client.py get HOST PORT [TIMEOUT]                  -> the page, or exit 1
  client.py flood HOST PORT CONNECTIONS BYTES        -> JSON {sent, acked, failed}: each
        connection sends BYTES to the sink and checks the count it acknowledges
  client.py pulse HOST PORT INTERVAL_MS              -> until killed, one GET every INTERVAL_MS
        (each on its own connection, 1 s timeout, not waiting for the previous one); a line
        "LAUNCH_MONOTONIC 1|0" per finished GET. HOST "unix" means PORT is a socket path.
"""

import asyncio
import json
import socket
import statistics
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"


async def one_request(host, port, timeout=5.0):
    t0 = time.perf_counter()
    if host == "unix":
        opening = asyncio.open_unix_connection(port)
    else:
        opening = asyncio.open_connection(host, port)
    reader, writer = await asyncio.wait_for(opening, timeout)
    try:
        writer.write(REQUEST)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), timeout)
        if not data.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"bad answer {data[:40]!r}")
    finally:
        writer.close()
    return (time.perf_counter() - t0) * 1000


async def latency(host, port, n, conc):
    times, errors = [], 0
    queue = list(range(n))

    async def worker():
        nonlocal errors
        while queue:
            queue.pop()
            try:
                times.append(await one_request(host, port))
            except (OSError, asyncio.TimeoutError, ConnectionError):
                errors += 1

    await asyncio.gather(*(worker() for _ in range(conc)))
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else None
    return {"n": len(times), "errors": errors, "p50_ms": statistics.median(times) if times else None, "p99_ms": p99}


async def flood(host, port, conns, size):
    block = bytes(64 * 1024)
    result = {"sent": 0, "acked": 0, "failed": 0}

    async def one():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 20)
            left = size
            while left > 0:
                k = min(left, len(block))
                writer.write(block[:k])
                await writer.drain()
                left -= k
            writer.write_eof()
            ack = int.from_bytes(await asyncio.wait_for(reader.readexactly(8), 60), "big")
            writer.close()
            result["sent"] += size
            result["acked"] += ack
            if ack != size:
                result["failed"] += 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            result["failed"] += 1

    await asyncio.gather(*(one() for _ in range(conns)))
    return result


async def pulse(host, port, interval):
    """Visitors that keep coming whether or not the last one was served. CLOCK_MONOTONIC is
    the same in every namespace, so the bench can compare these times with its own."""

    async def one(t):
        try:
            await one_request(host, port, timeout=1.0)
            ok = 1
        except (OSError, asyncio.TimeoutError, ConnectionError):
            ok = 0
        sys.stdout.write(f"{t:.4f} {ok}\n")
        sys.stdout.flush()

    tasks = set()
    while True:
        task = asyncio.create_task(one(time.monotonic()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(interval)


def main():
    cmd, host = sys.argv[1], sys.argv[2]
    port = sys.argv[3] if host == "unix" else int(sys.argv[3])
    if cmd == "pulse":
        asyncio.run(pulse(host, port, int(sys.argv[4]) / 1000))
        return
    if cmd == "latency":
        print(json.dumps(asyncio.run(latency(host, port, int(sys.argv[4]), int(sys.argv[5])))))
    elif cmd == "flood":
        print(json.dumps(asyncio.run(flood(host, port, int(sys.argv[4]), int(sys.argv[5])))))
    elif cmd == "get":
        timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(REQUEST)
                data = s.recv(4096)
        except OSError:
            sys.exit(1)
        if not data.startswith(b"HTTP/1.1 200"):
            sys.exit(1)
        sys.stdout.write(data.split(b"\r\n\r\n", 1)[-1].decode())
    else:
        sys.exit(f"unknown command {cmd}")


main()
