"""Progress events of a run, for whoever in this process wants them (a CLI progress bar)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` IDs handled so far in run ``run_id``."""

    run_id: str
    done: int
    total: int


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` on every progress event; returns the unsubscribe function."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def publish(event: Progress) -> None:
    """Tell every listener; a failing listener never breaks the run."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        # A progress bar must never be able to fail a sync.
        with contextlib.suppress(Exception):
            listener(event)
