"""Hyperparameter forms from the models' config dataclasses, so a new model needs no page edit.

:func:`config_fields` lists what a form shows for a registered model (name, kind, default, the
comment beside the field in its source as help); :func:`parse_overrides` turns what a user typed
into validated keyword arguments for the config (the dataclass's own ``__post_init__`` checks run),
or raises :class:`ConfigError` saying which field and why.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass

from recsys_core.models import REGISTRY, quick_settings, retrievers

KINDS = {bool: "bool", int: "int", float: "float", str: "str"}
# What every trainable model shares, first in a form; the rest follow in declaration order.
MAIN_FIELDS = ("epochs", "learning_rate", "batch_size", "embedding_dim", "weight_decay", "patience")


class ConfigError(ValueError):
    """A hyperparameter value that cannot be used; the message names the model and field."""


@dataclass(frozen=True)
class ConfigField:
    name: str
    kind: str  # "bool", "int", "float", "str" or "ints" (a tuple of ints, e.g. layer widths)
    default: object
    help: str = ""
    choices: tuple[str, ...] = ()  # the allowed values of a "str" field, when they are a fixed set


def config_fields(model_name: str, quick: bool = False, data: dict[str, object] | None = None) -> list[ConfigField]:
    """The editable fields of a model's config, main ones first, at what a training runs with unless
    the form changes them: the dataclass defaults, replaced by the settings derived from the
    dataset (``data``: ``recsys_core.models.data_settings``), replaced with ``quick`` by the quick
    profile's."""
    if model_name not in REGISTRY:
        raise KeyError(f"unknown model {model_name!r}")
    config_class = REGISTRY[model_name].config_class
    profile = {**(data or {}), **(quick_settings(model_name) if quick else {})}
    hints = typing.get_type_hints(config_class)
    comments = _field_comments(config_class)
    choices = dict(config_class.CHOICES)
    if any(spec.name == "candidates_from" for spec in dataclasses.fields(config_class)):
        # A ranker's hard negatives come from a retriever: any registered model that is not a ranker.
        choices["candidates_from"] = tuple(retrievers())
    fields = []
    for spec in dataclasses.fields(config_class):
        kind = _kind(hints.get(spec.name))
        if kind is None:
            continue  # nothing a form can edit
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        default = profile.get(spec.name, default)
        fields.append(ConfigField(spec.name, kind, default, comments.get(spec.name, ""),
                                  tuple(choices.get(spec.name, ()))))  # fmt: skip
    order = {name: n for n, name in enumerate(MAIN_FIELDS)}
    return sorted(fields, key=lambda f: order.get(f.name, len(order)))


def parse_overrides(
    model_name: str,
    values: dict[str, object],
    quick: bool = False,
    data: dict[str, object] | None = None,
    explicit: bool = False,
) -> dict[str, object]:
    """``values`` (form input: numbers, booleans, or text such as ``"64,32"``) as config keyword
    arguments; the config is built once, as it will be trained, to validate them.

    A form sends every field: only those that differ from what the training would use anyway
    (:func:`config_fields` with ``quick`` and ``data``) are kept. With ``explicit`` (the command
    line, where each value was typed on purpose) every value is kept: one equal to the dataclass
    default still replaces a setting derived from the data."""
    fields = {f.name: f for f in config_fields(model_name, quick, data)}
    overrides = {}
    for name, raw in values.items():
        if name not in fields:
            raise ConfigError(f"{model_name} has no setting {name!r}; it has {', '.join(fields)}")
        value = _coerce(model_name, fields[name], raw)
        if explicit or value != fields[name].default:
            overrides[name] = value
    try:
        REGISTRY[model_name].config_class(**{**(quick_settings(model_name) if quick else {}), **overrides})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{model_name}: {error}") from error
    return overrides


def _coerce(model_name: str, spec: ConfigField, raw: object) -> object:
    where = f"{model_name}.{spec.name}"
    try:
        if spec.kind == "bool":
            if isinstance(raw, str):
                if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                return raw.strip().lower() in ("true", "1", "yes")
            return bool(raw)
        if spec.kind == "int":
            value = float(raw)
            if not value.is_integer():
                raise ValueError(raw)
            return int(value)
        if spec.kind == "float":
            return float(raw)
        if spec.kind == "ints":
            parts = raw if isinstance(raw, list | tuple) else str(raw).replace(" ", "").split(",")
            return tuple(int(p) for p in parts if str(p) != "")
        if spec.choices and str(raw) not in spec.choices:
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError) as error:
        allowed = f" (one of {', '.join(spec.choices)})" if spec.choices else ""
        raise ConfigError(f"{where}: {raw!r} is not a valid {spec.kind}{allowed}") from error


def _kind(hint: object) -> str | None:
    if hint in KINDS:
        return KINDS[hint]
    if typing.get_origin(hint) is tuple and set(typing.get_args(hint)) <= {int, Ellipsis}:
        return "ints"
    return None


def _field_comments(config_class: type) -> dict[str, str]:
    """``name: type = value  # comment`` lines of the class and its bases: the comment is the help."""
    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", source, flags=re.MULTILINE):
            comments[match.group(1)] = match.group(2).strip()
    return comments
