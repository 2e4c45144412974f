"""One background thread that gives memory back once a burst is over.

Expired entries of the bounded stores go at every write, but after an attack stops nothing writes: the thread drops
them every few seconds. And glibc keeps freed heap memory in its arenas (large buffers freed by a relay burst or a
cut stream reader) unless asked to return it: `malloc_trim(0)` hands it back to the operating system, so resident
memory comes down after a burst instead of staying at its peak (docs/performance.md, memory under attack).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable

from gateway_site import boundedstore

logger = logging.getLogger("gateway")

INTERVAL_SECONDS = 5.0
_started = False
_lock = threading.Lock()


def _malloc_trim() -> Callable[[], None]:
    """`malloc_trim(0)` where the C library has it (glibc), else a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: None if trim(0) else None


def run_once(trim: Callable[[], None]) -> None:
    boundedstore.purge_all()
    trim()


def start() -> None:
    """Start the thread (once per process); it is a daemon and never keeps the process alive."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    trim = _malloc_trim()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(INTERVAL_SECONDS):
            try:
                run_once(trim)
            except Exception:  # housekeeping must never take the process down
                logger.exception("housekeeping failed")

    threading.Thread(target=loop, name="gateway-housekeeping", daemon=True).start()
