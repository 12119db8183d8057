"""Request values generated from the request model, for the differential proof.

The defaults and ``metadata.promoter.examples`` are the values the author thought of; a few
generated ones prove the service agrees with the notebook elsewhere too. Hypothesis draws them
from the request's JSON Schema (each field's type, bounds, enum or literal values; a field of a
shape it does not know keeps its default), derandomised (the same notebook always gets the
same values) and bounded: each set costs one papermill run of the notebook. Numbers without
bounds are kept near their default (a notebook is rarely meant for 1e308), strings to letters
and digits; whatever the notebook itself fails on is not compared.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from promoter.building.environment import cache_dir

__all__ = ["generated_requests"]

#: How many values Hypothesis draws to choose the sets from (cheap: no notebook runs).
_DRAWS = 40


def generated_requests(
    schema: dict[str, Any], count: int, known: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Up to ``count`` request bodies valid for ``schema``, other than ``known`` ones.

    Args:
        schema: The request model's JSON Schema.
        count: How many bodies to return.
        known: Bodies already proven (the defaults ``{}``, the examples).

    Returns:
        Distinct bodies that set every parameter, in a fixed order for a fixed schema.
    """
    properties = schema.get("properties") or {}
    if count <= 0 or not properties:
        return []
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.configuration import set_hypothesis_home_dir
    from hypothesis.errors import HypothesisException

    # Hypothesis keeps caches (its Unicode tables) in ./.hypothesis by default: in promoter's
    # cache instead, never in the user's working folder.
    set_hypothesis_home_dir(str(cache_dir() / "hypothesis"))
    fields = {name: _strategy(node, schema) for name, node in properties.items()}
    fields = {name: strategy for name, strategy in fields.items() if strategy is not None}
    if not fields:
        return []
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=_DRAWS,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.fixed_dictionaries(fields))
    def draw(value: dict[str, Any]) -> None:
        drawn.append(value)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            draw()
    except HypothesisException:
        return []
    return _chosen(drawn, count, known or [])


def _strategy(node: dict[str, Any], root: dict[str, Any]) -> Any:
    """A strategy for one JSON Schema node (``None`` for a shape left to its default)."""
    from hypothesis import strategies as st

    node = _resolved(node, root)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "anyOf" in node:
        options = [_strategy(option, root) for option in node["anyOf"]]
        known = [option for option in options if option is not None]
        return st.one_of(known) if len(known) == len(options) else None
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind in ("number", "integer"):
        return _number(node, kind)
    if kind == "string" and not {"pattern", "format"} & set(node):
        alphabet = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        low = int(node.get("minLength", 0))
        return st.text(alphabet, min_size=low, max_size=max(low, int(node.get("maxLength", 12))))
    if kind == "array" and isinstance(node.get("items"), dict):
        items = _strategy(node["items"], root)
        low = int(node.get("minItems", 0))
        high = max(low, int(node.get("maxItems", low + 4)))
        return None if items is None else st.lists(items, min_size=low, max_size=high)
    return None


def _number(node: dict[str, Any], kind: str) -> Any:
    from hypothesis import strategies as st

    default = node.get("default")
    scale = abs(default) if isinstance(default, int | float) else 0
    low = node.get("minimum", node.get("exclusiveMinimum", -10 * scale - 10))
    high = node.get("maximum", node.get("exclusiveMaximum", 10 * scale + 10))
    if kind == "integer":
        low = int(low) + (1 if "exclusiveMinimum" in node else 0)
        high = int(high) - (1 if "exclusiveMaximum" in node else 0)
        return st.integers(low, high)
    return st.floats(
        low,
        high,
        allow_nan=False,
        exclude_min="exclusiveMinimum" in node,
        exclude_max="exclusiveMaximum" in node,
    ).map(lambda value: round(value, 6))


def _resolved(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its local ``$ref`` (``#/$defs/...``) names."""
    reference = node.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/"):
        return node
    target: Any = root
    for part in reference[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _chosen(drawn: list[Any], count: int, known: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last distinct draws (Hypothesis starts from the simplest: zeros, empty strings)."""
    seen = {json.dumps(k, sort_keys=True) for k in known}
    chosen: list[dict[str, Any]] = []
    for value in reversed(drawn):
        key = json.dumps(value, sort_keys=True)
        if isinstance(value, dict) and key not in seen:
            seen.add(key)
            chosen.append(value)
        if len(chosen) == count:
            break
    return chosen
