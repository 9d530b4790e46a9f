"""Models to and from plain JSON-able dicts (Decimals as strings), driven by the dataclass type hints."""

from __future__ import annotations

import dataclasses
import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any

from gp_pipelines.edi.mapping import MAPPINGS
from gp_pipelines.edi.models import Document


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _convert(options[0], value)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        return [_convert(item_hint, item) for item in value]
    if origin is dict:
        _, item_hint = typing.get_args(hint)
        return {str(key): _convert(item_hint, item) for key, item in value.items()}
    if hint is Decimal:
        return Decimal(str(value))
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    if hint is str:
        return str(value)
    if hint is int:
        return int(value)
    return value


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass `cls` from a dict; unknown keys raise `ValueError` so typos do not pass silently."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    return cls(**{key: _convert(hints[key], value) for key, value in data.items()})


def document_from_dict(set_id: str, data: dict[str, Any]) -> Document:
    if set_id not in MAPPINGS:
        raise ValueError(f"transaction set {set_id} is not supported (supported: {', '.join(MAPPINGS)})")
    return from_dict(MAPPINGS[set_id].model, data)
