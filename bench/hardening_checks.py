"""Whether each hardening item is in force on a running gateway, seen from outside: the proof that a variant of
bench/hardening_ab.py really switched its item off (and nothing else).

`check(base)` runs against a gateway started with `PROBE_ENV` (tiny limits, so that going over them is cheap) and
returns, per check, True when the item acted: a second session on a device refused, a second stream refused, a
second webhook in flight refused, a backlog trimmed to its byte budget, a deeply nested body refused, a third webhook
in the window refused, /metrics served, a webhook recorded. The per-reader stream budget cannot be reached from outside
without racing the queue's own eviction; tests/bench/test_hardening_ab.py checks that switch in process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
import websockets

from bench.common import Identity, owner_token, register_device
from bench.run import Relay

PROBE_ENV = {
    "MAX_SESSIONS_PER_DEVICE": "1",
    "MAX_STREAMS_PER_USER": "2",  # the backlog check reads one stream after another
    "MAX_INFLIGHT_PER_ROUTE": "1",
    "SESSION_BACKLOG_BYTES": "65536",  # the smallest allowed
    "INGRESS_ROUTE_LIMIT_PER_WINDOW": "2",
    "INGRESS_RATE_WINDOW_SECONDS": "3600",
}
BACKLOG_FRAMES = 400  # about 120 KiB of events, twice the probe's backlog budget
# Which checks each item's switch must silence (every other check must still act).
CHECKS_OF = {
    "caps": ("sessions_per_device", "streams_per_user", "inflight_per_route"),
    "budgets": ("backlog_bytes",),
    "depth": ("json_depth",),
    "ratelimits": ("ingress_rate_limit",),
    "metrics": ("metrics_served",),
    "inspector": ("webhook_recorded",),
}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _client_init(http: httpx.Client, token: str, device_id: str, sid: str) -> int:
    body = {
        "device_id": device_id,
        "handshake_id": f"hs_{sid}",
        "client_session_nonce": "bm9uY2U=",
        "client_ephemeral_public_key": "zY++EJfS+1RqnBvK+5wAOKlyQqMxyvlENYEvCqkqdBU=",
    }
    url = f"/gateway/v1/sessions/{sid}/handshake/client-init"
    return http.post(url, json=body, headers=_auth(token)).status_code


def sessions_and_streams(base: str) -> dict[str, bool]:
    """Two sessions on one device (cap 1), then three streams of one user (cap 2)."""
    token = owner_token(base, f"probe-{secrets.token_hex(4)}")
    device_id = f"dev_{secrets.token_hex(16)}"
    first, second = (f"sess_{secrets.token_hex(8)}" for _ in range(2))
    with httpx.Client(base_url=base, timeout=30) as http:
        register_device(http, token, device_id, Identity.new())
        assert _client_init(http, token, device_id, first) in (200, 201, 202)
        sessions_refused = _client_init(http, token, device_id, second) == 429
        statuses = []
        with (
            http.stream("GET", f"/gateway/v1/sessions/{first}/events", headers=_auth(token)) as one,
            http.stream("GET", f"/gateway/v1/sessions/{first}/events", headers=_auth(token)) as two,
            http.stream("GET", f"/gateway/v1/sessions/{first}/events", headers=_auth(token)) as three,
        ):
            statuses = [one.status_code, two.status_code, three.status_code]
    assert statuses[:2] == [200, 200], statuses
    return {"sessions_per_device": sessions_refused, "streams_per_user": statuses[2] == 429}


def _route(http: httpx.Client, token: str, **fields: Any) -> tuple[str, str, str]:
    device_id = f"dev_{secrets.token_hex(16)}"
    created = http.post(
        "/gateway/v1/integrations/routes",
        json={"device_id": device_id, "interface_type": "http", **fields},
        headers=_auth(token),
    ).json()
    route_id = created["route"]["route_id"]
    return device_id, route_id, f"/integrations/{route_id}/{created['route_token']}"


async def _inflight(base: str) -> bool:
    """A tunnel that never answers, a route allowing one webhook in flight: the second one at once is refused."""
    token = owner_token(base, f"probe-{secrets.token_hex(4)}")
    with httpx.Client(base_url=base, timeout=30) as http:
        device_id, route_id, path = _route(http, token, deadline_ms=500)
    url = base.replace("http://", "ws://") + f"/gateway/v1/integrations/tunnel/connect?device_id={device_id}"
    async with websockets.connect(url, additional_headers=_auth(token)) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "tunnel.activate", "routes": [route_id]}))
        await ws.recv()
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            answers = await asyncio.gather(*(client.post(path, content=b"{}") for _ in range(2)))
    return any(a.status_code == 429 and "in flight" in a.text for a in answers)


def inflight_per_route(base: str) -> dict[str, bool]:
    return {"inflight_per_route": asyncio.run(_inflight(base))}


def _session_events(http: httpx.Client, token: str, sid: str, last_seq: int) -> int:
    """Events read on a fresh stream of `sid` (the whole backlog, then live) until the one with `last_seq`."""
    count = 0
    with http.stream("GET", f"/gateway/v1/sessions/{sid}/events", headers=_auth(token)) as stream:
        assert stream.status_code == 200, stream.status_code
        for line in stream.iter_lines():
            if line.startswith("data: ") and '"seq"' in line:
                count += 1
                if json.loads(line[6:]).get("seq") == last_seq:
                    return count
    raise AssertionError("the stream ended before the last event")


def backlog_bytes(base: str) -> dict[str, bool]:
    """An agent sends BACKLOG_FRAMES frames into one session; once a first stream has seen the last one, a second
    stream's replay holds what the backlog kept: fewer than all of them under a byte budget."""
    relay = Relay(base, False, sessions=1, deadline=60)
    agent, go, done, out, _ = relay.start_agent(send_total=BACKLOG_FRAMES, rate=0)
    sid = relay.session_ids[0]
    try:
        go.set()
        with httpx.Client(base_url=base, timeout=60) as http:
            _session_events(http, relay.token, sid, BACKLOG_FRAMES)  # every frame has been stored
            replayed = _session_events(http, relay.token, sid, BACKLOG_FRAMES)
    finally:
        done.set()
        out.get(timeout=60)
        agent.join(timeout=10)
    return {"backlog_bytes": replayed < BACKLOG_FRAMES}


def json_depth(base: str) -> dict[str, bool]:
    """An identity key whose body carries an extra field nested 100 levels deep (the limit is 64)."""
    token = owner_token(base, f"probe-{secrets.token_hex(4)}")
    nested = "[" * 100 + "]" * 100
    body = '{"public_key": ' + json.dumps(Identity.new().public_b64) + ', "extra": ' + nested + "}"
    with httpx.Client(base_url=base, timeout=30) as http:
        response = http.put(
            f"/gateway/v1/devices/dev_{secrets.token_hex(16)}/identity-key",
            content=body.encode(),
            headers={**_auth(token), "Content-Type": "application/json"},
        )
    assert response.status_code in (204, 400), response.status_code
    return {"json_depth": response.status_code == 400}


def ingress_and_inspector(base: str) -> dict[str, bool]:
    """Three webhooks to a route without a tunnel (limit 2 per window): the third is refused; the first is recorded
    by the inspector (looked for until it appears, for at most 3 s)."""
    token = owner_token(base, f"probe-{secrets.token_hex(4)}")
    with httpx.Client(base_url=base, timeout=30) as http:
        _, route_id, path = _route(http, token)
        statuses = [http.post(path, content=b"{}").status_code for _ in range(3)]
        assert statuses[0] == 503, statuses
        recorded = False
        limit = time.monotonic() + 3
        while not recorded and time.monotonic() < limit:
            found = http.get(f"/gateway/v1/integrations/routes/{route_id}/requests", headers=_auth(token))
            recorded = bool(found.json()["requests"])
            time.sleep(0.05)
        served = http.get("/metrics").status_code
    assert served in (200, 404), served
    return {"ingress_rate_limit": statuses[2] == 429, "webhook_recorded": recorded, "metrics_served": served == 200}


def check(base: str) -> dict[str, bool]:
    return {
        **sessions_and_streams(base),
        **inflight_per_route(base),
        **backlog_bytes(base),
        **json_depth(base),
        **ingress_and_inspector(base),
    }


def verdict(variant: str, acted: dict[str, bool]) -> list[str]:
    """What is wrong with `acted` for `variant` ("all on", or an item switched off): the item's own checks must not
    act, every other check must."""
    silenced = CHECKS_OF.get(variant, ())
    return [f"{name}: {'acted' if did else 'did not act'}" for name, did in acted.items() if did == (name in silenced)]
