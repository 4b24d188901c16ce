"""Fresh engagement's ages (--older-than)."""

from __future__ import annotations

import pytest

from haiper_sync.errors import ConfigError
from haiper_sync.sync.plan import parse_age


def test_ages() -> None:
    assert parse_age("7d").days == 7 and parse_age(" 12h ").total_seconds() == 43_200
    for bad in ("7", "0d", "1w", "-3d", "d7"):
        with pytest.raises(ConfigError):
            parse_age(bad)
