"""`python -m haiper_sync.simulator`: run the simulated Haiper API in the foreground."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from haiper_sync.errors import HaiperSyncError
from haiper_sync.simulator.state import SimulatorConfig


def build_parser() -> argparse.ArgumentParser:
    """The simulator's command-line flags (reusable by a wrapping CLI)."""
    p = argparse.ArgumentParser(prog="python -m haiper_sync.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach (the simulator checks no real key)",
    )
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    p.add_argument("--rate-limit", type=int, default=None, help="requests per minute per key")
    p.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="accepted bearer key, repeatable (default: sim-demo-key)",
    )
    p.add_argument(
        "--epoch", type=int, default=0, help="simulated time step: creations advance with it"
    )
    p.add_argument("--p-429", type=float, default=0.0, help="share of requests answered 429")
    p.add_argument("--p-500", type=float, default=0.0, help="share of requests answered 500")
    p.add_argument(
        "--p-reset", type=float, default=0.0, help="share of connections reset mid-request"
    )
    p.add_argument("--p-slow", type=float, default=0.0, help="share of requests delayed")
    p.add_argument(
        "--slow-seconds", type=float, default=2.0, help="delay of a slow request (default 2)"
    )
    p.add_argument(
        "--p-truncated", type=float, default=0.0, help="share of bodies cut off mid-JSON"
    )
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the random faults")
    p.add_argument(
        "--unfinished-detail",
        choices=["400", "200"],
        default="400",
        help="the detail of an unfinished creation: 400 with an error body (default), or a "
        "200 carrying its status",
    )
    p.add_argument(
        "--media-ttl",
        type=float,
        default=None,
        help="serve the creations' files: detail links point at this server's /media/ and "
        "expire (403) after this many seconds (default: links to a fake CDN, nothing served)",
    )
    p.add_argument(
        "--media-scale",
        type=float,
        default=1.0,
        help="multiply every served file's size by this (default 1: covers a few KB, videos "
        "up to 3 MB; `haiper-sync demo` uses 0.05)",
    )
    p.add_argument("--ready-file", default=None, help="write the URL here once listening")
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Turn parsed flags into a SimulatorConfig."""
    return SimulatorConfig(
        api_keys=frozenset(args.api_key) if args.api_key else frozenset({"sim-demo-key"}),
        latency_ms=args.latency_ms,
        epoch=args.epoch,
        rate_limit_per_minute=args.rate_limit,
        fault_seed=args.fault_seed,
        p_429=args.p_429,
        p_500=args.p_500,
        p_reset=args.p_reset,
        p_slow=args.p_slow,
        slow_seconds=args.slow_seconds,
        p_truncated=args.p_truncated,
        unfinished_detail=args.unfinished_detail,
        media_ttl=args.media_ttl,
        media_scale=args.media_scale,
    )


def accepted_keys(config: SimulatorConfig) -> str:
    """``the key sim-demo-key`` / ``the keys a, b``: what a client must send, for the banner."""
    keys = sorted(config.api_keys)
    return f"the key{'s' if len(keys) > 1 else ''} {', '.join(keys)}"


def serve_from_args(args: argparse.Namespace, config: SimulatorConfig, banner: str) -> None:
    """Serve with the parsed flags; once listening, print ``banner`` (``{url}`` filled in) and
    the keys it accepts (simulator keys, made up to be shown: HAIPER_API_KEY must be one)."""
    from haiper_sync.simulator import serve

    keys = accepted_keys(config)

    serve(
        config,
        host=args.host,
        port=args.port,
        ready_file=args.ready_file,
        allow_remote=args.allow_remote,
        on_listening=lambda url: print(f"{banner.format(url=url)}, accepting {keys}", flush=True),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and serve until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve_from_args(args, config, "Simulated Haiper API on {url}")
    except HaiperSyncError as error:
        parser.exit(1, f"{parser.prog}: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
