"""Config dataclasses are overridden from the command line as --key=value (a true/false field also as a bare
--key, meaning true), with types taken from the fields; and the checks every config shares."""
import dataclasses
import math
from typing import Dict, Iterable


def check_device(device: str, present: bool = True) -> str:
    """"auto", "cpu", "cuda" (or "cuda:N") or "mps" (Apple's GPU); one that PyTorch sees on this machine, when
    `present` (presets name GPUs that the machine importing them may lack, so they are checked for form alone, and
    runs for presence too)."""
    import torch

    if device in ("auto", "cpu"):
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if present and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but PyTorch sees no CUDA GPU on this machine (torch "
                             f"{torch.__version__}); train with --device=auto or --device=cpu, or install a CUDA "
                             f"build of torch")
        index = device.partition(":")[2]
        if not (index == "" or index.isdigit()):
            raise ValueError(f"device={device!r}: the GPU's index must be a number, as in 'cuda:1'")
        if present and index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0; pass --device=cuda:0 (or --device=auto)")
        return device
    if device == "mps":
        if present and not torch.backends.mps.is_available():
            raise ValueError(f"device='mps' but PyTorch sees no Apple GPU (MPS) on this machine (torch "
                             f"{torch.__version__}); pass --device=auto or --device=cpu")
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' (or 'cuda:N') or 'mps', got {device!r}")


def resolve_device(device: str) -> str:
    """The device a run uses: `device` itself, or for "auto" the first of a CUDA GPU, Apple's GPU (MPS) and the CPU
    that this machine has. MPS is untested here (no such machine): an op it lacks is an error from PyTorch that names
    it; PYTORCH_ENABLE_MPS_FALLBACK=1 runs such ops on the CPU."""
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def check_ranges(config, ranges: Dict[str, str]) -> None:
    """Each numeric field named in `ranges` inside its interval, written as in mathematics: "[1, inf)" (at least 1),
    "(0, inf)" (positive), "[0, 1)"; a clear error naming the field, its value and the interval otherwise."""
    for name, interval in ranges.items():
        value = getattr(config, name)
        low_bracket, bounds, high_bracket = interval[0], interval[1:-1], interval[-1]
        low, high = (float(bound) for bound in bounds.split(","))
        number = isinstance(value, (int, float)) and math.isfinite(value)
        above = number and (value > low or (low_bracket == "[" and value == low))
        below = number and (value < high or (high_bracket == "]" and value == high))
        if not (above and below):
            raise ValueError(f"{name}={value!r} is outside {interval}; give {type(config).__name__}.{name} a value "
                             f"in that range (--{name}=...)")


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
        flag = item[2:].replace("-", "_")
        if item.startswith("--") and "=" not in item and isinstance(getattr(config, flag, None), bool):
            item = f"--{flag}=true"  # a bare --overwrite, --resume: true
        if not item.startswith("--") or "=" not in item:
            raise ValueError(f"cannot read override {item!r}; write it as --key=value, e.g. --steps=500")
        name, text = item[2:].split("=", 1)
        name = name.replace("-", "_")
        if name not in known:
            raise ValueError(f"unknown config key {name!r} for {type(config).__name__}; known keys: {', '.join(sorted(known))}")
        changes[name] = _parse_value(name, text, getattr(config, name))
    return dataclasses.replace(config, **changes)
