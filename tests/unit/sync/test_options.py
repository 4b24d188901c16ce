"""One resolver for the CLI and the flow: given, else HAIPER_* of this process, else default."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from haiper_sync.errors import ConfigError
from haiper_sync.settings import DEFAULTS, Settings
from haiper_sync.sync.options import flow_parameters, given_by_flow, resolve


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_given_beats_the_environment_which_beats_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAIPER_RATE_LIMIT", "120")
    monkeypatch.setenv("HAIPER_DB", "/data/env.duckdb")
    options = resolve({"manifest": "m.txt", "concurrency": 4})
    assert options.concurrency == 4  # given
    assert options.rate_limit == 120  # HAIPER_RATE_LIMIT
    assert options.db_path == "/data/env.duckdb"  # HAIPER_DB
    assert options.api_url == DEFAULTS.api_url  # the default
    assert options.chunk_size == 0 and options.requested_chunk_size == 250


def test_the_flow_means_not_given_by_0_and_empty() -> None:
    given = given_by_flow(
        {"manifest": "m", "db_path": "", "concurrency": 0, "max_requests": 0, "refresh": False}
    )
    assert given == {
        "manifest": "m",
        "db_path": None,
        "concurrency": None,
        "max_requests": None,
        "refresh": False,
    }
    options = resolve(given, settings=Settings(rate_limit=60))
    assert options.rate_limit == 60 and options.max_requests is None and not options.refresh


@pytest.mark.parametrize(
    ("given", "settings", "expected"),
    [
        ({"concurrency": 0}, {}, "--concurrency must be between 1 and 256 (got 0)"),
        ({"rate_limit": 5_000_000}, {}, "--rate-limit must be between 1 and 1,000,000"),
        ({}, {"rate_limit": 5_000_000}, "HAIPER_RATE_LIMIT must be between 1 and 1,000,000"),
        ({"chunk_size": 20_000}, {}, "--chunk-size must be between 0 and 10,000 (got 20000)"),
        ({"api_url": "localhost:8765"}, {}, "--api-url must be an http(s) URL"),
        ({}, {"api_url": "ftp://files"}, "HAIPER_API_URL must be an http(s) URL"),
        ({"max_requests": 0}, {}, "--max-requests must be at least 1 (got 0)"),
        ({"max_error_ratio": 1.5}, {}, "--max-error-ratio must be between 0 and 1 (got 1.5)"),
        ({"refresh_older_than": "soon"}, {}, "--refresh-older-than: not an age: 'soon'"),
    ],
)
def test_a_mistake_names_where_it_came_from(
    given: dict[str, object], settings: dict[str, Any], expected: str
) -> None:
    # model_construct: a bad value in the environment, as load_settings would refuse it too.
    with pytest.raises(ConfigError) as caught:
        resolve(
            {"manifest": "m", **given}, settings=Settings.model_construct(**settings), label=flag
        )
    assert str(caught.value).startswith(expected)


def test_flow_parameters_round_trip() -> None:
    options = resolve(
        {
            "manifest": "m",
            "max_requests": 70,
            "refresh_older_than": "7d",
            "strategy": "detail-first",
        },
        settings=Settings(),
    )
    assert options.refresh_older_than == timedelta(days=7) and options.detail_first
    again = resolve(given_by_flow(flow_parameters(options)), settings=Settings())
    assert again == options
    assert "lock_timeout" not in flow_parameters(options)
