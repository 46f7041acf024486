"""Services of the cluster node in the lab: sink (9000), source (9001), HTTP (8080).

sink:   reads until EOF, answers with the byte count (8 bytes, big endian), closes.
source: reads an 8-byte count N, sends N bytes, closes.
http:   answers every request on a connection with a small fixed page.
"""

import asyncio

CHUNK = 256 * 1024
BLOCK = bytes(CHUNK)
PAGE = b"hello from the cluster\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s" % (len(PAGE), PAGE)


async def sink(reader, writer):
    n = 0
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        n += len(data)
    writer.write(n.to_bytes(8, "big"))
    await writer.drain()
    writer.close()


async def source(reader, writer):
    try:
        n = int.from_bytes(await reader.readexactly(8), "big")
    except asyncio.IncompleteReadError:
        writer.close()
        return
    while n > 0:
        k = min(n, CHUNK)
        writer.write(BLOCK[:k])
        await writer.drain()
        n -= k
    writer.close()


async def http(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    writer.close()


async def main():
    servers = [
        await asyncio.start_server(sink, "0.0.0.0", 9000, backlog=1024),
        await asyncio.start_server(source, "0.0.0.0", 9001, backlog=1024),
        await asyncio.start_server(http, "0.0.0.0", 8080, backlog=1024),
    ]
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
