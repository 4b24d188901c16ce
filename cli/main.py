"""``haiper-sync``: sync, demo, simulate (and the analyst's commands).

Prefect is imported only by the commands that run the flow, so the others start fast.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from cli.analyst import add_commands as add_analyst_commands
from cli.checks import sync_options
from cli.output import fail
from cli.runner import SignalStop, prefect_api, prefect_env
from haiper_sync.analyst.queries import DEMO_DB, status_counts
from haiper_sync.analyst.render import render
from haiper_sync.errors import HaiperSyncError, Interrupted
from haiper_sync.settings import DEFAULTS, ManifestFormat, Strategy
from haiper_sync.simulator import SimulatorConfig, generate_ids
from haiper_sync.simulator.__main__ import build_parser as simulator_parser
from haiper_sync.simulator.__main__ import config_from_args, serve_from_args
from haiper_sync.store import connection
from haiper_sync.summary import RunSummary
from haiper_sync.sync import progress
from haiper_sync.sync.manifest import manifest_files
from haiper_sync.sync.options import flow_parameters

DEMO_KEY = "sim-demo-key"
DEMO_MANIFEST = "haiper-demo-manifest.txt"
DEMO_MEDIA = "haiper-demo-media"
DEMO_MEDIA_SCALE = 0.05


def run_sync(parameters: dict[str, Any]) -> int:
    """Run the ``sync_creations`` flow in this process and print its summary."""
    try:
        manifest_files(parameters["manifest"], parameters.get("manifest_format", "auto"))
    except HaiperSyncError as error:
        return fail(str(error))
    state, code = _run_flow("sync_creations", parameters, "sync failed")
    if code is not None:
        return code
    summary = state.result()
    assert isinstance(summary, RunSummary)  # a completed run returns its summary
    print(summary.text())
    _print_status_counts(parameters["db_path"])
    return 0


def _run_flow(name: str, parameters: dict[str, Any], failed: str) -> tuple[Any, int | None]:
    """Run flow ``name`` of `flows` here; its final state, and the exit code if it did not
    complete (its one line printed)."""
    prefect_env()
    with SignalStop() as stop:
        with prefect_api(prepare=lambda: importlib.import_module("flows")):
            import flows
            from flows.reporting import our_errors_in_one_line

            our_errors_in_one_line()
            with _progress_bar():
                state = getattr(flows, name)(**parameters, return_state=True)
            stop.flow_ended(state)
        if state.is_completed():
            return state, None
        if stop.signum is not None:
            print(f"haiper-sync: {state.message}", file=sys.stderr)
            return state, 128 + stop.signum
        outcome = state.result(raise_on_failure=False)
        reason = str(outcome) if isinstance(outcome, BaseException) else state.message
        return state, fail(f"{failed}: {reason}")


def cmd_archive(args: argparse.Namespace) -> int:
    """``haiper-sync archive``: the media of creations an earlier sync stored."""
    parameters = {
        "destination": args.destination or "",
        "db_path": args.db or "",
        "api_url": args.api_url or "",
        "media_concurrency": args.media_concurrency or 0,
    }
    state, code = _run_flow("archive_creations", parameters, "archive failed")
    if code is None:
        print(f"media: {state.result().line()}")
    return code or 0


@contextmanager
def _progress_bar() -> Iterator[None]:
    """A rich progress bar fed by the run's progress events, only on a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    task = bar.add_task("syncing IDs", total=None)

    def on_progress(event: progress.Progress) -> None:
        bar.update(task, completed=event.done, total=event.total)

    unsubscribe = progress.subscribe(on_progress)
    with bar:
        try:
            yield
        finally:
            unsubscribe()


def _print_status_counts(db_path: str) -> None:
    with connection.open_database(db_path, read_only=True, timeout=5) as con:
        counts = status_counts(con)
    print(f"\n{db_path}: creation_status")
    print(render(["status", "ids"], counts))


def cmd_sync(args: argparse.Namespace) -> int:
    """``haiper-sync sync``."""
    if args.manifest != "-":
        return run_sync(flow_parameters(sync_options(args)))
    # `--manifest -`: standard input, kept in a file for the run (the flow reads a path).
    suffix = {"csv": ".csv", "parquet": ".parquet", "json": ".json"}.get(
        args.manifest_format, ".txt"
    )
    with tempfile.TemporaryDirectory(prefix="haiper-stdin-") as folder:
        args.manifest = str(Path(folder) / f"stdin{suffix}")
        Path(args.manifest).write_bytes(sys.stdin.buffer.read())
        return run_sync(flow_parameters(sync_options(args)))


def cmd_demo(args: argparse.Namespace) -> int:
    """``haiper-sync demo``: the bundled simulator, a generated manifest, a local DuckDB file."""
    manifest = Path(args.manifest)
    planted = ["nf-demo-unknown-1", "nf-demo-unknown-2", "../not/an/id"]
    manifest.write_text(
        "# haiper-sync demo manifest: generated IDs, plus three planted bad entries\n"
        + "\n".join(generate_ids(args.n) + planted)
        + "\n"
    )
    # The demo talks to its own simulator, so it uses the simulator's key, not the user's.
    os.environ["HAIPER_API_KEY"] = DEMO_KEY
    # Signed media links on the simulator itself, valid for an hour: the demo archives them,
    # at a twentieth of their usual size (about 30 MB for 200 IDs, not 600).
    config = SimulatorConfig(
        api_keys=frozenset({DEMO_KEY}),
        latency_ms=args.latency_ms,
        media_ttl=3600.0,
        media_scale=DEMO_MEDIA_SCALE,
    )
    started = time.monotonic()
    from haiper_sync.simulator import SimulatorServer

    with SimulatorServer(config) as sim:
        print(
            f"Simulated Haiper API at {sim.url}; manifest {manifest}: {args.n} generated IDs, "
            f"plus 2 IDs the API does not know (404) and 1 line that is not an ID"
        )
        code = run_sync(
            {
                "manifest": str(manifest),
                "db_path": args.db,
                "api_url": sim.url,
                "concurrency": DEFAULTS.concurrency,
                "rate_limit": 100_000,
                "refresh": False,
                "chunk_size": 50,
                "archive_media": args.media,
            }
        )
        served = sim.stats.snapshot()["total"]
    if code == 0:
        print(
            f"\nThe simulator served {served} requests; "
            f"the demo took {time.monotonic() - started:.1f} s."
            f"\nThe creations' media files are in {Path(args.media).absolute()}/creations/."
            f"\nThe two unknown IDs (404) and the bad line are in sync_errors on purpose. Try:\n"
            f"  .venv/bin/haiper-sync query --db {args.db} "
            '"select type, count(*) from creations group by all"'
        )
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    """``haiper-sync simulate``: serve the simulated API in the foreground."""
    try:
        config = config_from_args(args)
    except ValueError as error:
        return fail(str(error))
    serve_from_args(args, config, "Simulated Haiper API on {url} (Ctrl-C to stop)")
    return 0


def _media_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media-concurrency",
        type=int,
        metavar="N",
        help="media files downloaded at once (default: $HAIPER_MEDIA_CONCURRENCY or "
        f"{DEFAULTS.media_concurrency})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="haiper-sync", description="Mirror Haiper creations into DuckDB."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser(
        "sync",
        help="sync the IDs of a manifest into a DuckDB file",
        description="Sync the creations of a manifest into a DuckDB file.",
        epilog="The API key is read from HAIPER_API_KEY (never a flag), else from the Prefect "
        "Secret block 'haiper-api-key' on the server PREFECT_API_URL names. --db, --api-url, "
        "--concurrency, --rate-limit and --chunk-size default to HAIPER_DB, HAIPER_API_URL, "
        "HAIPER_CONCURRENCY, HAIPER_RATE_LIMIT and HAIPER_CHUNK_SIZE (README: Settings).",
    )
    sync.add_argument(
        "--manifest",
        required=True,
        help="file, glob or - (standard input): one creation ID per line, or CSV, Parquet, "
        "JSON/NDJSON with a creation_id column",
    )
    sync.add_argument(
        "--manifest-format",
        choices=get_args(ManifestFormat),
        default="auto",
        help="auto (default): by extension (.csv .tsv .parquet .json .ndjson .jsonl), else lines",
    )
    sync.add_argument("--db", help=f"DuckDB file (default: $HAIPER_DB or {DEFAULTS.db})")
    sync.add_argument("--api-url", help="API base URL (default: $HAIPER_API_URL or Haiper's)")
    sync.add_argument(
        "--concurrency",
        type=int,
        help=f"requests in flight (default: $HAIPER_CONCURRENCY or {DEFAULTS.concurrency})",
    )
    sync.add_argument(
        "--rate-limit",
        type=int,
        help=f"requests per minute (default: $HAIPER_RATE_LIMIT or {DEFAULTS.rate_limit})",
    )
    sync.add_argument(
        "--chunk-size", type=int, help="IDs per task run (default: from the rate limit, 250-1,000)"
    )
    sync.add_argument("--refresh", action="store_true", help="re-fetch finished IDs too")
    sync.add_argument(
        "--refresh-older-than",
        metavar="AGE",
        help="fetch again the details of succeeded creations synced longer ago than AGE "
        "(7d, 12h): fresh likes and URLs, oldest first",
    )
    sync.add_argument(
        "--max-error-ratio",
        type=float,
        metavar="SHARE",
        help="fail the run when more than this share of its IDs errored "
        f"(default: $HAIPER_MAX_ERROR_RATIO or {DEFAULTS.max_error_ratio})",
    )
    sync.add_argument(
        "--recheck-all",
        action="store_true",
        help="ask about every unfinished ID now, ignoring the back-off schedule and not_found",
    )
    sync.add_argument(
        "--strategy",
        choices=get_args(Strategy),
        default="status-first",
        help="detail-first asks IDs never seen before for their detail directly: one request "
        "instead of two for a creation that succeeded, two instead of one for any other",
    )
    sync.add_argument(
        "--max-requests",
        type=int,
        metavar="N",
        help="spend at most N requests (retries included); the rest waits for the next run",
    )
    sync.add_argument(
        "--init-existing",
        action="store_true",
        help="add haiper-sync's tables to a DuckDB file that has other tables (else refused)",
    )
    _media_options(sync)
    sync.add_argument(
        "--archive-media",
        metavar="DEST",
        help="also archive every stored creation's media files into DEST: a directory, or "
        "s3://bucket/prefix, gs://, az:// (default: $HAIPER_ARCHIVE_MEDIA, else none)",
    )
    sync.set_defaults(func=cmd_sync)

    archive = commands.add_parser(
        "archive",
        help="archive the media of creations an earlier sync stored",
        description="Download every stored creation's media (videos, images) not archived yet "
        "into DEST, before its signed links expire; an expired link costs one detail request.",
    )
    archive.add_argument(
        "destination",
        metavar="DEST",
        nargs="?",
        help="a directory, or s3://bucket/prefix, gs://, az:// (default: $HAIPER_ARCHIVE_MEDIA)",
    )
    archive.add_argument("--db", help=f"DuckDB file (default: $HAIPER_DB or {DEFAULTS.db})")
    archive.add_argument(
        "--api-url", help="API base URL, for fresh links (default: $HAIPER_API_URL)"
    )
    _media_options(archive)
    archive.set_defaults(func=cmd_archive)

    demo = commands.add_parser("demo", help="sync ~200 simulated creations into a local file")
    demo.add_argument("--n", type=int, default=200, help="how many generated IDs")
    demo.add_argument("--db", default=DEMO_DB, help=f"DuckDB file to write (default {DEMO_DB})")
    demo.add_argument(
        "--manifest",
        default=DEMO_MANIFEST,
        help=f"where to write the generated manifest (default {DEMO_MANIFEST})",
    )
    demo.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="the simulator's added latency per request (default 20)",
    )
    demo.add_argument(
        "--media",
        default=DEMO_MEDIA,
        help=f"the folder the demo archives media files into (default {DEMO_MEDIA})",
    )
    demo.set_defaults(func=cmd_demo)

    simulate = commands.add_parser(
        "simulate",
        parents=[simulator_parser()],
        add_help=False,
        help="serve the simulated Haiper API on 127.0.0.1",
    )
    simulate.set_defaults(func=cmd_simulate)
    add_analyst_commands(commands)
    return parser


def refuse_unknown_flags(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Exit 2 naming a flag the command does not have (argparse would first complain about a
    missing required one: `--manifset` read as "--manifest is required")."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if not argv or argv[0] not in commands.choices:
        return
    command = commands.choices[argv[0]]
    known = [flag for action in command._actions for flag in action.option_strings]
    for token in argv[1:]:
        if token == "--":
            return
        name = token.split("=", 1)[0]
        # argparse takes an unambiguous prefix of a flag (`--manif`): that one is known.
        if name.startswith("--") and not any(flag.startswith(name) for flag in known):
            close = difflib.get_close_matches(name, known, n=1)
            command.error(
                f"unknown flag {name}" + (f" (did you mean {close[0]}?)" if close else "")
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``haiper-sync`` console script."""
    parser = build_parser()
    refuse_unknown_flags(parser, sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except HaiperSyncError as error:
        return fail(str(error))
    except Interrupted as interrupted:
        print(f"haiper-sync: interrupted by {interrupted}", file=sys.stderr)
        return interrupted.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
