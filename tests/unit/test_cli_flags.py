"""Mistakes on the command line, said in one line before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main


def test_a_mistyped_flag_is_named_with_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sync", "--manifset", "ids.txt"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "haiper-sync sync: error: unknown flag --manifset (did you mean --manifest?)"


def test_a_prefix_of_a_flag_is_still_that_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sync", "--manifest-f", "csv", "--manifest", "nope.csv"]) == 1
    assert "unknown flag" not in capsys.readouterr().err


def test_a_missing_manifest_says_where_it_was_looked_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HAIPER_API_KEY", "k")
    assert main(["sync", "--manifest", "manifests/nope.txt"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        "haiper-sync: manifest manifests/nope.txt: no such file "
        f"(looked in {tmp_path / 'manifests'})"
    )
