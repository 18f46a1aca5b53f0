"""A backend's own options: one typed record per backend, each field written once.

A record is a frozen dataclass whose fields are made with :func:`option`. From it come:

- the stage CLIs' flags (:func:`add_option_arguments`: ``--ais-bench`` from field ``ais_bench``, its
  default the field's, ``nargs`` from the field's type; a ``bool`` field gives ``--compile`` and
  ``--no-compile``);
- the record itself from those flags (:func:`from_namespace`) or from the workflow's config
  (:func:`from_config`: each field names the config key it is read from, ``ascend.ais_bench``);
- the flags the workflow hands ``infer.py`` for a config (:func:`to_flags`).

So config key -> flag -> record is one declaration, and each default one value (the schema's defaults
are tied to the records' by a test).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from argparse import ArgumentParser, BooleanOptionalAction, Namespace
from collections.abc import Mapping
from typing import Any

CONFIG_KEY = "config_key"
HELP = "help"
METAVAR = "metavar"


def option(default: Any, help: str, *, config: str, metavar: tuple[str, ...] | str | None = None) -> Any:
    """A field of an options record: its default, its help line, and the dotted config key it is read from."""
    return dataclasses.field(default=default, metadata={HELP: help, CONFIG_KEY: config, METAVAR: metavar})


def flag_name(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def _value_type(annotation: Any) -> tuple[type, int | str | None]:
    """(element type, nargs) of a field annotation: ``int``, ``str``, ``tuple[str, ...]`` (nargs "+"),
    ``tuple[int, int]`` (nargs 2), each possibly ``| None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0], "+"
        return args[0], len(args)
    return annotation, None


def fields_of(record_type: type) -> list[tuple[dataclasses.Field, type, int | str | None]]:
    """Each field with its element type and nargs (the annotations resolved)."""
    hints = typing.get_type_hints(record_type)
    return [(field, *_value_type(hints[field.name])) for field in dataclasses.fields(record_type)]


def add_option_arguments(parser: ArgumentParser, record_type: type, backend: str) -> None:
    """One flag per field, unless the parser has it already (a flag two backends share, ``--device``)."""
    known = {flag for action in parser._actions for flag in action.option_strings}
    for field, element, nargs in fields_of(record_type):
        name = flag_name(field)
        if name in known:
            continue
        help_text = f"{field.metadata[HELP]} ({backend}; config {field.metadata[CONFIG_KEY]}"
        if element is bool:  # --compile / --no-compile
            parser.add_argument(name, action=BooleanOptionalAction, default=field.default, help=help_text + ")")
            continue
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        parser.add_argument(
            name,
            type=element,
            nargs=nargs,
            default=default,
            metavar=field.metadata[METAVAR],
            help=help_text + ("" if default is None else f"; default: {shown}") + ")",
        )


def _coerce(value: Any, nargs: int | str | None) -> Any:
    return tuple(value) if nargs is not None and value is not None else value


def from_namespace(record_type: type, args: Namespace) -> Any:
    """The record from parsed flags (those :func:`add_option_arguments` declared)."""
    values = {field.name: _coerce(getattr(args, field.name), nargs) for field, _, nargs in fields_of(record_type)}
    return record_type(**values)


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key (``ascend.ais_bench``) of a config."""
    value: Any = config
    for part in key.split("."):
        value = value[part]
    return value


def from_config(record_type: type, config: Mapping[str, Any]) -> Any:
    """The record from a (validated, defaults filled) workflow config."""
    values = {
        field.name: _coerce(config_value(config, field.metadata[CONFIG_KEY]), nargs)
        for field, _, nargs in fields_of(record_type)
    }
    return record_type(**values)


def to_flags(record: Any) -> list[str]:
    """The flags that give ``record`` back through :func:`from_namespace` (unset fields left out)."""
    flags: list[str] = []
    for field, _, nargs in fields_of(type(record)):
        value = getattr(record, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag_name(field) if value else "--no-" + flag_name(field)[2:])
            continue
        flags.append(flag_name(field))
        flags.extend(map(str, value) if nargs is not None else [str(value)])
    return flags
