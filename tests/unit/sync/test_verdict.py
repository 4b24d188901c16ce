"""A run whose every request got the same refusal says that refusal (sync/verdict.py)."""

from __future__ import annotations

import pytest

from haiper_sync.sync.verdict import (
    MAX_LINE,
    CommonAnswer,
    ErrorAnswer,
    common_answer,
    first_line,
)

NGINX_400 = (
    "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
    "<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n</html>\r\n"
)


def answer(
    status: int | None = 400,
    body: str | None = NGINX_400,
    count: int = 10,
    *,
    deferred: bool = False,
    message: str = "GET http://api/v1/jobs/x/status -> HTTP 400: Bad Request",
) -> ErrorAnswer:
    return ErrorAnswer(status, body, message, deferred, count)


def test_one_answer_for_every_error_is_the_verdict() -> None:
    verdict = common_answer([answer(count=12), answer(count=8)], errors=20)
    assert verdict == CommonAnswer(400, "400 The plain HTTP request was sent to HTTPS port", 20)
    assert str(verdict) == (
        "every request was answered HTTP 400: 400 The plain HTTP request was sent to HTTPS port"
    )


def test_bodies_that_differ_after_their_first_line_are_one_answer() -> None:
    groups = [answer(body=f"Forbidden by policy\nrequest id {n}", count=1) for n in range(5)]
    assert common_answer(groups) == CommonAnswer(400, "Forbidden by policy", 5)


@pytest.mark.parametrize(
    ("groups", "kw"),
    [
        ([], {}),
        ([answer()], {"answered": 1}),  # some ID got an answer: not every answer is this one
        ([answer(), answer(status=404, body='{"code": "NOT_FOUND"}')], {}),
        ([answer(), answer(body="another page")], {}),
        ([answer(status=503, deferred=True)], {}),  # retried: the next run may do better
        ([answer(status=None, body=None, message="GET x failed: connection refused")], {}),
        ([answer(count=10)], {"errors": 11}),  # the query's limit cut a group off
    ],
)
def test_no_verdict_unless_every_error_shares_one_final_answer(
    groups: list[ErrorAnswer], kw: dict[str, int]
) -> None:
    assert common_answer(groups, **kw) is None


def test_first_line_of_a_body() -> None:
    assert first_line('{"message": "no"}\n', "m") == '{"message": "no"}'
    assert first_line("\n\n  <p>Gone &amp; done</p>  \n", "m") == "Gone & done"
    assert first_line(None, "GET http://api/x -> HTTP 403: Forbidden") == "Forbidden"
    long = first_line("x" * 500, "m")
    assert len(long) == MAX_LINE and long.endswith("…")
