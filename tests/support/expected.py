"""What a correct sync must hold, computed from the simulator's own data functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from haiper_sync.simulator import creation_detail, creation_status, is_terminal

KEYS = {
    "creations": ["creation_id"],
    "creation_outputs": ["creation_id", "output_id"],
    "creation_status": ["creation_id"],
    "sync_runs": ["run_id"],
    "sync_errors": ["run_id", "creation_id", "stage"],
}


@dataclass
class Expected:
    """Expected statuses, details and request counts for generated IDs at one epoch."""

    ids: list[str]
    epoch: int = 0
    statuses: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.statuses = {i: creation_status(i, self.epoch)["status"] for i in self.ids}

    @property
    def succeeded(self) -> list[str]:
        return [i for i, s in self.statuses.items() if s == "succeed"]

    @property
    def unfinished(self) -> list[str]:
        return [i for i, s in self.statuses.items() if not is_terminal(s)]

    def count(self, status: str) -> int:
        return sum(s == status for s in self.statuses.values())

    def details(self) -> dict[str, dict[str, Any]]:
        return {i: creation_detail(i) for i in self.succeeded}

    def output_count(self) -> int:
        return sum(len(d["outputs"]) for d in self.details().values())


def table_counts(con: Any) -> dict[str, int]:
    """Rows per table; also asserts no key is duplicated anywhere."""
    counts = {}
    for table, key in KEYS.items():
        total, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT ({', '.join(key)})) FROM {table}"
        ).fetchone()
        assert total == distinct, f"{table} has duplicate keys"
        counts[table] = total
    return counts
