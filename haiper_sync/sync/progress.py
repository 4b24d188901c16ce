"""Progress events of a run, for whoever in this process wants them (a CLI progress bar)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from haiper_sync.summary import human_duration


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


def progress_line(done: int, total: int, requests: int, errors: int, elapsed: float) -> str:
    """One line an operator can follow: IDs done of total, requests and their rate, errors so
    far, and the time left at the current rate."""
    share = f" ({100 * done / total:.0f}%)" if total else ""
    minutes = elapsed / 60
    rate = f"{requests / minutes:,.0f}/min" if minutes > 0 else "-"
    if 0 < done < total and elapsed > 0:
        left = (total - done) * elapsed / done
        eta = f"; about {human_duration(left)} left at this rate"
    else:
        eta = ""
    return (
        f"Progress: {done:,} of {total:,} IDs{share}, {requests:,} requests ({rate}), "
        f"{errors:,} errors{eta}"
    )


def media_line(
    files_done: int, files_total: int, files_failed: int, received: int, elapsed: float
) -> str:
    """The archive's progress line: files done of total, megabytes and their rate, failures,
    and the time left at the current rate."""
    share = f" ({100 * files_done / files_total:.0f}%)" if files_total else ""
    rate = f"{received / 1e6 / elapsed:,.1f} MB/s" if elapsed > 0 else "-"
    eta = ""
    if 0 < files_done < files_total and elapsed > 0:
        eta = f"; about {human_duration((files_total - files_done) * elapsed / files_done)} left"
    return (
        f"Media: {files_done:,} of {files_total:,} files{share}, {received / 1e6:,.1f} MB "
        f"({rate}), {files_failed:,} failed{eta}"
    )
