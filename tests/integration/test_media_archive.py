"""The media archive over real HTTP (the simulator), a real DuckDB file, a real directory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from haiper_sync.api.client import HaiperClient
from haiper_sync.media import ArchiveProgress, archive_media, detail_refresher
from haiper_sync.settings import Settings
from haiper_sync.simulator import SimulatorConfig, SimulatorServer
from haiper_sync.store.connection import open_database
from tests.integration.media_helpers import (
    KEY,
    expected_files,
    local_files,
    seed_database,
    served_path,
    succeeded_ids,
    table_text,
)
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.integration
IDS = succeeded_ids(6)
SETTINGS = Settings(media_concurrency=4, max_attempts=4)


class Sleeps:
    """An async sleep that only records: retries wait no wall time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _server(**media: object) -> SimulatorServer:
    config = SimulatorConfig(api_keys=frozenset({KEY}), media_ttl=3600.0, **media)  # type: ignore[arg-type]
    return SimulatorServer(config)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with _server() as server:
        yield server


def _archive(db: Path, dest: str, **kw: object) -> object:
    kw.setdefault("settings", SETTINGS)
    kw.setdefault("sleep", Sleeps())
    return asyncio.run(archive_media(db, dest, **kw))  # type: ignore[arg-type]


def test_every_file_arrives_whole_once_and_a_rerun_fetches_nothing(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    details = seed_database(sim, db, IDS)
    want = expected_files(details)
    seen: list[ArchiveProgress] = []

    summary = _archive(db, str(dest), run_id="run-1", progress=seen.append)

    assert local_files(dest) == want
    assert summary.files_archived == summary.files_planned == len(want)  # type: ignore[attr-defined]
    assert summary.bytes_archived == sum(b for b, _ in want.values())  # type: ignore[attr-defined]
    assert (summary.files_failed, summary.files_not_archived, summary.files_skipped) == (0, 0, 0)  # type: ignore[attr-defined]
    assert seen[-1].files_done == len(want) and seen[-1].bytes_received >= summary.bytes_archived  # type: ignore[attr-defined]
    media = sim.stats.media_snapshot()
    assert media["with_authorization"] == 0
    assert media["requests"] == len(want)
    with open_database(db, read_only=True) as con:
        rows = con.execute(
            "SELECT stored_url, bytes, sha256, attempts, source_url, content_type "
            "FROM creation_media ORDER BY 1"
        ).fetchall()
        assert con.execute("SELECT count(*) FROM media_not_archived").fetchall() == [(0,)]
        flat = con.execute(
            "SELECT count(*) FROM outputs_flat WHERE media_stored_url IS NOT NULL"
        ).fetchall()
    assert {(Path(u).relative_to(dest.resolve()).as_posix(), (b, s)) for u, b, s, *_ in rows} == {
        (k, v) for k, v in want.items()
    }
    assert all(attempts == 1 and "?" not in source for *_, attempts, source, _ in rows)
    assert flat == [(sum(len(d["outputs"]) for d in details.values()),)]
    for table in ("creation_media", "sync_errors"):
        text = table_text(db, table)
        assert "Signature=" not in text and "Expires=" not in text

    again = _archive(db, str(dest))
    assert (again.files_planned, again.files_skipped) == (0, len(want))  # type: ignore[attr-defined]
    assert sim.stats.media_snapshot()["requests"] == len(want)


def test_cut_bodies_resets_and_5xx_are_retried_per_file(tmp_path: Path) -> None:
    creation = IDS[0]
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    with _server() as probe:
        details = seed_database(probe, tmp_path / "probe.duckdb", [creation])
    first = details[creation]["outputs"][0]
    faults = {
        served_path(first["media_url"]): "reset*1",
        served_path(details[creation]["thumbnail_url"]): "truncated*2",
        creation: "500*1",  # every other file of the creation: one 500 first
    }
    with _server(media_faults=faults) as sim:
        details = seed_database(sim, db, [creation])
        sleeps = Sleeps()
        summary = _archive(db, str(dest), sleep=sleeps, run_id="r")
    assert local_files(dest) == expected_files(details)
    assert summary.files_failed == 0  # type: ignore[attr-defined]
    assert sleeps.delays and all(d > 0 for d in sleeps.delays)
    with open_database(db, read_only=True) as con:
        attempts = dict(
            con.execute(
                "SELECT split_part(stored_url, '/', -1), attempts FROM creation_media"
            ).fetchall()
        )
    assert (
        attempts[
            f"{first['id']}.mp4"
            if first["media_url"].split("?")[0].endswith("mp4")
            else f"{first['id']}.png"
        ]
        == 2
    )
    assert attempts["cover.jpg"] == 3


def test_a_file_that_keeps_failing_is_a_row_and_an_error_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    creation = IDS[1]
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    with _server(media_faults={creation: "503"}) as sim:
        details = seed_database(sim, db, IDS[:3])
        summary = _archive(db, str(dest), run_id="r-fail")
    failing = [k for k in expected_files(details) if k.startswith(f"creations/{creation}/")]
    assert summary.files_failed == len(failing)  # type: ignore[attr-defined]
    assert summary.files_archived == len(expected_files(details)) - len(failing)  # type: ignore[attr-defined]
    assert not (dest / "creations" / creation).exists()
    with open_database(db, read_only=True) as con:
        errors = con.execute(
            "SELECT creation_id, stage, http_status, deferred FROM sync_errors"
        ).fetchall()
        left = con.execute("SELECT count(*), min(attempts) FROM media_not_archived").fetchall()
    assert errors == [(creation, "media", 503, True)]
    assert left == [(len(failing), SETTINGS.max_attempts)]


def test_expired_links_cost_one_detail_request_per_creation(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    ids = IDS[:4]
    with _server(wall_clock=clock) as sim:
        details = seed_database(sim, db, ids)
        clock.now += 7200  # every stored link is now past its Expires=

        async def run() -> object:
            client = HaiperClient(sim.url, SecretStr(KEY))
            async with client:
                refresher = detail_refresher(client, db, run_id="r-refresh")
                return await archive_media(
                    db,
                    str(dest),
                    settings=SETTINGS,
                    refresher=refresher,
                    clock=clock,
                    sleep=Sleeps(),
                )

        before = {i: sim.stats.requests_for("detail", i) for i in ids}
        summary = asyncio.run(run())
        assert {i: sim.stats.requests_for("detail", i) - before[i] for i in ids} == dict.fromkeys(
            ids, 1
        )
        assert sim.stats.media_snapshot()["by_status"] == {"200": len(expected_files(details))}
    assert summary.links_refreshed == len(ids)  # type: ignore[attr-defined]
    assert local_files(dest) == expected_files(details)
    with open_database(db, read_only=True) as con:
        fresh = con.execute("SELECT min(video_url) FROM creations").fetchall()[0][0]
    assert int(fresh.split("Expires=")[1].split("&")[0]) > clock.now  # the fresh links are kept


def test_a_link_the_cdn_refuses_is_refreshed_once_with_the_hook(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    ids = IDS[:3]
    with _server(wall_clock=clock) as sim:
        details = seed_database(sim, db, ids)
        clock.now += 7200  # the simulator says 403; the archive's own clock does not know
        calls: list[str] = []
        fresh = {i: seed_database(sim, tmp_path / f"fresh-{i}.duckdb", [i])[i] for i in ids}

        async def refresher(creation_id: str) -> dict[tuple[str | None, str], str]:
            calls.append(creation_id)
            value = fresh[creation_id]
            links: dict[tuple[str | None, str], str] = {(None, "cover"): value["thumbnail_url"]}
            for o in value["outputs"]:
                links[(o["id"], "media")] = o["media_url"]
                if "thumbnail_url" in o:
                    links[(o["id"], "thumbnail")] = o["thumbnail_url"]
            return links

        summary = _archive(db, str(dest), refresher=refresher, clock=lambda: 0.0)
        refused = sim.stats.media_snapshot()["by_status"]["403"]
    assert sorted(calls) == sorted(ids)
    assert summary.files_failed == 0 and refused >= len(ids)  # type: ignore[attr-defined]
    assert local_files(dest) == expected_files(details)

    # Without a refresher, a refused link is that file's error, and nothing is kept.
    clock.now += 7200
    db2 = tmp_path / "h2.duckdb"
    with _server(wall_clock=clock) as sim:
        seed_database(sim, db2, ids[:1])
        clock.now += 7200
        failed = _archive(db2, str(tmp_path / "other"), clock=lambda: 0.0)
    assert failed.files_archived == 0 and failed.files_failed > 0  # type: ignore[attr-defined]
    assert "refused the link (HTTP 403)" in table_text(db2, "creation_media")


def test_a_file_over_the_cap_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    creation = IDS[2]
    with _server(media_sizes={creation: 3_000_000}) as sim:
        seed_database(sim, db, [creation])
        summary = _archive(
            db, str(dest), settings=Settings(media_max_bytes=1_000_000, media_concurrency=2)
        )
    assert summary.files_archived == 0 and summary.files_failed > 0  # type: ignore[attr-defined]
    assert "over the cap" in table_text(db, "creation_media")
    assert not dest.exists() or local_files(dest) == {}
