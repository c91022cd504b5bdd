"""Checkpoints that a crash cannot corrupt, and that refuse to resume a run with a different configuration.

A checkpoint is written to NAME.partial, flushed to disk, and only then renamed over NAME: the rename is atomic, so
NAME always holds either the previous complete checkpoint or the new complete one, whenever the process dies.
"""
import os
from pathlib import Path
from typing import Iterable, Union

import torch


def save_checkpoint(path: Union[str, Path], state: dict) -> Path:
    """Write `state` (tensors, numbers, strings, dicts) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return path


def load_checkpoint(path: Union[str, Path], config: dict, may_differ: Iterable[str] = ()) -> dict:
    """The state saved at `path`, after checking that it was saved by a run of the same `config` (a dict; keys in
    `may_differ` are not compared). Every problem is an error that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train without --resume to start a new run there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a damaged file
        raise RuntimeError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); delete it to "
                           f"start afresh") from None
    saved = state.get("config", {})
    skip = set(may_differ)
    differences = [f"{key}: checkpoint {saved.get(key)!r}, now {config.get(key)!r}"
                   for key in sorted(set(saved) | set(config)) if key not in skip and saved.get(key) != config.get(key)]
    if differences:
        raise ValueError(f"{path} was saved by a run with another configuration ({'; '.join(differences)}); resume "
                         f"with the same settings, or choose another out_dir for the new run")
    return state
