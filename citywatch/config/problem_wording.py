"""Pydantic's validation errors, worded for the operator who edits the YAML.

Pydantic words its errors for programmers ("Tuple should have at least 3 items after
validation", "Input tag 'x' found using 'type' does not match any of the expected tags",
"Value error, …"). Here each error type gets a sentence about the setting, and a misspelt
key, type or choice gets the nearest valid one ("did you mean 'dwell'?"), found with difflib
among the field names of the model at that place in the tree or among the allowed values.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

__all__ = ["did_you_mean", "field_names_at", "nearest", "reword"]

Loc = tuple[str | int, ...]

_QUOTED = re.compile(r"'([^']*)'")
_LIST_LIMIT = 12
_IDENTIFIER = r"^[A-Za-z0-9_.\-]+$"


def nearest(word: object, choices: Sequence[str]) -> str | None:
    """The choice closest to a misspelt ``word`` (difflib), or None when none is close."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return close[0] if close else None


def did_you_mean(word: object, choices: Sequence[str]) -> str:
    """``": did you mean 'x'?"`` for the closest choice, or an empty string when none is close."""
    close = nearest(word, choices)
    return f": did you mean {close!r}?" if close else ""


def _listed(choices: Sequence[str]) -> str:
    shown = ", ".join(choices[:_LIST_LIMIT])
    return shown + (", …" if len(choices) > _LIST_LIMIT else "")


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type: Annotated stripped, Optional and unions spread out."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [alt for arg in get_args(tp) for alt in _unwrap(arg) if alt is not type(None)]
    return [tp]


def _matches_literals(model: type[BaseModel], value: object) -> bool:
    """Whether ``value`` fits the model's literal fields (the discriminator of a union)."""
    if not isinstance(value, Mapping):
        return False
    for name, field in model.model_fields.items():
        literal = get_origin(field.annotation) is Literal
        if literal and name in value and value[name] not in get_args(field.annotation):
            return False
    return True


def _model_of(tp: Any, value: object) -> type[BaseModel] | None:
    models = [t for t in _unwrap(tp) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(models) > 1:
        models = [m for m in models if _matches_literals(m, value)] or models[:1]
    return models[0] if models else None


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.annotation
    return None


def _child_type(tp: Any, part: str | int, value: object) -> Any:
    """The declared type one step down the tree, or None where it cannot be told."""
    model = _model_of(tp, value)
    if model is not None:
        return _field(model, part) if isinstance(part, str) else None
    for alt in _unwrap(tp):
        origin, args = get_origin(alt), get_args(alt)
        if origin in (list, tuple, Sequence) and args and isinstance(part, int):
            fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
            return args[part] if fixed and part < len(args) else args[0]
        if origin in (dict, Mapping) and len(args) == 2:
            return args[1]
    return None


def _type_at(root: type[BaseModel], data: object, loc: Loc) -> tuple[Any, object] | None:
    """The declared type at ``loc`` and the value there, or None where it cannot be told."""
    tp: Any = root
    value = data
    for part in loc:
        tp = _child_type(tp, part, value)
        if tp is None:
            return None
        value = _child(value, part)
    return tp, value


def field_names_at(root: type[BaseModel], data: object, loc: Loc) -> list[str]:
    """The setting names the model accepts at ``loc`` (empty where no model is declared)."""
    found = _type_at(root, data, loc)
    model = _model_of(*found) if found else None
    if model is None:
        return []
    return sorted({field.alias or name for name, field in model.model_fields.items()})


def _description_at(root: type[BaseModel], data: object, loc: Loc) -> str | None:
    """The description of the field at ``loc`` (what its value should look like)."""
    found = _type_at(root, data, loc[:-1]) if loc and isinstance(loc[-1], str) else None
    model = _model_of(*found) if found else None
    if model is None:
        return None
    for name, field in model.model_fields.items():
        if loc[-1] in (name, field.alias):
            return field.description
    return None


def _tags_at(root: type[BaseModel], data: object, loc: Loc, field: str) -> list[str]:
    """The values a discriminated union at ``loc`` takes in its ``field`` (its kinds)."""
    found = _type_at(root, data, loc)
    tags: list[str] = []
    for alt in _unwrap(found[0]) if found else []:
        if isinstance(alt, type) and issubclass(alt, BaseModel) and field in alt.model_fields:
            annotation = alt.model_fields[field].annotation
            if get_origin(annotation) is Literal:
                tags += [str(tag) for tag in get_args(annotation)]
    return tags


def _child(value: object, part: str | int) -> object:
    if isinstance(value, Mapping):
        return value.get(part)
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return None


def _got(value: object) -> str:
    return "" if isinstance(value, dict | list) else f" (got {value!r})"


def reword(error: ErrorDetails, root: type[BaseModel], data: object) -> str:
    """One sentence for one pydantic error, with a suggestion where a spelling is wrong."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    loc: Loc = tuple(error["loc"])
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        fields = field_names_at(root, data, loc[:-1])
        hint = did_you_mean(name, fields)
        if not hint and fields:
            hint = f"; the fields here are: {_listed(fields)}"
        return f"unknown field {name!r}{hint}"
    if kind == "missing":
        return f"required field {name!r} is missing"
    if kind == "union_tag_invalid":
        field = str(ctx.get("discriminator", "type")).strip("'")
        allowed = _QUOTED.findall(str(ctx.get("expected_tags", "")))
        return (
            f"unknown {field} {ctx.get('tag')!r}{did_you_mean(ctx.get('tag'), allowed)}"
            f" ({field} is one of: {', '.join(allowed)})"
        )
    if kind == "union_tag_not_found":
        field = str(ctx.get("discriminator", "type")).strip("'")
        tags = _tags_at(root, data, loc, field)
        choices = f" ({', '.join(tags)})" if tags else ""
        return f"has no {field}: add `{field}:` to say which kind of entry this is{choices}"
    if kind in ("literal_error", "enum"):
        allowed = _QUOTED.findall(str(ctx.get("expected", "")))
        return (
            f"{value!r} is not allowed here{did_you_mean(value, allowed)}"
            f" (one of: {', '.join(allowed)})"
        )
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} entries, has {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"takes at most {ctx.get('max_length')} entries, has {ctx.get('actual_length')}"
    if kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error") or error["msg"])
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        numbers = {k: f"{v:g}" if isinstance(v, int | float) else v for k, v in ctx.items()}
        return f"must be {bounds[kind].format(**numbers)}{_got(value)}"
    plain = {
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be text (put it in quotes)",
        "dict_type": "must be a mapping of settings (key: value lines)",
        "model_type": "must be a mapping of settings (key: value lines)",
        "model_attributes_type": "must be a mapping of settings (key: value lines)",
        "list_type": "must be a list (- item lines, or [a, b])",
        "tuple_type": "must be a list (- item lines, or [a, b])",
        "string_too_short": "must not be empty",
    }
    if kind in plain:
        return plain[kind] + _got(value)
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == _IDENTIFIER:
            return f"may hold only letters, digits and _ . -{_got(value)}"
        described = _description_at(root, data, loc)
        form = f": {described}" if described else f" ({ctx.get('pattern')})"
        return f"is not in the expected form{form}{_got(value)}"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters{_got(value)}"
    message = str(error["msg"])
    message = message[0].lower() + message[1:] if message else kind
    return message.replace("input should be", "should be") + _got(value)
