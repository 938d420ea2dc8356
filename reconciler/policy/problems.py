"""Policy problems: every error of a policy.yaml named with its field, its line and what is
allowed, instead of pydantic's own words. Used by reconciler.policy.schema; knows the schema only
through the models it is handed.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel


@dataclass(frozen=True)
class PolicyProblem:
    where: str  # dotted path into the YAML, e.g. "kinds.Thing.maxInstances"
    line: int | None  # 1-based line in the file, when known
    message: str
    column: int | None = None  # 1-based column, when known (YAML syntax errors)

    @property
    def position(self) -> str:
        """'line 5, column 20', 'line 5' or ''."""
        if not self.line:
            return ""
        return f"line {self.line}, column {self.column}" if self.column else f"line {self.line}"

    def __str__(self) -> str:
        at = f"{self.position}: " if self.line else ""
        return f"{at}{self.where}: {self.message}" if self.where else f"{at}{self.message}"


class PolicyError(Exception):
    def __init__(self, path: Path | str, problems: list[PolicyProblem]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems))


def problem(err: Any, root: yaml.Node | None, schema: Any, kind_schema: Any) -> PolicyProblem:
    """One pydantic error of `schema` (the policy) as a problem naming the YAML line."""
    loc = [str(p) for p in err["loc"]]
    if loc and loc[-1] == "[key]":  # a kind's name: the error is about the key itself
        loc.pop()
    message = err["msg"].removeprefix("Value error, ")
    bounds = _allowed_range(loc, schema, kind_schema)
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        message = _unknown_key(loc, schema, kind_schema)
    elif err["type"] == "missing":
        message = f"required key `{loc[-1]}` is missing" if loc else message
    elif err["type"] in _TYPE_ERRORS:
        message = _type_message(_TYPE_ERRORS[err["type"]], value)
    elif _not_finite(value):
        message = f"{value} is not a finite number"
    elif bounds and err["type"] in _RANGE_ERRORS:
        message = f"{_short(value)} is out of range: allowed {bounds}"
    elif "input" in err and err["type"] not in ("missing", "model_type", "value_error"):
        message = f"{message} (got {_short(value)})"
    return PolicyProblem(".".join(loc), _line_of(root, loc), message)


_TYPE_ERRORS = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _type_message(expected: str, value: Any) -> str:
    """'expected an integer, got the string "30": remove the quotes'."""
    hint = ""
    if isinstance(value, str) and _resolves_to_non_string(value):
        hint = ": remove the quotes"
    elif isinstance(value, bool) and expected in ("an integer", "a number"):
        hint = ": yes/no/on/off/true/false are booleans in YAML"
    elif isinstance(value, float) and expected == "an integer" and value.is_integer():
        hint = f": write {int(value)} without a decimal point"
    elif expected == "a string" and not isinstance(value, dict | list):
        hint = ": quote it if you meant the text"
    return f"expected {expected}, got {_describe(value)}{hint}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    return _short(value)


def _resolves_to_non_string(text: str) -> bool:
    """Whether YAML would read `text`, unquoted, as a number, boolean or null."""
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
    return tag != "tag:yaml.org,2002:str"


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and (value != value or value in (float("inf"), -float("inf")))


def _short(value: Any, limit: int = 60) -> str:
    """repr() cut to `limit`: an error message never carries a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _allowed_range(loc: list[str], Policy: Any, KindPolicy: Any) -> str | None:
    """'3..100' for kinds.Thing.maxInstances: the bounds declared on the schema field."""
    _, field = _walk(loc, Policy, KindPolicy)
    if field is None:
        return None
    lo = hi = None
    for m in field.metadata:
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
        lo = f">{m.gt}" if getattr(m, "gt", None) is not None else lo
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
        hi = f"<{m.lt}" if getattr(m, "lt", None) is not None else hi
    if lo is None and hi is None:
        return None
    return f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"


def _unknown_key(loc: list[str], Policy: Any, KindPolicy: Any) -> str:
    """'unknown key `templte`: did you mean `template`?', from the keys the schema allows
    where the key stands (the camelCase spelling, as policy.yaml writes them)."""
    key = loc[-1] if loc else ""
    model, field = _walk(loc[:-1], Policy, KindPolicy)
    if field is not None or model is None:
        return f"unknown key `{key}`"
    allowed = sorted(_aliases(model))
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    if not close:  # a case slip (`maxinstances`) is not always close enough for difflib
        close = [a for a in allowed if a.lower() == key.lower()]
    if close:
        return f"unknown key `{key}`: did you mean `{close[0]}`?"
    return f"unknown key `{key}`; allowed here: {', '.join(allowed)}"


def _walk(loc: list[str], Policy: Any, KindPolicy: Any) -> tuple[Any, Any]:
    """Follow `loc` through the schema: (the model it ends in, None) when it names a mapping
    of the schema, (None or a sub-model, the field) when it names a field, (None, None) when
    it leaves the schema."""
    model: Any = Policy
    field = None
    for key in loc:
        if field is not None and model is None:
            return None, None
        if key in ("kinds",) and model is Policy:
            model, field = KindPolicy, None
            continue
        if model is KindPolicy and field is None and key not in _aliases(KindPolicy):
            continue  # the kind's name, e.g. "Thing"
        names = _aliases(model)
        if key not in names:
            return None, None
        field = model.model_fields[names[key]]
        model = _model_of(field.annotation)
        if model is not None:
            field = None  # a nested mapping (e.g. autoscale): its keys come next
    return model, field


def _aliases(model: Any) -> dict[str, str]:
    return {(f.alias or n): n for n, f in model.model_fields.items()}


def _model_of(annotation: Any) -> Any:
    for t in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _line_of(node: yaml.Node | None, loc: Iterable[str]) -> int | None:
    """The 1-based line of the deepest YAML node that `loc` reaches. Of a duplicated key the
    last one counts: it is the value YAML keeps."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        found = [(k, v) for k, v in node.value if k.value == key]
        if not found:
            break
        k, node = found[-1]
        line = k.start_mark.line + 1
    return line
