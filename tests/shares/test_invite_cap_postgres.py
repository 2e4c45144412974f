"""The pending-invite cap (docs/protocol/decisions.md H3) on a real PostgreSQL server (tests/postgres_server.py):
concurrent invites for one device, each on a connection of its own, never overshoot it. PostgreSQL's default
isolation (read committed) would let every transaction count the same rows; the device row's lock orders them."""

from __future__ import annotations

import json

from tests.helpers import clean_env, run_manage

RACE = """
import json, threading, uuid
from django.db import connection
from gateway_site.auth import Principal
from gateway_site.errors import TooManyRequests
from relay.models import Device
from shares import services
from shares.models import Grant

device = Device.objects.create(device_id="dev_pg_race_" + uuid.uuid4().hex[:12], owner_uid="race-owner")
owner = Principal("race-owner", "owner@example.com", "", ("device",))
barrier = threading.Barrier(20)
outcomes = []

def attempt(i):
    barrier.wait()
    try:
        services.invite_create(principal=owner, body={"deviceId": device.device_id, "email": f"g{i}@example.com"})
        outcomes.append("created")
    except TooManyRequests:
        outcomes.append("refused")
    finally:
        connection.close()

threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=60)
pending = Grant.objects.filter(device=device, status="pending").count()
print(json.dumps({"outcomes": sorted(outcomes), "pending": pending}))
"""


def test_concurrent_invites_on_postgresql_never_exceed_the_cap(postgres_url):
    env = clean_env(DATABASE_URL=postgres_url, MAX_PENDING_INVITES_PER_DEVICE="5")
    migrated = run_manage("migrate", "--no-input", env=env, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    raced = run_manage("shell", "-c", RACE, env=env, timeout=120)
    assert raced.returncode == 0, raced.stderr
    result = json.loads(raced.stdout.strip().splitlines()[-1])
    assert result == {"outcomes": ["created"] * 5 + ["refused"] * 15, "pending": 5}
