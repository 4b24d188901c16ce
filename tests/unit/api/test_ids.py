import pytest

from haiper_sync.api.ids import InvalidCreationId, id_path_segment, id_problem, validate_id

HOSTILE = [
    "",
    "..",
    "../etc/passwd",
    "a/b",
    "a?b=1",
    "a#frag",
    "%2e%2e%2f",
    "a b",
    "a\tb",
    "a\nb",
    "a\x00b",
    "a\x1bb",
    "x" * 129,
    "caf\u00e9",
    "\u0430bc",  # Cyrillic a
    "abc\u200b",  # zero-width space
    "\uff21BC",  # full-width A
    "a;rm -rf",
    "a\\b",
]


@pytest.mark.parametrize("candidate", HOSTILE)
def test_hostile_ids_are_rejected(candidate: str) -> None:
    assert id_problem(candidate) is not None
    with pytest.raises(InvalidCreationId):
        validate_id(candidate)
    with pytest.raises(InvalidCreationId):
        id_path_segment(candidate)


@pytest.mark.parametrize("candidate", ["abc", "6650d1a2b3c4d5e6f7a8b9c0", "a-b_C9", "x" * 128])
def test_plain_ids_pass(candidate: str) -> None:
    assert id_problem(candidate) is None
    assert id_path_segment(candidate) == candidate


def test_error_message_is_short_even_for_long_input() -> None:
    with pytest.raises(InvalidCreationId) as info:
        validate_id("y" * 10_000)
    assert len(str(info.value)) < 120
