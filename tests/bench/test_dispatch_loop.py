"""bench.dispatch_loop keeps working: both loops run the given number of messages through a handler (no timing
asserted: the script reports costs, it never asserts them)."""

from __future__ import annotations

import asyncio
import json

from channels.utils import await_many_dispatch

from bench import dispatch_loop
from gateway_site.dispatch import dispatch_from


def test_each_loop_runs_its_messages_to_the_end():
    for loop in (await_many_dispatch, dispatch_from):  # the handler stops the loop at the 50th message
        assert asyncio.run(asyncio.wait_for(dispatch_loop.one_run(loop, 50), 10)) > 0


def test_the_script_prints_both_figures(capsys):
    assert dispatch_loop.main(["--messages", "100"]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(figures) == {"channels_await_many_dispatch", "gateway_dispatch_from"}
    assert all(value > 0 for value in figures.values())
