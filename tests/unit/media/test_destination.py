"""The local archive's sweep of stages a killed put left behind (a real obstore LocalStore)."""

from __future__ import annotations

from pathlib import Path

import obstore

from haiper_sync.media.destination import open_destination


def test_sweep_removes_every_stage_a_killed_put_left_and_keeps_the_file(tmp_path: Path) -> None:
    destination = open_destination(str(tmp_path))
    folder = tmp_path / "creations" / "c1"
    folder.mkdir(parents=True)
    # Two earlier runs killed mid-put of this key, and a neighbour's own stage.
    for name in ("o1.mp4#1", "o1.mp4#2", "o2.mp4#1"):
        (folder / name).write_bytes(b"partial")
    obstore.put(destination.store, "creations/c1/o1.mp4", b"whole")  # staged as #3, renamed

    destination.sweep("creations/c1/o1.mp4")

    assert sorted(p.name for p in folder.iterdir()) == ["o1.mp4", "o2.mp4#1"]
    assert (folder / "o1.mp4").read_bytes() == b"whole"


def test_sweep_of_a_clean_put_touches_nothing(tmp_path: Path) -> None:
    destination = open_destination(str(tmp_path))
    obstore.put(destination.store, "creations/c1/o1.mp4", b"whole")

    destination.sweep("creations/c1/o1.mp4")

    assert [p.name for p in (tmp_path / "creations" / "c1").iterdir()] == ["o1.mp4"]
