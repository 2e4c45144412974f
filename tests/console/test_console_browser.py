"""The console in a real browser (docs/protocol/system-and-console.md §5, docs/protocol/decisions.md C1, C2, D2): sign
in, watch an agent come online, an end-to-end encrypted chat round trip, and sharing with a second user who is cut off
on revoke."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.console.conftest import wait_until
from tests.e2ee import AgentSide
from tests.oauth_helpers import pkce_pair

pytestmark = pytest.mark.django_db(transaction=True)


async def sign_in_page(page, base: str, email: str) -> None:
    await page.goto(f"{base}/console")
    await page.click("#sign-in")
    await page.fill("#demo_email", email)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#app:not([hidden])")


async def agent_token(base: str, email: str) -> str:
    """The agent signs in as the same person (the demo uid is derived from the email)."""
    verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(base_url=base) as http:
        answer = await http.post(
            "/oauth/authorize",
            data={
                "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
                "scope": "offline_access device",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "demo_email": email,
            },
        )
        tokens = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": answer.json()["code"],
                "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
                "code_verifier": verifier,
            },
        )
    return tokens.json()["access_token"]


async def create_invite(base: str, device_id: str, email: str) -> str:
    """The owner (owner@example.com) invites `email` through the API; returns the invite token."""
    owner_token = await agent_token(base, "owner@example.com")
    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post(
            "/gateway/v1/shares/invites",
            json={"deviceId": device_id, "email": email},
            headers={"Authorization": f"Bearer {owner_token}"},
        )
    return str(created.json()["inviteUrl"].rsplit("/", 1)[1])


class Agent:
    """A simulated agent: registers its identity key, holds the socket, acks handshakes, answers prompts."""

    def __init__(self, base: str, token: str, device_id: str, name: str) -> None:
        self.base, self.token, self.device_id, self.name = base, token, device_id, name
        self.keys = AgentSide.new()
        self.task: asyncio.Task | None = None
        self.ws: ClientConnection | None = None

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base) as http:
            response = await http.put(
                f"/gateway/v1/devices/{self.device_id}/identity-key",
                headers=headers,
                json={"algorithm": "ed25519", "public_key": self.keys.identity_b64, "display_name": self.name},
            )
            assert response.status_code == 204
        url = self.base.replace("http://", "ws://") + f"/gateway/v1/agent/connect?device_id={self.device_id}"
        self.ws = await websockets.connect(url, additional_headers={**headers, "X-Device-Id": self.device_id})
        self.task = asyncio.ensure_future(self.loop())

    async def loop(self) -> None:
        ws = self.ws
        assert ws is not None, "start() opens the socket before it runs the loop"
        async with httpx.AsyncClient(base_url=self.base) as http:
            async for text in ws:
                frame = json.loads(text)
                if frame["type"] == "session.handshake.request":
                    ack = self.keys.ack(frame)
                    await http.post(
                        f"/gateway/v1/sessions/{frame['session_id']}/handshake/agent-ack",
                        json=ack,
                        headers={"Authorization": f"Bearer {self.token}"},
                    )
                    await ws.send(
                        json.dumps(
                            {"type": "session.handshake.ack", "status": "ok", "session_id": frame["session_id"], **ack}
                        )
                    )
                elif frame["type"] == "session.message":
                    prompt = self.keys.read(frame)["prompt"]
                    sid, mid = frame["session_id"], frame["message_id"]
                    await ws.send(json.dumps(self.keys.reply(sid, "session.progress", mid, {"status": "running"})))
                    await ws.send(
                        json.dumps(
                            self.keys.reply(
                                sid, "session.result", mid, {"result": f"Agent says: {prompt[::-1]}", "turns": 1}
                            )
                        )
                    )

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        if self.ws:
            await self.ws.close()


async def test_sign_in_shows_the_dashboard(gateway_url, browser, screenshot):
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{gateway_url}/console")
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.inner_text("#login h1") == "Commands Gateway"
    assert "Sign in to access the console" in await page.inner_text("#login")
    await screenshot(page, "sign-in")
    await page.click("#sign-in")
    assert "Demo Mode" in await page.content()
    await page.fill("#demo_email", "alice@example.com")
    await page.click("button[type=submit]")
    await page.wait_for_selector(".tile[data-tile=devices]")
    assert await page.inner_text("#user-label") == "alice@example.com"
    assert urlsplit(page.url).query == ""  # the code was stripped from the address
    labels = await page.locator(".tile .label").all_inner_texts()
    assert labels == [
        "Devices",
        "Agents Online",
        "Sessions",
        "Routes",
        "Tunnels",
        "Inflight",
        "Grants",
        "Event Backlogs",
    ]
    stored = await page.evaluate(
        "() => [sessionStorage.getItem('gw_console_auth'), localStorage.length, document.cookie]"
    )
    assert json.loads(stored[0])["refresh_token"] and stored[1] == 0 and stored[2] == ""  # C2
    await screenshot(page, "dashboard")
    assert errors == []


async def test_refresh_keeps_the_rotated_token(gateway_url, browser):
    page = await browser.new_page()
    await sign_in_page(page, gateway_url, "alice@example.com")
    first = json.loads(await page.evaluate("() => sessionStorage.getItem('gw_console_auth')"))
    for _ in range(2):  # two refreshes in a row: the second would fail if the first's rotation were dropped (C1)
        await page.evaluate(
            "async () => { const m = await import('/console/assets/api.js'); await m.refreshTokens(); }"
        )
    after = json.loads(await page.evaluate("() => sessionStorage.getItem('gw_console_auth')"))
    assert after["refresh_token"] != first["refresh_token"] and after["access_token"]
    await page.click("a[data-view=devices]")
    await page.wait_for_selector("#devices-live:text('Live')")


async def test_concurrent_refreshes_share_one_rotation(gateway_url, browser):
    """decisions.md H6: two refreshes at once are one rotation, so the family survives and the user stays in."""
    page = await browser.new_page()
    await sign_in_page(page, gateway_url, "alice@example.com")
    await page.evaluate(
        "async () => { const m = await import('/console/assets/api.js');"
        " await Promise.all([m.refreshTokens(), m.refreshTokens(), m.refreshTokens()]); }"
    )
    after = json.loads(await page.evaluate("() => sessionStorage.getItem('gw_console_auth')"))
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        still = await http.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": after["refresh_token"]}
        )
    assert still.status_code == 200  # no replay was detected: the family is alive


async def test_sign_out_revokes_the_refresh_token(gateway_url, browser):
    page = await browser.new_page()
    await sign_in_page(page, gateway_url, "alice@example.com")
    tokens = json.loads(await page.evaluate("() => sessionStorage.getItem('gw_console_auth')"))
    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in")
    assert await page.evaluate("() => sessionStorage.getItem('gw_console_auth')") is None
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        refreshed = await http.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_agent_online_and_encrypted_chat(gateway_url, browser, screenshot):
    page = await browser.new_page()
    await sign_in_page(page, gateway_url, "alice@example.com")
    device_id = f"dev_{uuid.uuid4().hex}"
    agent = Agent(gateway_url, await agent_token(gateway_url, "alice@example.com"), device_id, "office-mac")
    await page.click("a[data-view=devices]")
    await page.wait_for_selector("#devices-live:text('Live')")
    await agent.start()
    try:
        row = page.locator(f"li[data-device='{device_id}']")
        await row.locator(".dot.online").wait_for()
        assert "Online" in await row.inner_text()
        await screenshot(page, "devices")
        await row.click()
        await page.wait_for_selector("[data-fingerprint]")
        assert "ed25519" in await page.inner_text("#modal")
        await page.click("#modal-actions button:text('New Session')")
        await page.wait_for_selector(".msg.system:text('E2E encryption established')")
        await page.fill("#chat-input", "hello agent")
        await page.press("#chat-input", "Enter")
        await page.wait_for_selector(".msg.agent:text('Agent says: tnega olleh')")
        assert await page.locator(".msg.progress").count() == 1
        # Drop the event stream; it resumes with Last-Event-ID and shows each reply exactly once.
        await page.evaluate("() => window.gatewayConsole.dropStreams()")
        await page.fill("#chat-input", "second")
        await page.press("#chat-input", "Enter")
        await page.wait_for_selector(".msg.agent:text('Agent says: dnoces')", timeout=15000)
        assert await page.locator(".msg.agent").count() == 2
        assert "encrypted" in await page.inner_text("#chat-status")
        await screenshot(page, "sessions")
    finally:
        await agent.stop()


async def test_sharing_accept_chat_and_revoke(gateway_url, browser, screenshot):
    owner_ctx, bob_ctx = await browser.new_context(), await browser.new_context()
    owner, bob = await owner_ctx.new_page(), await bob_ctx.new_page()
    device_id = f"dev_{uuid.uuid4().hex}"
    agent = Agent(gateway_url, await agent_token(gateway_url, "owner@example.com"), device_id, "build-box")
    await agent.start()
    try:
        await sign_in_page(owner, gateway_url, "owner@example.com")
        await owner.click("a[data-view=shares]")
        await owner.click("#new-invite")
        await owner.select_option("#invite-device", device_id)
        await owner.fill("#invite-email", "bob@example.com")
        await owner.click("#modal-actions button:text('Create')")
        invite_url = await owner.input_value("#invite-url")
        assert re.fullmatch(r"http://localhost:8080/share/[A-Za-z0-9_-]{43}", invite_url)
        await screenshot(owner, "invite")
        await owner.click("#modal-actions button:text('Done')")

        # Bob opens the link (served by this gateway), signs in, and accepts.
        await bob.goto(gateway_url + urlsplit(invite_url).path)
        assert "owner@example.com" in await bob.content() and "build-box" in await bob.content()
        await bob.click("text=Accept in the console")
        await bob.click("#sign-in")
        await bob.fill("#demo_email", "bob@example.com")
        await bob.click("button[type=submit]")
        await bob.wait_for_selector("#view-accept:not([hidden])")
        await bob.wait_for_selector("#accept-text:text('owner@example.com invited you')")
        assert "build-box" in await bob.inner_text("#accept-text")
        await screenshot(bob, "accept")
        await bob.click("#accept-button")
        await bob.wait_for_selector(f"li[data-device='{device_id}'] .dot.online")
        assert "collaborator" in await bob.inner_text(f"li[data-device='{device_id}']")

        # Bob chats with the shared device.
        await bob.click(f"li[data-device='{device_id}'] button:text('Session')")
        await bob.wait_for_selector(".msg.system:text('E2E encryption established')")
        await bob.fill("#chat-input", "from bob")
        await bob.press("#chat-input", "Enter")
        await bob.wait_for_selector(".msg.agent:text('Agent says: bob morf')")

        # The owner sees the grant and revokes it; Bob is cut off at once.
        await owner.click("a[data-view=dashboard]")
        await owner.click("a[data-view=shares]")
        grant = owner.locator(f"[data-share-device='{device_id}'] .grant")
        await grant.locator(".pill:text('active')").wait_for()
        assert "bob@example.com" in await grant.inner_text()
        await screenshot(owner, "shares")
        await grant.locator("button:text('Revoke')").click()
        await owner.click("#modal-actions button:text('Revoke')")
        await bob.wait_for_selector(".msg.system:text('The owner stopped sharing this device with you.')")
        assert not await bob.is_visible("#chat-form")
        await owner.locator(f"[data-share-device='{device_id}'] details summary:text('1 revoked/expired')").wait_for()
        await bob.click("a[data-view=shares]")
        await bob.wait_for_selector("#shared-with-me li:text('Nothing is shared with you.')")
    finally:
        await agent.stop()
        await owner_ctx.close()
        await bob_ctx.close()


async def test_errors_are_shown_in_words(gateway_url, browser):
    device_id = f"dev_{uuid.uuid4().hex}"
    agent = Agent(gateway_url, await agent_token(gateway_url, "owner@example.com"), device_id, "laptop")
    await agent.start()
    try:
        token = await create_invite(gateway_url, device_id, "carol@example.com")
        page = await browser.new_page()
        await page.goto(f"{gateway_url}/console#/share/{token}")
        await page.click("#sign-in")
        await page.fill("#demo_email", "mallory@example.com")
        await page.click("button[type=submit]")
        await page.click("#accept-button")
        await wait_until(lambda: page.inner_text("#accept-error"))
        assert await page.inner_text("#accept-error") == (
            "This invitation was sent to a different email address. Sign in with that address to accept it."
        )
    finally:
        await agent.stop()


async def test_grantee_leaves_a_shared_device(gateway_url, browser):
    device_id = f"dev_{uuid.uuid4().hex}"
    agent = Agent(gateway_url, await agent_token(gateway_url, "owner@example.com"), device_id, "shared-box")
    await agent.start()
    try:
        token = await create_invite(gateway_url, device_id, "dave@example.com")
        async with httpx.AsyncClient(base_url=gateway_url) as http:
            dave_token = await agent_token(gateway_url, "dave@example.com")
            accepted = await http.post(
                "/gateway/v1/shares/invites/accept",
                json={"token": token},
                headers={"Authorization": f"Bearer {dave_token}"},
            )
            assert accepted.status_code == 200
        page = await browser.new_page()
        await sign_in_page(page, gateway_url, "dave@example.com")
        await page.click("a[data-view=shares]")
        row = page.locator(f"#shared-with-me li[data-shared='{device_id}']")
        assert "owner@example.com" in await row.inner_text()
        await row.locator("button:text('Leave')").click()
        await page.click("#modal-actions button:text('Leave')")
        await page.wait_for_selector("#shared-with-me li:text('Nothing is shared with you.')")
    finally:
        await agent.stop()
