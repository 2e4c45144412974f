"""Messages between the gateway processes of one deployment (docs/architecture.md, "Delivery across processes").

With `STATE_BACKEND=redis` every process reads one inbox on the channel layer: a channel whose name is derived from
its node id (`NODE_ID`), so that any process can address another by the node id it finds in shared state (presence,
route bindings). One background task per process reads the inbox and hands each message to the handler registered
for its `type`; the apps register their handlers when they load (gateway_site imports no app).

- `send` drops a message into another process's inbox and does not wait.
- `request` also carries a request id; the receiver's handler result goes back to the sender's inbox, and the sender
  waits for it at most `REQUEST_TIMEOUT_SECONDS` (no answer in time counts as "not done").
- `group_send` reaches every inbox that joined a group: `gw.nodes` holds every running process, and the apps add
  groups of their own (a session with subscribers here). A group message names its origin and the origin skips it:
  the sender has already served its own receivers directly.

Handlers registered as `ordered` run one after another in the reading task, in arrival order, and must not block
(stream events keep their order); the others run each in a task of their own, so that a slow socket cannot hold up
the inbox. In the default memory mode none of this runs: every receiver lives in the one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from gateway_site import outage
from gateway_site.dispatch import cancelling

logger = logging.getLogger("gateway.nodes")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

NODES_GROUP = "gw.nodes"
REPLY = "gw.reply"
REQUEST_TIMEOUT_SECONDS = 2.0
RETRY_SECONDS = 1.0
WARN_EVERY_SECONDS = 60.0  # a failing destination is logged once per minute, not once per message


def inbox_name(node_id: str) -> str:
    """The inbox channel of node `node_id` (node ids may hold any character, so they are hashed)."""
    return "gw.node." + hashlib.sha256(node_id.encode("utf-8")).hexdigest()[:40]


def shared() -> bool:
    """Whether several processes share the state, so receivers may live in another process."""
    return bool(settings.GATEWAY.state_backend == "redis")


def address(connection_id: str) -> str:
    """The address of this process's socket `connection_id`: the id itself in memory mode, `<id>@<node id>` when
    several processes run, because each process counts connection ids on its own (docs/protocol/relay.md §5.1)."""
    return f"{connection_id}@{inbox.node_id}" if shared() else connection_id


def split(address: str) -> tuple[str, str]:
    """(connection id, node id) of an address; the node id is '' for one of this process in memory mode."""
    connection_id, _, node_id = address.partition("@")  # connection ids (`agt:<n>`, `tun:<n>`) hold no `@`
    return connection_id, node_id


def elsewhere(node_id: str) -> bool:
    """Whether `node_id` (from an address) names another process."""
    return bool(node_id) and node_id != inbox.node_id


class NodeInbox:
    """This process's inbox. `node_id` and `layer` default to the settings' (tests pass their own)."""

    def __init__(self, node_id: str | None = None, layer: BaseChannelLayer | None = None) -> None:
        self._node_id = node_id
        self._layer = layer
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._groups: set[str] = set()
        self._warned: dict[str, float] = {}

    @property
    def node_id(self) -> str:
        return self._node_id if self._node_id is not None else str(settings.GATEWAY.node_id)

    @property
    def channel(self) -> str:
        return inbox_name(self.node_id)

    @property
    def layer(self) -> BaseChannelLayer:
        layer = self._layer if self._layer is not None else get_channel_layer()
        if layer is None:
            raise RuntimeError("no channel layer is configured")
        return layer

    def handle(self, kind: str, handler: Handler, *, ordered: bool = False) -> None:
        """Serve messages of type `kind` with `handler`; its result answers a request."""
        self._handlers[kind] = (handler, ordered)

    # -- running -----------------------------------------------------------------------------------------------------

    def running(self) -> bool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return self._task is not None and not self._task.done() and self._loop is loop

    def start(self) -> None:
        """Start reading the inbox on the running event loop (once per loop; later calls do nothing)."""
        if self.running():
            return
        self._loop = asyncio.get_running_loop()
        self._pending = {}
        self._running = set()
        self._groups = set()
        self._task = self._loop.create_task(self._read(), name=f"node-inbox:{self.node_id}")

    async def stop(self) -> None:
        """Leave every group, stop reading and give up the requests still waiting (they count as unanswered)."""
        task, self._task = self._task, None
        if task is None or self._loop is not asyncio.get_running_loop():
            return
        for group in [NODES_GROUP, *self._groups]:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(group, self.channel)
        self._groups = set()
        tasks = [task, *self._running]
        while tasks:  # a client library may turn a cancellation into an error of its own: cancel until done
            for running in tasks:
                running.cancel()
            await asyncio.wait(tasks, timeout=RETRY_SECONDS)
            tasks = [running for running in tasks if not running.done()]
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)

    async def _read(self) -> None:
        layer, channel = self.layer, self.channel
        joined = False
        while self._task is asyncio.current_task():
            try:
                if not joined:
                    await layer.group_add(NODES_GROUP, channel)
                    joined = True
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer is unreachable: keep trying, every message is bounded by its expiry
                if cancelling():  # the layer turned our cancellation into an error of its own: stop all the same
                    raise asyncio.CancelledError from exc
                if outage.unavailable(exc) is None:  # a Redis outage is logged once, by gateway_site.outage
                    logger.warning(
                        "node inbox: receive failed", exc_info=True, extra={"fields": {"node": self.node_id}}
                    )
                await asyncio.sleep(RETRY_SECONDS)
                continue
            await self._dispatch(message)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == REPLY:
            future = self._pending.get(str(message.get("rid")))
            if future is not None and not future.done():
                future.set_result(message.get("result"))
            return
        if message.get("fanout") and message.get("origin") == self.node_id:
            return  # our own group message: the sender served this process directly
        entry = self._handlers.get(kind) if isinstance(kind, str) else None
        if entry is None:
            logger.info("node inbox: unknown message", extra={"fields": {"type": str(kind)[:64]}})
            return
        handler, ordered = entry
        if ordered:
            await self._serve(handler, message)
            return
        task = asyncio.ensure_future(self._serve(handler, message))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _serve(self, handler: Handler, message: dict[str, Any]) -> None:
        try:
            result = await handler(message)
        except Exception:  # one failing message must not stop the inbox
            logger.exception("node inbox: handler failed", extra={"fields": {"type": str(message.get("type"))}})
            result = None
        rid, origin = message.get("rid"), message.get("origin")
        if isinstance(rid, str) and isinstance(origin, str):
            await self.send(origin, {"type": REPLY, "rid": rid, "result": result})

    # -- sending -----------------------------------------------------------------------------------------------------

    async def send(self, node_id: str, message: dict[str, Any]) -> bool:
        """Put `message` in the inbox of `node_id`; False when the layer refused it (full, unreachable)."""
        try:
            await self.layer.send(inbox_name(node_id), {**message, "origin": self.node_id})
        except Exception:
            # A process that died stays named in shared state for a while (its inbox fills up): say so once a minute.
            now = time.monotonic()
            if now - self._warned.get(node_id, -WARN_EVERY_SECONDS) >= WARN_EVERY_SECONDS:
                if len(self._warned) > 1000:
                    self._warned.clear()
                self._warned[node_id] = now
                logger.warning(
                    "node inbox: send failed",
                    exc_info=True,
                    extra={"fields": {"to": node_id, "type": str(message.get("type"))}},
                )
            return False
        return True

    async def request(self, node_id: str, message: dict[str, Any], *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Any:
        """Send `message` to `node_id` and wait for its handler's result; None when no answer came within `timeout`."""
        self.start()
        rid = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            if not await self.send(node_id, {**message, "rid": rid}):
                return None
            return await asyncio.wait_for(future, timeout=timeout)
        except TimeoutError:
            logger.info("node inbox: no answer", extra={"fields": {"to": node_id, "type": str(message.get("type"))}})
            return None
        finally:
            self._pending.pop(rid, None)

    async def group_send(self, group: str, message: dict[str, Any]) -> bool:
        """Send `message` to every inbox in `group` but this process's own; False when the layer refused it."""
        try:
            await self.layer.group_send(group, {**message, "origin": self.node_id, "fanout": True})
        except Exception:
            logger.warning("node inbox: group send failed", exc_info=True, extra={"fields": {"group": group}})
            return False
        return True

    async def broadcast(self, message: dict[str, Any]) -> bool:
        """Send `message` to every other running process."""
        return await self.group_send(NODES_GROUP, message)

    async def join(self, group: str) -> None:
        """Receive the messages sent to `group` (the inbox starts reading if it was not yet)."""
        self.start()
        await self.layer.group_add(group, self.channel)
        self._groups.add(group)

    async def leave(self, group: str) -> None:
        self._groups.discard(group)
        await self.layer.group_discard(group, self.channel)

    def in_group(self, group: str) -> bool:
        return group in self._groups and self.running()

    def pending_count(self) -> int:
        return len(self._pending)


inbox = NodeInbox()
