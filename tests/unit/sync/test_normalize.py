from datetime import UTC, datetime

from haiper_sync.api.models import CreationDetail
from haiper_sync.simulator import creation_detail, generate_ids
from haiper_sync.sync.normalize import normalize_detail, parse_timestamp

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_every_seed_field_lands_in_its_column() -> None:
    creation_id = generate_ids(3)[2]
    value = creation_detail(creation_id)
    row, outputs = normalize_detail(
        creation_id, CreationDetail.model_validate(value), '{"raw": 1}', NOW, "run1"
    )
    for name in (
        "user_id", "username", "avatar", "type", "input_type", "output_type", "prompt",
        "status", "video_url", "thumbnail_url",
    ):  # fmt: skip
        assert getattr(row, name) == value.get(name), name
    assert row.negative_prompt == value.get("negative_prompt")
    assert row.create_time_raw == value["create_time"]
    assert row.create_time == datetime.fromisoformat(value["create_time"].replace("Z", "+00:00"))
    assert (row.fps, row.width, row.height) == (
        value["settings"]["fps"], value["settings"]["width"], value["settings"]["height"],
    )  # fmt: skip
    commits = value["commits"]
    assert (row.like_count, row.is_like, row.collects_count, row.is_collect) == (
        commits["like_count"], commits["is_like"], commits["collects_count"], commits["is_collect"],
    )  # fmt: skip
    assert row.output_count == len(value["outputs"]) == len(outputs)
    assert [o.output_id for o in outputs] == [o["id"] for o in value["outputs"]]
    assert [o.position for o in outputs] == list(range(len(outputs)))
    assert row.notes is None
    assert row.raw_json == '{"raw": 1}'


def test_mismatched_body_id_keeps_the_requested_key_and_notes_it() -> None:
    detail = CreationDetail.model_validate({"creation_id": "other"})
    row, _ = normalize_detail("asked", detail, "{}", NOW, "run1")
    assert row.creation_id == "asked"
    assert row.notes is not None and "mismatch" in row.notes and "other" in row.notes


def test_outputs_without_ids_get_positional_keys_and_duplicates_collapse() -> None:
    detail = CreationDetail.model_validate(
        {"outputs": [{"media_url": "a"}, {"id": "x"}, {"id": "x", "media_url": "dup"}]}
    )
    row, outputs = normalize_detail("c1", detail, "{}", NOW, "run1")
    assert [(o.output_id, o.position) for o in outputs] == [("#0", 0), ("x", 1)]
    assert row.output_count == 2
    assert row.notes is not None and "duplicate" in row.notes


def test_timestamps_in_several_shapes() -> None:
    expected = datetime(2026, 10, 3, 12, 34, 56, tzinfo=UTC)
    assert parse_timestamp("2026-10-03T12:34:56Z") == expected
    assert parse_timestamp("2026-10-03T14:34:56+02:00") == expected
    assert parse_timestamp("2026-10-03 12:34:56") == expected
    assert parse_timestamp(str(int(expected.timestamp()))) == expected
    assert parse_timestamp(str(int(expected.timestamp() * 1000))) == expected
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp("") is None and parse_timestamp(None) is None


def test_unreadable_timestamp_is_kept_raw_and_noted() -> None:
    row, _ = normalize_detail(
        "c1", CreationDetail.model_validate({"create_time": "soon"}), "{}", NOW, "r"
    )
    assert row.create_time is None and row.create_time_raw == "soon"
    assert row.notes is not None and "create_time" in row.notes
