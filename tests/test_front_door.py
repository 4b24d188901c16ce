"""The front door: a user's mistakes are caught before Prefect starts and told in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from haiper_sync.simulator import SimulatorServer, generate_ids

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(generate_ids(5, seed=71)) + "\n")
    return path


def our_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (["--concurrency", "0"], {}, "--concurrency must be between 1 and 256 (got 0)"),
        (["--rate-limit", "0"], {}, "--rate-limit must be between 1 and 1,000,000 (got 0)"),
        (["--rate-limit", "-5"], {}, "--rate-limit must be between 1 and 1,000,000 (got -5)"),
        (["--chunk-size", "20000"], {}, "--chunk-size must be between 0 and 10,000 (got 20000)"),
        ([], {"HAIPER_CONCURRENCY": "999"}, "HAIPER_CONCURRENCY: Input should be less than or"),
        ([], {"HAIPER_RATE_LIMIT": "-5"}, "HAIPER_RATE_LIMIT: Input should be greater than or"),
        (["--api-url", "localhost:8765"], {}, "--api-url must be an http(s) URL"),
        ([], {"HAIPER_API_URL": "ftp://files"}, "HAIPER_API_URL must be an http(s) URL"),
        ([], {"HAIPER_API_KEY": ""}, "no API key: export HAIPER_API_KEY"),
    ],
)
def test_a_mistake_is_one_line_before_anything_starts(
    flags: list[str],
    env: dict[str, str],
    expected: str,
    manifest: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAIPER_API_KEY", "k")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "out.duckdb"
    code = main(["sync", "--manifest", str(manifest), "--db", str(db), *flags])
    lines = our_lines(capsys.readouterr().err)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"haiper-sync: {expected}")
    assert not db.exists()


def test_db_pointing_at_a_directory_is_named(
    manifest: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAIPER_API_KEY", "k")
    code = main(["sync", "--manifest", str(manifest), "--db", str(tmp_path)])
    lines = our_lines(capsys.readouterr().err)
    example = tmp_path / "haiper.duckdb"
    assert code == 1
    assert lines == [f"haiper-sync: --db {tmp_path} is a directory; give a file, e.g. {example}"]


def test_a_refused_flag_never_loads_prefect(manifest: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from cli.main import main\n"
        f"code = main(['sync', '--manifest', {str(manifest)!r}, '--rate-limit', '0'])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'prefect'}))\n"
    )
    env = os.environ | {"HAIPER_API_KEY": "k"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split("\n")[0] == "1 []"


@pytest.mark.integration
def test_a_wrong_key_is_one_line_without_a_traceback(
    sim: SimulatorServer, manifest: Path, tmp_path: Path
) -> None:
    env = os.environ | {
        "HAIPER_API_KEY": "not-the-key",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", "--manifest", str(manifest),
         "--db", str(tmp_path / "k.duckdb"), "--api-url", sim.url],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    # Prefect's own INFO lines come and go around it; ours is the one line that says why.
    ours = [line for line in out.stderr.splitlines() if line.startswith("haiper-sync:")]
    assert ours == [
        f"haiper-sync: sync failed: the API at {sim.url} refused the key "
        "(HTTP 401: invalid API key); check HAIPER_API_KEY"
    ]
    assert "not-the-key" not in out.stderr + out.stdout


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_server", "api_key_env")
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "creation_id,prompt,created\nabc-1,a cat,2026-01-01\nabc-2,a dog,2026-01-02\n",
            "no valid creation ID among 3 entries, e.g. line 1: 'creation_id,prompt,created'; "
            "a manifest holds one creation ID per line",
        ),
        ('["abc-1", "abc-2"]\n', "no valid creation ID among 1 entries, e.g. line 1:"),
        ("", "no creation ID in it (empty, or comments)"),
        ("# only a comment\n\n", "no creation ID in it (empty, or comments)"),
    ],
)
def test_a_manifest_with_no_valid_id_fails_the_run_in_one_line(
    content: str,
    expected: str,
    sim: SimulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import duckdb

    manifest = tmp_path / "ids.csv"
    manifest.write_text(content)
    db = tmp_path / "none.duckdb"
    code = main(["sync", "--manifest", str(manifest), "--db", str(db), "--api-url", sim.url])
    ours = [line for line in capsys.readouterr().err.splitlines() if "haiper-sync:" in line]
    assert code == 1 and len(ours) == 1
    assert ours[0].startswith(f"haiper-sync: sync failed: manifest {manifest}: {expected}")
    assert sim.stats.snapshot()["total"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        state = con.execute("SELECT state, ids_rejected FROM sync_runs").fetchall()
        rejects = con.execute(
            "SELECT count(*) FROM sync_errors WHERE stage = 'manifest'"
        ).fetchone()
    assert state[0][0] == "failed" and rejects == (state[0][1],)
