"""What a consumer's message loop costs per message: `python -m bench.dispatch_loop [--messages 200000]`.

Times, in this process and without a server, the two ways a consumer can take its messages from two sources (the
client and the channel layer) while the channel layer stays silent, as on an agent socket relaying frames: Channels'
`await_many_dispatch` and the gateway's `gateway_site.dispatch.dispatch_from` (docs/performance.md). The client
source gives up one turn of the event loop before each message (a message is never ready at once on a socket); the
handler does nothing. Best of five runs of `--messages` messages each, reported in microseconds per message. Unlike
the end-to-end figures, this does not depend on how the load generators and the server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import StopConsumer
from channels.utils import await_many_dispatch

from gateway_site.dispatch import dispatch_from

Loop = Callable[[list[Callable[[], Awaitable[dict[str, Any]]]], Callable[[dict[str, Any]], Awaitable[None]]], Any]


async def one_run(loop: Loop, messages: int) -> float:
    """Seconds per message for `messages` messages through `loop`."""
    layer: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # silent, as the channel layer while frames stream
    message = {"type": "websocket.receive", "text": "{}"}
    handled = 0

    async def client() -> dict[str, Any]:
        await asyncio.sleep(0)  # a message is never ready at once: one turn of the event loop each, as on a socket
        return message

    async def handle(_: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled == messages:
            raise StopConsumer()

    started = time.perf_counter()
    with contextlib.suppress(StopConsumer):
        await loop([client, layer.get], handle)
    return (time.perf_counter() - started) / messages


def measure(messages: int, repeat: int = 5) -> dict[str, float]:
    loops: dict[str, Loop] = {
        "channels_await_many_dispatch": await_many_dispatch,
        "gateway_dispatch_from": dispatch_from,
    }
    best = {name: min(asyncio.run(one_run(loop, messages)) for _ in range(repeat)) for name, loop in loops.items()}
    return {name: round(seconds * 1e6, 2) for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args(argv)
    result = measure(args.messages)
    old, new = result["channels_await_many_dispatch"], result["gateway_dispatch_from"]
    print(f"Channels' await_many_dispatch  {old:6.2f} µs per message")
    print(f"gateway dispatch_from          {new:6.2f} µs per message  ({100 * (new - old) / old:+.0f}%)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
