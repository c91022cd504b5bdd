"""Config dataclasses are overridden from the command line as --key=value, with types taken from the fields."""
import dataclasses
from typing import Iterable


def _parse_value(name: str, text: str, current):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--{name} takes true or false, got {text!r}")
    try:
        return type(current)(text) if current is not None else text
    except ValueError:
        raise ValueError(f"--{name} takes a {type(current).__name__}, got {text!r}") from None


def apply_overrides(config, overrides: Iterable[str]):
    """A copy of the dataclass `config` with each "--key=value" applied; an unknown key is an error listing the known."""
    known = {field.name for field in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        if not item.startswith("--") or "=" not in item:
            raise ValueError(f"cannot read override {item!r}; write it as --key=value, e.g. --steps=500")
        name, text = item[2:].split("=", 1)
        name = name.replace("-", "_")
        if name not in known:
            raise ValueError(f"unknown config key {name!r} for {type(config).__name__}; known keys: {', '.join(sorted(known))}")
        changes[name] = _parse_value(name, text, getattr(config, name))
    return dataclasses.replace(config, **changes)
