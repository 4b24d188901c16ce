"""Which clauses pick a run's to-do list, for each combination of the run's options."""

from __future__ import annotations

from datetime import timedelta

import pytest

from haiper_sync.statuses import NOT_FOUND
from haiper_sync.sync.plan import TodoFilter, todo_filter

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("refresh", "recheck_all", "older_than", "applies"),
    [
        # refresh: every ID is done again, status first; nothing is finished or not due.
        (True, False, None, set()),
        (True, True, None, set()),
        (True, False, DAY, set()),
        (True, True, DAY, set()),
        # The default: finished and not-yet-due IDs are left out.
        (False, False, None, {"needs_status", "finished", "not_due"}),
        # recheck_all: every ID is due (and not_found is asked again).
        (False, True, None, {"needs_status", "finished"}),
        # refresh_older_than: old details are stale, fetched again last.
        (False, False, DAY, {"needs_status", "finished", "not_due", "stale"}),
        (False, True, DAY, {"needs_status", "finished", "stale"}),
    ],
)
def test_which_clauses_apply(
    refresh: bool, recheck_all: bool, older_than: timedelta | None, applies: set[str]
) -> None:
    keep = todo_filter(refresh, recheck_all, older_than)
    clauses = {"needs_status", "finished", "not_due", "stale"}
    assert {name for name in clauses if getattr(keep, name) is not None} == applies


@pytest.mark.parametrize(("recheck_all", "given_up"), [(False, True), (True, False)])
def test_not_found_is_finished_unless_rechecking_all(recheck_all: bool, given_up: bool) -> None:
    finished = todo_filter(False, recheck_all).finished
    assert finished is not None
    assert (f"'{NOT_FOUND}'" in finished) is given_up


def test_a_stale_detail_is_not_finished_and_its_age_is_in_seconds() -> None:
    keep = todo_filter(False, False, timedelta(hours=2))
    assert keep.stale is not None and "to_seconds(7200)" in keep.stale
    assert keep.finished is not None and keep.finished.endswith(f"AND NOT ({keep.stale})")


def test_the_filter_is_a_frozen_value() -> None:
    keep = todo_filter(False)
    assert keep == todo_filter(False, False, None)
    with pytest.raises(AttributeError):
        keep.stale = "TRUE"  # type: ignore[misc]
    assert isinstance(keep, TodoFilter)
