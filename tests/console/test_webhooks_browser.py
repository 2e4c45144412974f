"""The console's Webhooks view in a real browser (docs/protocol/system-and-console.md §5.2, docs/protocol/tunnels.md §2,
docs/protocol/webhooks.md §2): create a route, copy its URL once, connect a real tunnel client with it, watch a
signed webhook arrive live, read its detail (payload as text, never markup), replay it, edit, rotate, disable and
delete, with the API's errors shown inline."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.console.conftest import wait_until
from tests.console.test_console_browser import agent_token, sign_in_page
from tests.relay_helpers import KEY_B64

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "console-test-secret"
HEADER = "x-test-signature"
XSS = b'<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'


class Tunnel:
    """A tunnel client (docs/protocol/tunnels.md §3): activates one route and answers every webhook `seen:<body>`."""

    def __init__(self, base: str, token: str, device_id: str) -> None:
        self.base, self.token, self.device_id = base, token, device_id
        self.requests: list[dict] = []
        self.frames: list[dict] = []
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task | None = None

    async def start(self, route_id: str) -> None:
        base = self.base.replace("http://", "ws://")
        url = f"{base}/gateway/v1/integrations/tunnel/connect?device_id={self.device_id}"
        self.ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {self.token}"})
        assert json.loads(await self.ws.recv())["type"] == "tunnel.connected"
        await self.ws.send(json.dumps({"type": "tunnel.activate", "request_id": "act-1", "routes": [route_id]}))
        assert json.loads(await self.ws.recv())["results"][0]["status"] == "active"
        self.task = asyncio.ensure_future(self.loop())

    async def loop(self) -> None:
        assert self.ws is not None
        async for text in self.ws:
            frame = json.loads(text)
            self.frames.append(frame)
            if frame.get("type") != "tunnel.request":
                continue
            self.requests.append(frame)
            body = b"seen:" + base64.b64decode(frame["body_base64"])
            answer = {
                "type": "tunnel.response",
                "request_id": frame["request_id"],
                "status": 200,
                "headers": [["Content-Type", "text/plain"], ["X-Handled-By", "test-tunnel"]],
                "body_base64": base64.b64encode(body).decode(),
            }
            await self.ws.send(json.dumps(answer))

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        if self.ws:
            with contextlib.suppress(Exception):
                await self.ws.close()


async def register_device(base: str, token: str, device_id: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.put(
            f"/gateway/v1/devices/{device_id}/identity-key",
            headers={"Authorization": f"Bearer {token}"},
            json={"algorithm": "ed25519", "public_key": KEY_B64, "display_name": "hook-box"},
        )
    assert response.status_code == 204


async def feed_length(page, expected: int) -> bool:
    return await page.locator("button.feed-item").count() == expected


def signed(body: bytes) -> dict[str, str]:
    return {HEADER: "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


async def test_webhooks_end_to_end(gateway_url, browser, screenshot):
    token = await agent_token(gateway_url, "hooks@example.com")
    device_id = f"dev_{uuid.uuid4().hex}"
    await register_device(gateway_url, token, device_id)
    context = await browser.new_context(
        permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1360, "height": 900}
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in_page(page, gateway_url, "hooks@example.com")
    await page.click("a[data-view=webhooks]")
    await page.wait_for_selector("#routes-empty:not([hidden])")

    # Create, first with a value the API refuses: its message shows in the dialog.
    await page.click("#new-route")
    await page.select_option("#create-device", device_id)
    await page.fill("#create-type", "Not-Valid")
    await page.press("#create-type", "Enter")  # Enter creates, like the button; the dialog stays open on an error
    await page.wait_for_selector("#modal-error:text('interface_type must match')")
    await page.fill("#create-type", "github")
    await page.fill("#create-interface-id", "my-repo")
    await page.select_option("#create-verify-provider", "hmac_sha256")
    await page.fill("#create-verify-secret", SECRET)
    await page.fill("#create-verify-header", HEADER)
    await page.check("#create-capture")
    await screenshot(page, "webhooks-create")
    await page.click("#modal-actions button:text('Create')")
    await page.wait_for_selector("#once-url")
    assert "will not be shown again" in await page.inner_text("#modal")
    public_url = await page.input_value("#once-url")
    route_token = await page.input_value("#once-token")
    match = re.fullmatch(r"http://localhost:8080/integrations/(rt_[0-9a-f]{32})/([A-Za-z0-9_-]{43})", public_url)
    assert match and match.group(2) == route_token
    route_id = match.group(1)
    await page.click("button[data-copy=once-url]")
    await page.wait_for_selector("#copy-status:text('copied')")
    assert await page.evaluate("() => navigator.clipboard.readText()") == public_url
    await page.click("#modal-actions button:text('Done')")

    row = page.locator(f"tr[data-route='{route_id}']")
    assert "provisioned" in await row.inner_text()
    assert "hmac_sha256 (x-test-signature)" in await row.inner_text()
    assert "captured" in await row.inner_text()
    assert "github · my-repo" in await row.inner_text()
    await page.wait_for_selector("#feed-live:text('Live')")
    ingress = urlsplit(public_url).path

    tunnel = Tunnel(gateway_url, token, device_id)
    await tunnel.start(route_id)
    try:
        await row.locator("[data-tunnel=connected]").wait_for(timeout=15000)  # the list refreshes by itself
        assert "active" in await row.inner_text()
        async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
            sent = await http.post(f"{ingress}?source=test", content=XSS, headers=signed(XSS))
            assert (sent.status_code, sent.content) == (200, b"seen:" + XSS)
            feed_item = page.locator("button.feed-item").first
            await feed_item.locator("[data-status]:text('200')").wait_for()
            assert await feed_item.locator("[data-delivery]").inner_text() == "live"
            assert await feed_item.locator("[data-verified]").inner_text() == "verified"
            forged = await http.post(ingress, content=b"{}", headers={HEADER: "sha256=" + "0" * 64})
            assert forged.status_code == 401
            await page.locator("button.feed-item").first.locator("[data-status]:text('401')").wait_for()
            binary = bytes([0xFF, 0x00, 0x80, 0x41])
            assert (await http.put(ingress, content=binary, headers=signed(binary))).status_code == 200
            await wait_until(lambda: feed_length(page, 3))

        items = page.locator("button.feed-item")
        assert [await items.nth(i).locator(".method").inner_text() for i in range(3)] == ["PUT", "POST", "POST"]
        assert await items.nth(1).locator("[data-verified]").inner_text() == "bad signature"
        assert await items.nth(1).locator("[data-delivery]").inner_text() == "rejected"
        await items.nth(0).focus()
        await page.keyboard.press("Enter")  # the feed is usable from the keyboard
        await page.wait_for_selector("#request-detail pre[data-body=hex]")
        assert "ff 00 80 41" in await page.inner_text("#request-detail pre[data-body=hex]")

        # The payload is shown as text: no element is made from it and none of its script runs.
        await items.nth(2).click()
        await page.wait_for_selector("#request-detail pre[data-body=text]")
        assert await page.inner_text("#request-detail pre[data-body=text]") == XSS.decode()
        assert await page.locator("#request-detail img, #request-detail script").count() == 0
        assert await page.evaluate("() => window.__xss") is None
        detail = await page.inner_text("#request-detail")
        assert "?source=test" in detail and "[redacted]" in detail and HEADER in detail
        assert "x-handled-by" in detail.lower() and "verified" in detail
        assert route_token not in detail
        await page.evaluate("() => document.querySelector('#request-detail h4').scrollIntoView()")
        await screenshot(page, "webhooks-detail")

        # Replay: the new record comes on top, marked as a replay, and the tunnel saw the request again.
        seen_before = len(tunnel.requests)
        await page.click("#replay")
        await wait_until(lambda: feed_length(page, 4))
        top = page.locator("button.feed-item").first
        await top.locator("[data-replay]").wait_for()
        assert await top.locator("[data-status]").inner_text() == "200"
        assert await top.get_attribute("class") == "feed-item selected"
        await wait_until(lambda: len(tunnel.requests) == seen_before + 1)
        assert base64.b64decode(tunnel.requests[-1]["body_base64"]) == XSS
        assert "Replay of" in await page.inner_text("#request-detail")
        await page.evaluate("() => window.scrollTo(0, 0)")
        await screenshot(page, "webhooks")

        # Settings: a refused value shows the API's message; a good one is saved; the secret is never shown back.
        await page.fill("#edit-deadline", "100")
        await page.click("#route-form button[type=submit]")
        await page.wait_for_selector("#route-error:text('deadline_ms must be between 500 and 10000')")
        await page.fill("#edit-deadline", "3000")
        await page.fill("#edit-max-body", "2048")
        await page.click("#route-form button[type=submit]")
        await page.wait_for_selector("#route-saved:text('Saved.')")
        assert await page.input_value("#edit-deadline") == "3000"
        assert await page.input_value("#edit-verify-secret") == ""
        assert SECRET not in await page.content()
        await page.fill("#edit-verify-header", "x-other-signature")
        await page.click("#route-form button[type=submit]")
        await page.wait_for_selector("#route-error:text('Enter the signing secret')")
        await page.select_option("#edit-verify-provider", "github")
        await page.fill("#edit-verify-secret", "another-secret")
        await page.click("#route-form button[type=submit]")
        await page.wait_for_selector("#route-facts [data-verify]:text('github')")
        await page.select_option("#edit-verify-provider", "")
        await page.uncheck("#edit-capture")
        await page.click("#route-form button[type=submit]")
        await page.wait_for_selector("#route-facts [data-verify]:text('off')")
        async with httpx.AsyncClient(base_url=gateway_url) as http:
            shown = (
                await http.get("/gateway/v1/integrations/routes", headers={"Authorization": f"Bearer {token}"})
            ).json()["routes"][0]
        assert (shown["deadline_ms"], shown["max_body_bytes"], shown["verify"]) == (3000, 2048, None)
        assert shown["inspect"] == {"capture_bodies": False}
        assert shown["status"] == "active"  # saving limits keeps the tunnel's activation

        # Rotate with no grace: a new URL, shown once; the old one stops at once.
        await page.click("#route-rotate")
        await page.fill("#rotate-grace", "0")
        await page.press("#rotate-grace", "Enter")
        await page.wait_for_selector("#once-url")
        rotated = await page.input_value("#once-url")
        assert rotated != public_url and rotated.startswith(f"http://localhost:8080/integrations/{route_id}/")
        assert "stopped working" in await page.inner_text("#modal")
        await page.click("button[data-copy=once-token]")
        await page.wait_for_selector("#copy-status:text('Token copied')")
        assert await page.evaluate("() => navigator.clipboard.readText()") == rotated.rsplit("/", 1)[1]
        await page.click("#modal-actions button:text('Done')")
        async with httpx.AsyncClient(base_url=gateway_url) as http:
            assert (await http.post(ingress, content=b"x")).status_code == 404
            assert (await http.post(urlsplit(rotated).path, content=b"x")).status_code == 200

        # Disable: the tunnel is told, the row says inactive, and a replay now fails with the API's message.
        await page.click("#route-toggle:text('Disable')")
        await row.locator("[data-route-status]:text('inactive')").wait_for()
        await wait_until(lambda: any(f.get("type") == "tunnel.route_deactivated" for f in tunnel.frames))
        await wait_until(lambda: feed_length(page, 5))
        await page.locator("button.feed-item").first.click()  # sent after capture was turned off
        await page.click("#replay")
        await page.wait_for_selector("#replay-error:text('was not captured; it cannot be replayed')")
        await page.locator("button.feed-item").nth(1).click()  # the replay, its body captured
        await page.click("#replay")
        await page.wait_for_selector("#replay-error:text('No tunnel is connected for this route')")
        await page.click("#route-toggle:text('Enable')")
        await row.locator("[data-route-status]:text('provisioned')").wait_for()
    finally:
        await tunnel.stop()

    # Delete, behind a confirmation.
    await page.click("#route-delete")
    assert "Delete this route?" in await page.inner_text("#modal")
    await page.click("#modal-actions button:text('Cancel')")
    assert await row.count() == 1
    await page.click("#route-delete")
    await page.click("#modal-actions button:text('Delete')")
    await page.wait_for_selector("#routes-empty:not([hidden])")
    assert await page.locator("#route-panel").is_hidden()
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        assert (await http.post(urlsplit(rotated).path, content=b"x")).status_code == 404
    assert errors == []
    await context.close()


async def test_buffering_is_edited_in_the_route_settings(gateway_url, browser):
    """The route's `buffer` (webhooks.md §3) is shown in the settings, and what is saved there is what the API then
    returns; an out-of-range value is refused with the API's message."""
    token = await agent_token(gateway_url, "buffer@example.com")
    device_id = f"dev_{uuid.uuid4().hex}"
    await register_device(gateway_url, token, device_id)
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        created = await http.post(
            "/gateway/v1/integrations/routes", json={"device_id": device_id, "interface_type": "http"}, headers=bearer
        )
    route = created.json()["route"]
    assert route["buffer"] == {"enabled": False, "max_requests": 100, "ttl_seconds": 3600}
    page = await browser.new_page()
    await sign_in_page(page, gateway_url, "buffer@example.com")
    await page.click("a[data-view=webhooks]")
    await page.click(f"tr[data-route='{route['route_id']}'] button")
    await page.wait_for_selector("#route-form fieldset[data-buffer]")
    assert not await page.is_checked("#edit-buffer-enabled")
    await page.check("#edit-buffer-enabled")
    await page.fill("#edit-buffer-max", "9")
    await page.fill("#edit-buffer-ttl", "600")
    await page.click("#route-form button[type=submit]")
    await page.wait_for_selector("#route-saved:text('Saved.')")
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        listed = (await http.get("/gateway/v1/integrations/routes", headers=bearer)).json()["routes"]
    (saved,) = [r for r in listed if r["route_id"] == route["route_id"]]
    assert saved["buffer"] == {"enabled": True, "max_requests": 9, "ttl_seconds": 600}
    await page.fill("#edit-buffer-ttl", "5")  # below the documented 60
    await page.click("#route-form button[type=submit]")
    await page.wait_for_selector("#route-error:has-text('ttl_seconds')")  # the API's own message
    await page.close()
