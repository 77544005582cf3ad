"""Validation of the frozen config dataclasses (:class:`~star.spec.config.StarConfig`,
:class:`~star.spec.noc_config.NocConfig`, :class:`~star.spec.spatial_config.SpatialConfig`): one
error type and one message format, ``<field> must be <rule>, not <value>``, on one line.
"""

from __future__ import annotations

from dataclasses import fields

__all__ = ["ConfigError", "check_types", "require", "Rule", "in_range", "one_of", "check_rules"]


class ConfigError(ValueError):
    """A configuration value is outside its allowed range; the message is one line naming the
    field."""


def check_types(obj, names=None) -> None:
    """Raise :class:`ConfigError` for a field of the dataclass *obj* not of its annotated type
    (``int`` or ``str``; bool, an int subclass, is not an int). *names*: only these fields."""
    for f in fields(obj):
        if names is not None and f.name not in names:
            continue
        want = {"str": str, "int": int}[f.type]
        value = getattr(obj, f.name)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be of type {want.__name__}, not {value!r}")


def require(obj, ok: bool, field: str, rule: str) -> None:
    """Raise ``ConfigError("<field> must be <rule>, not <value>")`` unless *ok*."""
    if not ok:
        raise ConfigError(f"{field} must be {rule}, not {getattr(obj, field)!r}")


class Rule:
    """A field's allowed values: ``ok(value)`` and the ``text`` of the message, both made from
    the same bounds (:func:`in_range`, :func:`one_of`), so a bound is written once."""

    def __init__(self, ok, text: str):
        self.ok, self.text = ok, text

    def __and__(self, other: "Rule") -> "Rule":
        return Rule(lambda v: self.ok(v) and other.ok(v), f"{self.text} and {other.text}")


def _bound(value: int, name: str | None) -> str:
    return f"{name}={value}" if name else str(value)


def in_range(lo: int, hi: int, *, pow2: bool = False, multiple: int | None = None,
             hi_name: str | None = None, multiple_name: str | None = None) -> Rule:
    """``lo <= v <= hi`` (a power of two, or a multiple of ``multiple``); a value that comes
    from another field is shown as ``<name>=<value>``."""
    kind = "a power of two in" if pow2 else \
        f"a multiple of {_bound(multiple, multiple_name)} in" if multiple else "in"
    return Rule(lambda v: lo <= v <= hi and (not pow2 or v & (v - 1) == 0)
                and (not multiple or v % multiple == 0),
                f"{kind} [{lo}, {_bound(hi, hi_name)}]")


def one_of(values) -> Rule:
    """``v`` is one of ``values`` (two: "a or b"; more: "one of a, b, c")."""
    shown = [repr(v) for v in values]
    text = " or ".join(shown) if len(shown) == 2 else "one of " + ", ".join(shown)
    return Rule(lambda v: v in values, text)


def check_rules(obj, rules: dict) -> None:
    """:func:`require` each field of ``rules`` ({field: :class:`Rule`}), in order."""
    for field, rule in rules.items():
        require(obj, rule.ok(getattr(obj, field)), field, rule.text)
