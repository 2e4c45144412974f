"""The in-memory database is one database for the whole process and takes concurrent writers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from oauthapp.models import User

THREADS = 8
WRITES = 50


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_from_several_threads_all_succeed():
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        start.wait()
        try:
            for i in range(WRITES):
                # A read then a write in one transaction: the read->write upgrade that deferred
                # transactions cannot survive under contention.
                with transaction.atomic():
                    User.objects.count()
                    User.objects.create(uid=f"t{n}-{i}")
                connection.close()  # as at the end of every request
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert User.objects.filter(uid__startswith="t").count() == THREADS * WRITES


@pytest.mark.django_db(transaction=True)
def test_data_survives_the_end_of_a_request_connection():
    User.objects.create(uid="kept")
    connection.close()
    seen = []

    def read_on_a_fresh_connection() -> None:
        seen.append(User.objects.filter(uid="kept").exists())
        connection.close()

    thread = threading.Thread(target=read_on_a_fresh_connection)
    thread.start()
    thread.join(timeout=30)
    assert seen == [True]
