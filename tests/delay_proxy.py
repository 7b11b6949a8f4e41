"""A TCP proxy that delays one direction, standing in for `tc netem delay` where the kernel has no netem.

    python tests/delay_proxy.py LISTEN_BASE TARGET_BASE DELAY_S [COUNT]

Listens on 127.0.0.1:LISTEN_BASE+i and forwards to 127.0.0.1:TARGET_BASE+i
(i < COUNT, default 5: the broker's five ports). Bytes from the client (the
worker) reach the broker DELAY_S later, in order, like netem on the worker's
egress; the other direction is forwarded at once. It prints "ready" when bound.
"""

from __future__ import annotations

import asyncio
import sys


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            at, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, at - loop.time()))
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((loop.time() + delay, b""))
    try:
        await sender
    except (ConnectionError, OSError):
        pass
    writer.close()


async def serve(listen: int, target: int, delay: float) -> asyncio.AbstractServer:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, 0.0))

    return await asyncio.start_server(handle, "127.0.0.1", listen)


async def main(listen_base: int, target_base: int, delay: float, count: int) -> None:
    servers = [await serve(listen_base + i, target_base + i, delay) for i in range(count)]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]), int(args[1]), float(args[2]), int(args[3]) if len(args) > 3 else 5))
