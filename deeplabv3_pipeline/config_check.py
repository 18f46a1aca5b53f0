"""A bad config in one line: the key, what was given, what belongs there, and an example or the key meant.

Snakemake's ``validate`` prints the whole schema for a typo; this check runs before it and says, e.g.,
``config key model.input_shpae is unknown: did you mean model.input_shape?``. Snakemake's ``validate``
still runs afterwards (it fills the defaults).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for

from deeplabv3_pipeline.errors import UserError

# Schema patterns in words; any other pattern is named as a regular expression.
PATTERN_WORDS = {
    "^[A-Za-z0-9][A-Za-z0-9_-]*$": "of letters, digits, - and _ (starting with a letter or digit)",
}
# The example of an [H, W] list whose default is null.
SHAPE_EXAMPLE = [1024, 2048]
LONGEST_VALUE = 60  # characters of a given value shown


def check_config(config: Mapping, schema_path: Path) -> None:
    """A :class:`UserError` of one line naming the config's first problem, unless it fits the schema."""
    problem = config_problem(config, yaml.safe_load(Path(schema_path).read_text()))
    if problem:
        raise UserError(problem)


def config_problem(config: Mapping, schema: Mapping) -> str | None:
    """The most relevant problem of ``config`` against ``schema`` in one line, or None when it is valid."""
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    error = best_match(validator.iter_errors(_plain(config)))
    if error is None:
        return None
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        return _unknown_key(error, path, schema)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            entry = path and isinstance(path[-1], int)  # an entry of a list (matrix.models[0])
            owner = f"each entry of {_dotted(path[:-1])}" if entry else (_dotted(path) or "the config")
            return (
                f"config key {_dotted([*path, missing[0]])} is missing: "
                f"{owner} needs {_words_and(error.validator_value)}"
            )
    return _wrong_value(error, path, schema, config)


def _plain(value: Any) -> Any:
    """Mappings as dicts and sequences as lists (jsonschema's types), recursively."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(item) for item in value]
    return value


def _dotted(path: Sequence[Any]) -> str:
    """``['matrix', 'models', 0, 'name']`` as ``matrix.models[0].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _words_and(items: Sequence[Any]) -> str:
    names = [str(item) for item in items]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _words_or(items: Sequence[str]) -> str:
    """``a, b or c``; ``a, b, or c`` where an item holds a comma or an ``or`` itself."""
    if len(items) == 1:
        return items[0]
    last = ", or " if any("," in item or " or " in item for item in items) else " or "
    return ", ".join(items[:-1]) + last + items[-1]


def _shown(value: Any, quote: bool = True) -> str:
    """A value as YAML's flow style writes it (strings in quotes where ``quote``), shortened."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value) if quote else value
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{key}: {_shown(item, quote)}" for key, item in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_shown(item, quote) for item in value) + "]"
    else:
        text = str(value)
    text = " ".join(text.split())  # one line, whatever the value holds
    return text if len(text) <= LONGEST_VALUE else text[: LONGEST_VALUE - 3] + "..."


# --- unknown keys -------------------------------------------------------------------------------------


def _schema_keys(schema: Mapping, prefix: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key the schema describes, as its path (list items as ``[0]``: the first entry's)."""
    for name, entry in (schema.get("properties") or {}).items():
        path = (*prefix, name)
        yield path
        yield from _schema_keys(entry, path)
        items = entry.get("items")
        if isinstance(items, Mapping):
            yield from _schema_keys(items, (*path, 0))


def _unknown_key(error: ValidationError, path: list[Any], schema: Mapping) -> str:
    section = error.schema.get("properties") or {}
    unknown = [key for key in error.instance if key not in section]
    key = str(unknown[0])
    # a dotted key is one key (in quotes), not the nested one it reads as
    given = _dotted([*path, repr(key) if "." in key else key])
    here = [(*path, name) for name in section]
    # a key of this section close to the one given, else any key of the schema whose last part (or full
    # dotted name, for `model.input_shape` given as one key) is: in the user's list's index where it is in one
    indices = [part for part in path if isinstance(part, int)]
    elsewhere = [_with_indices(candidate, indices) for candidate in _schema_keys(schema)]
    suggestions = _closest(key, here) or _closest(key, [c for c in elsewhere if c not in here])
    nested = key.split(".")
    if len(nested) > 1 and tuple(nested) in set(_schema_keys(schema)):
        # `--config model.input_shape=...` makes one top-level key: Snakemake does not nest dotted keys
        inner = "".join(f"{{{part}: " for part in nested[1:]) + "..." + "}" * (len(nested) - 1)
        hint = f"keys nest: write {nested[0]}: {inner} (with --config, {nested[0]}={inner})"
    elif suggestions:
        hint = f"did you mean {_words_or([_dotted(s) for s in suggestions])}?"
    else:
        where = f"of {_dotted(path)}" if path else "at the top level"
        hint = f"the keys {where} are {', '.join(map(str, section))}"
    more = f" (also unknown: {', '.join(_dotted([*path, other]) for other in unknown[1:])})" if unknown[1:] else ""
    return f"config key {given} is unknown: {hint}{more}"


def _with_indices(candidate: tuple[Any, ...], indices: list[int]) -> tuple[Any, ...]:
    """A schema path's list indices (0) as the user's, in order, where the user's path has them."""
    given = iter(indices)
    return tuple(next(given, part) if isinstance(part, int) else part for part in candidate)


def _closest(key: str, candidates: list[tuple[Any, ...]], most: int = 3) -> list[tuple[Any, ...]]:
    """The candidates nearest ``key`` (difflib's ratio of its last part, or of its dotted name), best first."""
    scores: dict[tuple[Any, ...], float] = {}
    for candidate in candidates:
        names = {str(candidate[-1]).lower(), _dotted(candidate).lower()}
        matched = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.6)
        if matched:
            scores[candidate] = difflib.SequenceMatcher(None, key.lower(), matched[0]).ratio()
    if not scores:
        return []
    best = max(scores.values())
    return [candidate for candidate, score in scores.items() if score == best][:most]


# --- wrong values -------------------------------------------------------------------------------------


def _wrong_value(error: ValidationError, path: list[Any], schema: Mapping, config: Mapping) -> str:
    # the key the user wrote: a list's entry is named by its list (model.input_shape, not model.input_shape[0])
    while path and isinstance(path[-1], int):
        path = path[:-1]
    entry = _schema_at(schema, path)
    if entry is None:  # a path through a oneOf branch the walk cannot follow
        entry, path = error.schema, list(error.absolute_path)
    value = _value_at(config, path)
    expected = _form(entry)
    hint = ""
    if error.validator == "enum" and isinstance(error.instance, str):
        choices = [str(choice) for choice in error.validator_value if isinstance(choice, str)]
        close = difflib.get_close_matches(error.instance, choices, n=2)
        ratios = [difflib.SequenceMatcher(None, error.instance, choice).ratio() for choice in close]
        hint = f" (did you mean {close[0]}?)" if len(close) == 1 or (close and ratios[0] > ratios[1]) else ""
    example = _example(entry)
    if example is not None and "enum" not in entry and "const" not in entry:
        expected += f", e.g. {_shown(example, quote=False)}"
    name = f"config key {_dotted(path)}" if path else "the config"
    return f"{name} is {_shown(value)}: expected {expected}{hint}"


def _schema_at(schema: Mapping, path: Sequence[Any]) -> Mapping | None:
    entry: Mapping | None = schema
    for part in path:
        if entry is None:
            return None
        keyword = "items" if isinstance(part, int) else "properties"
        branches = [entry, *entry.get("oneOf", []), *entry.get("anyOf", [])]
        found = next((branch[keyword] for branch in branches if isinstance(branch.get(keyword), Mapping)), None)
        entry = found if isinstance(part, int) else (found or {}).get(part)
    return entry


def _value_at(config: Any, path: Sequence[Any]) -> Any:
    for part in path:
        config = config[part]
    return config


def _types(entry: Mapping) -> list[str]:
    kind = entry.get("type")
    return [kind] if isinstance(kind, str) else list(kind or [])


def _form(entry: Mapping) -> str:
    """What ``entry`` takes, in words: 'an integer of at least 1', 'a list of two integers [H, W] ..., or null'."""
    if "enum" in entry:
        choices = [_shown(choice, quote=False) for choice in entry["enum"]]
        return _words_or(choices) if len(choices) <= 3 else "one of " + ", ".join(choices)
    if "const" in entry:
        return _shown(entry["const"], quote=False)
    nullable = "null" in _types(entry)
    forms = [_type_form(kind, entry) for kind in _types(entry) if kind != "null"]
    for branch in entry.get("oneOf", []) + entry.get("anyOf", []):
        if _types(branch) == ["null"] or ("const" in branch and branch["const"] is None):
            nullable = True
        else:
            forms.append(_form(branch))
    if nullable:
        forms.append("null")
    return _words_or(forms) if forms else "a valid value"


def _bounds(entry: Mapping) -> str:
    low, high = entry.get("minimum"), entry.get("maximum")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    return f" of at most {high}" if high is not None else ""


def _type_form(kind: str, entry: Mapping) -> str:
    if kind in ("integer", "number"):
        return ("an integer" if kind == "integer" else "a number") + _bounds(entry)
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        pattern = entry.get("pattern")
        if not pattern:
            return "a string"
        if pattern in PATTERN_WORDS:
            return "a string " + PATTERN_WORDS[pattern]
        literal = re.fullmatch(r"\^([\w-]+)(\$?)", pattern)
        if literal and literal.group(2):
            return literal.group(1)
        if literal:
            return f"a string starting with {literal.group(1)}"
        return f"a string matching {pattern}"
    if kind == "object":
        keys = list(entry.get("properties") or {})
        return f"a section with keys {', '.join(keys)}" if keys else "a section (mapping)"
    if kind == "array":
        return _list_form(entry)
    return f"a {kind}"


def _list_form(entry: Mapping) -> str:
    items = entry.get("items") or {}
    low, high = entry.get("minItems"), entry.get("maxItems")
    item_types = _types(items)
    if low == high == 2 and item_types == ["integer"]:
        shape = " [H, W]" if "[H, W]" in str(entry.get("description", "")) else ""
        bound = _bounds(items).replace(" of ", " ").strip()
        return f"a list of two integers{shape}" + (f" (each {bound})" if bound else "")
    if item_types == ["object"]:
        keys = list(items.get("properties") or {})
        required = items.get("required") or []
        what = f"sections with keys {', '.join(keys)}" + (f" ({_words_and(required)} required)" if required else "")
    else:
        what = _form(items) if items else "values"
        plural = re.match(r"an? (\w+)(.*)", what)
        what = f"{plural.group(1)}s{plural.group(2)}" if plural else f"values: {what}"
    size = "a non-empty list" if low == 1 and high is None else "a list"
    return f"{size} of {what}"


def _example(entry: Mapping) -> Any:
    """A value that fits ``entry``: its examples' first, its default unless null or empty, else none."""
    if entry.get("examples"):
        return entry["examples"][0]
    default = entry.get("default")
    if default not in (None, "", [], {}):
        return default
    if "array" in _types(entry) and "[H, W]" in str(entry.get("description", "")):
        return SHAPE_EXAMPLE
    return None
