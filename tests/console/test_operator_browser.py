"""The operator console in a real browser (docs/operations.md): a sign-in link opens it, the lists show a real user,
agent and route, and every action, confirmed in a dialog, really happens: the agent's socket closes, the route's
webhooks are refused and then answered again, a rotated token replaces the old URL, a revoked user can no longer
refresh. Screenshots for the README come from here."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
import pytest

from gateway_site.operator import mint_login_token
from tests.console.conftest import wait_until
from tests.operator_helpers import LiveUser

pytestmark = pytest.mark.django_db(transaction=True)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.actions: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "operator action":
            self.actions.append(record.__dict__["fields"])


@pytest.fixture
def audit():
    handler = Lines()
    logging.getLogger("gateway.audit").addHandler(handler)
    yield handler
    logging.getLogger("gateway.audit").removeHandler(handler)


async def confirm(page, selector: str) -> None:
    await page.click(selector)
    await page.wait_for_selector("#confirm[open]")
    await page.click("#confirm button[data-confirm=yes]")


async def test_the_operator_console_end_to_end(gateway_url, browser, screenshot, audit):
    async with httpx.AsyncClient(base_url=gateway_url, timeout=20) as http:
        carol = await LiveUser(http, gateway_url, "carol@example.com", "dev_ops_carol01").start()
        dave = await LiveUser(http, gateway_url, "dave@example.com", "dev_ops_dave001").start(route=False)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{gateway_url}/console/operator/login#{mint_login_token()}")
            await page.wait_for_selector("#app:not([hidden])")
            assert page.url == f"{gateway_url}/console/operator"  # the link's token left the address bar
            await page.wait_for_selector(".chart[data-chart=agents] svg.spark circle", state="attached")
            assert await page.inner_text(".tile[data-tile=agents] .value") == "2"
            assert await page.inner_text(".tile[data-tile=tunnels] .value") == "1"
            assert await page.inner_text(".tile[data-tile=routes] .value") == "1"
            (cookie,) = [c for c in await page.context.cookies() if c["name"] == "gw_operator"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console/operator"
            assert "gw_operator" not in await page.evaluate("document.cookie")
            await screenshot(page, "operator-live")

            # Users: both, with their emails.
            await page.click("nav a[data-view=users]")
            await page.wait_for_selector(f"tr[data-uid='{dave.uid}']")
            assert "carol@example.com" in await page.inner_text(f"tr[data-uid='{carol.uid}']")
            await screenshot(page, "operator-users")

            # Devices: carol's agent is online; disconnecting it closes its socket.
            await page.click("nav a[data-view=devices]")
            row = f"tr[data-device={carol.device_id}]"
            await page.wait_for_selector(f"{row} .pill.ok")
            await screenshot(page, "operator-devices")
            await page.click(f"{row} button[data-action=disconnect]")
            await page.wait_for_selector("#confirm[open]")
            assert "may reconnect" in await page.inner_text("#confirm-body")
            await page.click("#confirm button:not([data-confirm])")  # Cancel: nothing happens
            assert carol.agent is not None and carol.agent.close_code is None
            await confirm(page, f"{row} button[data-action=disconnect]")
            assert await carol.agent_closed() == (1008, "disconnected_by_operator")
            await page.wait_for_selector(f"{row} button[data-action=disconnect][disabled]")

            # Routes: disable (webhooks 503), enable (200 again), with today's answers counted.
            assert await carol.webhook() == 200
            await page.click("nav a[data-view=routes]")
            route = f"tr[data-route={carol.route_id}]"
            await page.wait_for_selector(f"{route} td[data-count='2xx']")
            assert await page.inner_text(f"{route} td[data-count='2xx']") == "1"
            await confirm(page, f"{route} button[data-action=disable]")
            await page.wait_for_selector(f"{route} button[data-action=enable]")
            assert await carol.webhook() == 503
            await page.click("#view-routes .refresh")
            await wait_until(async_equals(page, f"{route} td[data-count='5xx']", "1"))
            await screenshot(page, "operator-routes")
            await confirm(page, f"{route} button[data-action=enable]")
            await page.wait_for_selector(f"{route} button[data-action=disable]")
            assert await carol.webhook() == 200

            # Rotating the token: the new URL is shown once and the old one is gone.
            old_path = carol.route_path
            await confirm(page, f"{route} button[data-action=rotate]")
            new_url = await (await page.wait_for_selector("#rotated-url")).input_value()
            carol.route_path = urlsplit(new_url).path
            assert carol.route_path != old_path and await carol.webhook() == 200
            assert (await http.post(old_path, content=b"{}")).status_code == 404
            await page.click("#confirm-actions button")

            # Revoking dave: his refresh token is dead, his agent disconnected.
            await page.click("nav a[data-view=users]")
            await confirm(page, f"tr[data-uid='{dave.uid}'] button[data-action=revoke]")
            await page.wait_for_selector("#notice:has-text('Revoked')")
            assert f"Revoked {dave.uid}: 1 refresh token(s)" in await page.inner_text("#notice")
            assert (await dave.agent_closed())[0] == 1008
            refreshed = await http.post(
                "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": dave.tokens["refresh_token"]}
            )
            assert refreshed.status_code == 400

            # Signing out ends the session.
            await page.click("#sign-out")
            await page.wait_for_selector("#signin:not([hidden])")
            assert (await page.request.get(f"{gateway_url}/console/operator/api/users")).status == 401
            assert errors == []
        finally:
            await carol.stop()
            await dave.stop()

    assert [(a["action"], a["target"]) for a in audit.actions] == [
        ("disconnect_agent", carol.device_id),
        ("disable_route", carol.route_id),
        ("enable_route", carol.route_id),
        ("rotate_route_token", carol.route_id),
        ("revoke_user", dave.uid),
    ]
    assert len({a["operator"] for a in audit.actions}) == 1


def async_equals(page, selector: str, expected: str):
    async def check() -> bool:
        return await page.inner_text(selector) == expected

    return check


async def test_a_used_or_expired_link_shows_why(gateway_url, browser):
    import time

    page = await browser.new_page()
    token = mint_login_token()
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        assert (await http.post("/console/operator/api/session", json={"token": token})).status_code == 201
    await page.goto(f"{gateway_url}/console/operator/login#{token}")
    await page.wait_for_selector("#signin:not([hidden])")
    assert "already used" in await page.inner_text("#signin-error")
    assert page.url == f"{gateway_url}/console/operator"
    await page.goto(f"{gateway_url}/console/operator/login#{mint_login_token(now=int(time.time()) - 700)}")
    await page.wait_for_selector("#signin-error:has-text('expired')")
    await page.goto(f"{gateway_url}/console/operator")
    await page.wait_for_selector("#signin:not([hidden])")
    assert await page.is_hidden("#email-sign-in-box")  # demo mode: no sign-in by email


async def test_the_charts_draw_a_metrics_history(gateway_url, browser):
    """The Live panel's sparklines take the gateway's history as it will come from the metrics sampler: every series
    of every point, over the last 15 minutes, newest value shown."""
    page = await browser.new_page()
    await page.goto(f"{gateway_url}/console/operator")
    drawn = await page.evaluate(
        """async () => {
            const charts = await import("/console/assets/charts.js");
            const now = Date.now() / 1000;
            const keys = charts.SERIES.map(([key]) => key);
            const history = Array.from({ length: 90 }, (_, i) => {
                const point = { t: new Date((now - 900 + i * 10) * 1000).toISOString() };
                keys.forEach((key, k) => { point[key] = (i * (k + 1)) % 17; });
                return point;
            });
            history.push({ t: now - 2000, agents: 999 });  // older than the window: not drawn
            const box = document.createElement("div");
            document.body.append(box);
            const count = charts.renderCharts(box, history, now);
            const points = [...box.querySelectorAll("polyline")].map((p) => p.getAttribute("points").split(" ").length);
            const latest = box.querySelector("[data-chart=relay_p99_ms] .value").textContent;
            return { count, points, latest, keys };
        }"""
    )
    assert drawn["count"] == len(drawn["keys"]) == 10
    assert drawn["points"] == [90] * 10
    assert drawn["latest"] == f"{(89 * 10) % 17} ms"
