"""Pydantic models of the API's responses, parsed leniently at the boundary.

The spec types every field of ``value`` loosely: a field of the wrong type becomes ``None`` and is
written down in ``drift``, so one odd field never costs the rest of a creation.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import cache
from typing import Any, ClassVar, Self, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    model_validator,
)


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


class LenientModel(BaseModel):
    """A model whose fields fall back to ``None`` (noted in ``drift``) instead of failing."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    _lenient_skip: ClassVar[frozenset[str]] = frozenset({"drift"})

    drift: list[str] = Field(default_factory=list, exclude=True)

    @model_validator(mode="wrap")
    @classmethod
    def _lenient(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if not isinstance(data, dict):
            return handler(data)
        data = cls._reshape(data)
        try:
            # Fast path: a well-formed document validates in one pass of pydantic-core.
            model = handler(data)
        except ValidationError:
            model = handler(cls._drop_bad_fields(data))
        for name, value in model.__dict__.items():
            if isinstance(value, LenientModel) and value.drift:
                model.drift.extend(f"{name}.{note}" for note in value.drift)
        return model

    @classmethod
    def _reshape(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: adapt a known variant of the document before validation."""
        return data

    @classmethod
    def _drop_bad_fields(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Validate field by field; a field that fails becomes ``None`` and a drift note."""
        cleaned = dict(data)
        notes: list[str] = list(cleaned.pop("drift", None) or [])
        for name, field in cls.model_fields.items():
            if name in cls._lenient_skip or name not in cleaned or cleaned[name] is None:
                continue
            try:
                cleaned[name] = _adapter(cast(Hashable, field.annotation)).validate_python(
                    cleaned[name]
                )
            except ValidationError:
                notes.append(f"{name}: unexpected {type(cleaned[name]).__name__} dropped")
                cleaned[name] = None
        cleaned["drift"] = notes
        return cleaned


class StatusValue(LenientModel):
    """``value`` of ``GET /v1/jobs/{id}/status``."""

    status: str | None = None
    progress: float | None = None


class StatusResponse(LenientModel):
    """Body of ``GET /v1/jobs/{id}/status``."""

    status: str | None = None
    value: StatusValue | None = None


class CreationSettings(LenientModel):
    """``value.settings`` of a creation."""

    fps: float | None = None
    width: int | None = None
    height: int | None = None


class CreationCommits(LenientModel):
    """``value.commits``: the social counters of a creation."""

    like_count: int | None = None
    is_like: bool | None = None
    collects_count: int | None = None
    is_collect: bool | None = None


class CreationOutput(LenientModel):
    """One element of ``value.outputs``."""

    id: str | None = None
    media_url: str | None = None
    thumbnail_url: str | None = None


class CreationDetail(LenientModel):
    """``value`` of ``GET /v1/creation/{id}``: every field is optional."""

    creation_id: str | None = None
    user_id: str | None = None
    username: str | None = None
    avatar: str | None = None
    type: str | None = None
    input_type: str | None = None
    output_type: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    create_time: str | None = None
    update_time: str | None = None
    status: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    settings: CreationSettings | None = None
    commits: CreationCommits | None = None
    outputs: list[CreationOutput] | None = None

    @classmethod
    def _reshape(cls, data: dict[str, Any]) -> dict[str, Any]:
        # Another public description of the API sends one `output` object, not `outputs`.
        if data.get("outputs") is None:
            single = data.get("output")
            if isinstance(single, dict):
                data = {k: v for k, v in data.items() if k != "output"} | {"outputs": [single]}
        if isinstance(data.get("outputs"), list):
            items = data["outputs"]
            kept = [item for item in items if isinstance(item, dict)]
            if len(kept) != len(items):
                notes = list(data.get("drift") or [])
                notes.append(f"outputs: {len(items) - len(kept)} non-object element(s) dropped")
                data = data | {"outputs": kept, "drift": notes}
        return data


class DetailResponse(LenientModel):
    """Body of ``GET /v1/creation/{id}``."""

    status: str | None = None
    value: CreationDetail | None = None


class ErrorBody(BaseModel):
    """The API's error document; ``code`` is a string or an integer depending on the source."""

    model_config = ConfigDict(extra="allow")

    code: str | None = None
    message: str | None = None
    details: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _code_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("code"), int | float):
            data = data | {"code": str(data["code"])}
        return data
