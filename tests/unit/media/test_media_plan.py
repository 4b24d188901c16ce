"""The archive's plan: keys, order, link parsing; pure functions, no I/O."""

from __future__ import annotations

import pytest

from haiper_sync.errors import MediaError
from haiper_sync.media.plan import (
    MediaFile,
    extension,
    in_expiry_order,
    is_expired,
    link_expiry,
    media_key,
    plan_files,
    strip_query,
)

SIGNED = "https://cdn.example/creations/c1/o1.mp4?Expires=1700000000&Signature=abc"


def test_a_link_is_read_for_its_expiry_and_kept_without_its_query() -> None:
    assert link_expiry(SIGNED) == 1700000000
    assert link_expiry("https://cdn.example/a.mp4") is None
    assert link_expiry("https://cdn.example/a.mp4?Expires=soon") is None
    assert strip_query(SIGNED) == "https://cdn.example/creations/c1/o1.mp4"
    assert strip_query("https://h/a.png?x=1#frag") == "https://h/a.png"
    assert is_expired(SIGNED, 1700000000) and not is_expired(SIGNED, 1699999999)
    assert not is_expired("https://h/a.png", 10**12)


def test_soonest_expiring_links_go_first_and_undated_ones_last() -> None:
    def f(name: str, expires: int | None) -> MediaFile:
        query = f"?Expires={expires}&Signature=s" if expires is not None else ""
        return MediaFile("c", name, "media", f"https://h/{name}.mp4{query}")

    files = [f("late", 300), f("none", None), f("soon", 100), f("mid", 200), f("none2", None)]
    assert [x.output_id for x in in_expiry_order(files)] == ["soon", "mid", "late", "none", "none2"]


def test_keys_follow_the_layout_and_take_the_extension_from_path_or_type() -> None:
    media = MediaFile("c1", "o1", "media", SIGNED)
    assert media_key(media, extension(media.url, "video/mp4")) == "creations/c1/o1.mp4"
    thumb = MediaFile("c1", "o1", "thumbnail", "https://h/t?Expires=1")
    assert media_key(thumb, extension(thumb.url, "image/jpeg")) == "creations/c1/o1.thumbnail.jpg"
    cover = MediaFile("c1", None, "cover", "https://h/x/cover")
    assert media_key(cover, extension(cover.url, None)) == "creations/c1/cover.bin"
    assert extension("https://h/a.PNG?Expires=1", None) == "png"
    assert extension("https://h/a", "image/webp; q=1") == "webp"


@pytest.mark.parametrize(
    ("creation_id", "output_id"),
    [("../etc", "o1"), ("c1", "../../x"), ("c/1", "o1"), ("c1", "o\n1"), ("c1", "#0"), ("", "o")],
)
def test_unsafe_ids_never_reach_a_key(creation_id: str, output_id: str) -> None:
    with pytest.raises(MediaError) as refused:
        media_key(MediaFile(creation_id, output_id, "media", SIGNED), "mp4")
    assert "unsafe" in str(refused.value)
    assert "Signature" not in str(refused.value)


def test_the_plan_keeps_known_kinds_in_expiry_order() -> None:
    rows = [
        ("c1", "o1", "media", "https://h/o1.mp4?Expires=20"),
        ("c1", None, "cover", "https://h/cover.jpg?Expires=10"),
        ("c1", "o1", "sticker", "https://h/s.png"),
    ]
    assert [(f.kind, f.output_id) for f in plan_files(rows)] == [("cover", None), ("media", "o1")]
    assert plan_files(rows)[0].label() == "cover of c1"
