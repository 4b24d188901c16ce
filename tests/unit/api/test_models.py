from haiper_sync.api.models import DetailResponse, ErrorBody, StatusResponse
from haiper_sync.simulator import creation_detail, generate_ids


def test_a_full_detail_parses_without_drift() -> None:
    creation_id = generate_ids(1)[0]
    value = creation_detail(creation_id)
    parsed = DetailResponse.model_validate({"status": "success", "value": value})
    assert parsed.value is not None
    assert parsed.value.drift == []
    assert parsed.value.creation_id == creation_id
    assert parsed.value.outputs is not None and len(parsed.value.outputs) == len(value["outputs"])


def test_numbers_sent_as_strings_are_read_when_lossless() -> None:
    parsed = DetailResponse.model_validate(
        {
            "status": "success",
            "value": {
                "settings": {"fps": "24", "width": "1280", "height": "720.5"},
                "commits": {"like_count": "7", "is_like": "true"},
            },
        }
    )
    value = parsed.value
    assert value is not None and value.settings is not None and value.commits is not None
    assert (value.settings.fps, value.settings.width, value.settings.height) == (24.0, 1280, None)
    assert value.commits.like_count == 7 and value.commits.is_like is True
    assert value.drift == ["settings.height: unexpected str dropped"]


def test_wrong_types_become_none_and_are_noted() -> None:
    parsed = DetailResponse.model_validate(
        {
            "status": "success",
            "value": {
                "prompt": "a cat",
                "settings": [24, 1280],
                "commits": "lots",
                "outputs": [{"id": "o1"}, "junk", 3],
                "user_id": {"nested": True},
            },
        }
    )
    value = parsed.value
    assert value is not None
    assert value.prompt == "a cat"
    assert value.settings is None and value.commits is None and value.user_id is None
    assert value.outputs is not None and [o.id for o in value.outputs] == ["o1"]
    assert any(note.startswith("settings:") for note in value.drift)
    assert any(note.startswith("commits:") for note in value.drift)
    assert any(note.startswith("user_id:") for note in value.drift)
    assert any("non-object" in note for note in value.drift)


def test_single_output_object_is_understood() -> None:
    parsed = DetailResponse.model_validate(
        {"status": "success", "value": {"output": {"id": "o9", "media_url": "https://m"}}}
    )
    assert parsed.value is not None and parsed.value.outputs is not None
    assert [(o.id, o.media_url) for o in parsed.value.outputs] == [("o9", "https://m")]


def test_extra_fields_are_kept_not_interpreted() -> None:
    parsed = DetailResponse.model_validate(
        {"status": "success", "value": {"brand_new": 1, "settings": {"hdr": True}}, "trace": "t"}
    )
    assert parsed.value is not None and parsed.value.settings is not None
    # Fields the contract does not name: kept by pydantic (extra="allow"), not interpreted.
    assert parsed.value.model_extra == {"brand_new": 1}
    assert parsed.value.settings.model_extra == {"hdr": True}
    assert parsed.model_extra == {"trace": "t"}


def test_missing_value_or_fields_are_none() -> None:
    assert DetailResponse.model_validate({"status": "success"}).value is None
    parsed = StatusResponse.model_validate({"status": "success", "value": {"status": "pending"}})
    assert parsed.value is not None and parsed.value.progress is None
    odd = StatusResponse.model_validate({"status": "success", "value": {"progress": "half"}})
    assert odd.value is not None and odd.value.progress is None and odd.value.drift


def test_error_codes_may_be_strings_or_integers() -> None:
    assert ErrorBody.model_validate({"code": "H-10002001", "message": "m"}).code == "H-10002001"
    assert ErrorBody.model_validate({"code": 400, "message": "m"}).code == "400"
    assert ErrorBody.model_validate({"message": "m"}).code is None
