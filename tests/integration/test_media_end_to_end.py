"""The media archive end to end: `haiper-sync sync --archive-media`, `haiper-sync archive`,
the flow's `archive_media=`, into a directory and into S3 (moto), with `status` after."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.main import main
from flows import sync_creations
from haiper_sync.simulator import SimulatorConfig, SimulatorServer
from haiper_sync.store.connection import open_database
from tests.conftest import SIM_KEY
from tests.integration.media_helpers import expected_files, local_files, succeeded_ids

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server", "api_key_env")]

IDS = succeeded_ids(5, seed=31)
# Files at a fiftieth of their size: the same paths, links and checks, a few MB in all.
SCALE = 0.02
SIGNED = ("Signature=", "Expires=")
# The API's own answer, mirrored on purpose: its links as the API gave them (signed).
MIRROR = {
    "creations": {"video_url", "thumbnail_url", "raw_json"},
    "creation_outputs": {"media_url", "thumbnail_url"},
    "outputs_flat": {"media_url", "thumbnail_url"},
}


def _sim(**kw: Any) -> SimulatorServer:
    kw.setdefault("media_ttl", 3600.0)
    return SimulatorServer(SimulatorConfig(api_keys=frozenset({SIM_KEY}), media_scale=SCALE, **kw))


def _manifest(tmp_path: Path, ids: list[str] = IDS) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return path


def _sync_args(manifest: Path, db: Path, sim: SimulatorServer, *extra: str) -> list[str]:
    return [
        "sync", "--manifest", str(manifest), "--db", str(db), "--api-url", sim.url,
        "--rate-limit", "100000", "--chunk-size", "20", *extra,
    ]  # fmt: skip


def _expected(sim: SimulatorServer, ids: list[str] = IDS) -> dict[str, tuple[int, str]]:
    """Archive key -> (bytes, sha256) of every file the simulator's details link to."""
    with httpx.Client(headers={"Authorization": f"Bearer {SIM_KEY}"}) as client:
        details = {
            creation_id: client.get(f"{sim.url}/v1/creation/{creation_id}").json()["value"]
            for creation_id in ids
        }
    return expected_files(details, scale=SCALE)


def _media_rows(db: Path) -> dict[str, tuple[Any, ...]]:
    with open_database(db, read_only=True) as con:
        rows = con.execute(
            "SELECT stored_url, bytes, sha256, attempts, source_url, content_type, last_error "
            "FROM creation_media"
        ).fetchall()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def _no_signature_outside_the_mirror(db: Path) -> None:
    """No table or view the sync and the archive write holds a signed link, except the
    API's own answer (MIRROR)."""
    with open_database(db, read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'main' AND data_type = 'VARCHAR'"
        ).fetchall()
        for table, column in columns:
            if column in MIRROR.get(table, set()):
                continue
            found = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}" LIKE \'%Signature=%\' '
                f"OR \"{column}\" LIKE '%Expires=%'"
            ).fetchone()
            assert found == (0,), f"{table}.{column} holds a signed link"


def _status(capsys: pytest.CaptureFixture[str], db: Path) -> str:
    capsys.readouterr()
    assert main(["status", "--db", str(db)]) == 0
    return capsys.readouterr().out


def test_cli_sync_archives_every_file_whole_into_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    with _sim() as sim:
        want = _expected(sim)
        code = main(
            _sync_args(
                _manifest(tmp_path), db, sim, "--archive-media", str(dest),
                "--media-concurrency", "4",
            )
        )  # fmt: skip
        media = sim.stats.media_snapshot()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert local_files(dest) == want
    assert media["with_authorization"] == 0 and media["requests"] == len(want)
    root = dest.resolve()
    rows = _media_rows(db)
    assert set(rows) == {f"{root}/{key}" for key in want}
    for key, (size, sha) in want.items():
        got_size, got_sha, attempts, source, content_type, error = rows[f"{root}/{key}"]
        assert (got_size, got_sha, attempts, error) == (size, sha, 1, None)
        assert source.startswith(f"{sim.url}/media/creations/") and "?" not in source
        assert content_type in ("video/mp4", "image/png", "image/jpeg")
    total = sum(size for size, _ in want.values())
    line = next(line for line in out.splitlines() if line.strip().startswith("media"))
    assert f"{len(want):,} files ({total / 1e6:,.1f} MB) archived to {root}" in line
    assert "0 failed, 0 not archived yet" in line
    assert not any(s in out + err for s in SIGNED)
    _no_signature_outside_the_mirror(db)

    status = _status(capsys, db)
    assert (
        f"media      {len(want):,} files archived ({total / 1e6:,.1f} MB, creation_media), "
        "0 not archived yet (media_not_archived)"
    ) in status


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A bucket on moto's S3 server; AWS_ENDPOINT_URL (http, no AWS_ALLOW_HTTP) points at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="haiper-media")
    try:
        yield "s3://haiper-media/archive", client
    finally:
        server.stop()


def test_cli_sync_archives_into_s3_through_aws_endpoint_url(
    s3: tuple[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, client = s3
    db = tmp_path / "h.duckdb"
    with _sim() as sim:
        want = _expected(sim, IDS[:3])
        code = main(_sync_args(_manifest(tmp_path, IDS[:3]), db, sim, "--archive-media", url))
        assert sim.stats.media_snapshot()["with_authorization"] == 0
    out, err = capsys.readouterr()
    assert code == 0, err
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="haiper-media"):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket="haiper-media", Key=obj["Key"])["Body"].read()
            objects[obj["Key"]] = (len(body), hashlib.sha256(body).hexdigest())
    assert objects == {f"archive/{key}": v for key, v in want.items()}
    assert set(_media_rows(db)) == {f"{url}/{key}" for key in want}
    assert f"{len(want):,} files" in out and f"archived to {url}" in out


def test_archive_command_after_a_plain_sync_then_a_rerun_downloads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, dest = tmp_path / "h.duckdb", tmp_path / "kept"
    with _sim() as sim:
        want = _expected(sim)
        assert main(_sync_args(_manifest(tmp_path), db, sim)) == 0
        assert sim.stats.media_snapshot()["requests"] == 0
        before = _status(capsys, db)
        assert f"0 files archived (0.0 MB, creation_media), {len(want):,} not archived" in before

        archive = ["archive", str(dest), "--db", str(db), "--api-url", sim.url]
        assert main(archive) == 0
        first = capsys.readouterr().out
        assert local_files(dest) == want
        served = sim.stats.media_snapshot()["requests"]
        assert served == len(want)

        assert main(archive) == 0
        again = capsys.readouterr().out
        assert sim.stats.media_snapshot()["requests"] == served  # nothing downloaded again
    assert f"media: {len(want):,} files" in first and f"archived to {dest.resolve()}" in first
    assert "media: 0 files (0.0 MB)" in again and "0 not archived yet" in again
    assert local_files(dest) == want


def _flow_logs(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline = time.monotonic() + 20
    messages: list[str] = []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:  # the API handler ships logs in the background
            messages = [log.message for log in client.read_logs(log_filter=log_filter)]
            if any(m.startswith("Done:") for m in messages):
                break
            time.sleep(0.5)
    return messages


def _artifacts(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {str(a.key): a for a in found if a.key}


def test_the_flow_archives_and_its_summary_log_and_artifacts_say_so(tmp_path: Path) -> None:
    from flows.reporting import SUMMARY_KEY
    from tasks.media import PROGRESS_KEY

    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    with _sim() as sim:
        want = _expected(sim)
        state = sync_creations(
            manifest=str(_manifest(tmp_path)), db_path=str(db), api_url=sim.url,
            rate_limit=100_000, archive_media=str(dest), media_concurrency=3,
            return_state=True,
        )  # fmt: skip
        assert sim.stats.media_snapshot()["with_authorization"] == 0
    assert state.is_completed()
    summary = state.result()
    total = sum(size for size, _ in want.values())
    m = summary.media
    assert m is not None and m.destination == str(dest.resolve())
    assert (m.files_archived, m.bytes_archived) == (len(want), total)
    assert (m.files_failed, m.files_not_archived, m.links_refreshed) == (0, 0, 0)
    assert local_files(dest) == want

    flow_run_id = state.state_details.flow_run_id
    logs = _flow_logs(flow_run_id)
    assert any(line.startswith(f"Media: {len(want):,} files") for line in logs), logs
    artifacts = _artifacts(flow_run_id)
    report = str(artifacts[SUMMARY_KEY].data)
    assert f"| media files archived | {len(want)} |" in report
    assert f"| media archived to | {dest.resolve()} |" in report
    progress = artifacts[PROGRESS_KEY]
    assert progress.data == 100.0
    assert f"{len(want):,} of {len(want):,} archived" in str(progress.description)
    shown = " ".join([*logs, report, str(progress.description)])
    assert not any(s in shown for s in SIGNED)
    _no_signature_outside_the_mirror(db)


def test_expired_links_cost_one_detail_each_through_the_runs_engine(tmp_path: Path) -> None:
    db, dest = tmp_path / "h.duckdb", tmp_path / "archive"
    ttl = 3.0
    manifest = _manifest(tmp_path)
    with _sim(media_ttl=ttl) as sim:
        # A sync without the archive stores links valid for `ttl` seconds, then they expire.
        first = sync_creations(
            manifest=str(manifest), db_path=str(db), api_url=sim.url, rate_limit=100_000
        )
        with open_database(db, read_only=True) as con:
            (latest,) = con.execute(
                "SELECT max(epoch(link_expires_at)) FROM media_not_archived"
            ).fetchone()  # type: ignore[misc]
        time.sleep(max(0.0, latest - time.time()) + 0.5)
        assert first.media is None and sim.stats.media_snapshot()["requests"] == 0
        before = {i: sim.stats.requests_for("detail", i) for i in IDS}

        # The rerun has nothing to ask about; the archive refreshes each creation once.
        summary = sync_creations(
            manifest=str(manifest), db_path=str(db), api_url=sim.url, rate_limit=100_000,
            archive_media=str(dest),
        )  # fmt: skip
        asked = {i: sim.stats.requests_for("detail", i) - before[i] for i in IDS}
        media = sim.stats.media_snapshot()
        want = _expected(sim)
    assert asked == dict.fromkeys(IDS, 1)
    # The refreshes went through the run's engine: they are the run's only requests.
    assert summary.requests == len(IDS)
    assert summary.media is not None and summary.media.links_refreshed == len(IDS)
    assert summary.media.files_archived == len(want) and summary.media.files_failed == 0
    assert media["by_status"] == {"200": len(want)} and media["with_authorization"] == 0
    assert local_files(dest) == want
    _no_signature_outside_the_mirror(db)


def test_a_refused_bucket_stops_the_run_in_one_line_and_keeps_the_rows(
    s3: tuple[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.duckdb"
    with _sim() as sim:
        code = main(
            _sync_args(_manifest(tmp_path, IDS[:2]), db, sim, "--archive-media", "s3://no-such/x")
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("haiper-sync: sync failed: ") and "no-such" in err[-1], err[-1]
    assert "Traceback" not in "\n".join(err)
    with open_database(db, read_only=True) as con:
        # The creations were synced; the run that could not archive them says why.
        assert con.execute("SELECT count(*) FROM creations").fetchall() == [(2,)]
        state, message = con.execute("SELECT state, message FROM sync_runs").fetchall()[0]
    assert state == "failed" and message == err[-1].removeprefix("haiper-sync: sync failed: ")


def test_a_full_archive_disk_stops_the_run_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    dest = tmp_path / "media"
    dest.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(dest)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    try:
        db = tmp_path / "h.duckdb"
        # Full-size files (a few MB each): the first ones fill 256 KB.
        config = SimulatorConfig(api_keys=frozenset({SIM_KEY}), media_ttl=3600.0)
        with SimulatorServer(config) as sim:
            args = _sync_args(_manifest(tmp_path, IDS[:3]), db, sim, "--archive-media", str(dest))
            code = main(args)
        err = capsys.readouterr().err.strip().splitlines()
    finally:
        subprocess.run(["umount", "-l", str(dest)], check=False)
    assert code == 1
    assert "No space left on device" in err[-1] and str(dest) in err[-1], err[-1]
    assert "Traceback" not in "\n".join(err)
    with open_database(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM creations").fetchall() == [(3,)]
        # No row claims a file that is not whole.
        assert con.execute(
            "SELECT count(*) FROM creation_media WHERE sha256 IS NOT NULL AND bytes IS NULL"
        ).fetchall() == [(0,)]
