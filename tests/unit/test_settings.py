"""Every default and bound lives in `Settings`; the README's table and the checks derive from it."""

from __future__ import annotations

import re

import pytest

from haiper_sync.api.breaker import CircuitBreaker
from haiper_sync.api.client import Timeouts
from haiper_sync.api.engine import ApiConfig
from haiper_sync.api.retry import RetryPolicy
from haiper_sync.errors import ConfigError
from haiper_sync.settings import DEFAULTS, Settings, bounds, load_settings, settings_table
from tests.support.paths import ROOT


def test_the_readme_table_is_the_model() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_table() in readme, "run `python -m haiper_sync.settings` into the README"
    documented = set(re.findall(r"^\| `(HAIPER_[A-Z_]+)` \|", readme, flags=re.M))
    assert documented == {"HAIPER_" + name.upper() for name in Settings.model_fields}


def test_every_setting_says_what_it_is() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_the_core_takes_its_defaults_from_the_settings() -> None:
    config = ApiConfig(api_url="http://x")
    assert (config.concurrency, config.rate_limit, config.rate_window) == (
        DEFAULTS.concurrency,
        DEFAULTS.rate_limit,
        DEFAULTS.rate_window,
    )
    assert Timeouts() == Timeouts(
        DEFAULTS.connect_timeout, DEFAULTS.read_timeout, DEFAULTS.request_deadline
    )
    assert RetryPolicy().max_attempts == DEFAULTS.max_attempts
    assert RetryPolicy().max_retry_after == DEFAULTS.max_retry_after
    breaker = CircuitBreaker("http://x")
    assert (breaker.threshold, breaker.min_seconds) == (
        DEFAULTS.breaker_threshold,
        DEFAULTS.breaker_seconds,
    )


def test_bounds_come_from_the_fields() -> None:
    assert bounds("concurrency") == (1, 256)
    assert bounds("rate_limit") == (1, 1_000_000)
    assert bounds("lock_timeout") == (0, None)
    assert bounds("db") == (None, None)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HAIPER_RATE_LIMIT", "5000000", "HAIPER_RATE_LIMIT must be between 1 and 1,000,000"),
        ("HAIPER_CONCURRENCY", "0", "HAIPER_CONCURRENCY must be between 1 and 256 (got 0)"),
        ("HAIPER_LOCK_TIMEOUT", "-1", "HAIPER_LOCK_TIMEOUT must be at least 0 (got -1)"),
        ("HAIPER_TASK_RUNNER", "ray", "HAIPER_TASK_RUNNER: Input should be 'threads' or 'dask'"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(
    variable: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)
