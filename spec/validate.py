"""Validation of the frozen config dataclasses (:class:`~star.spec.config.StarConfig`,
:class:`~star.spec.noc_config.NocConfig`, :class:`~star.spec.spatial_config.SpatialConfig`): one
error type and one message format, ``<field> must be <rule>, not <value>``, on one line.
"""

from __future__ import annotations

from dataclasses import fields

__all__ = ["ConfigError", "check_types", "require"]


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
