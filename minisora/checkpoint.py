"""Checkpoints that a crash cannot corrupt, and that refuse to resume a run with a different configuration; and run
folders that a new run does not silently take over.

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


def read_checkpoint(path: Union[str, Path], if_missing: str, if_damaged: str, error=ValueError):
    """What a checkpoint file holds, read onto the CPU with weights_only (tensors, numbers, strings: nothing in it
    is run); a missing file is a FileNotFoundError that says `if_missing`, a damaged or foreign one an `error` that
    says `if_damaged`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; {if_missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # torch raises several kinds for a truncated or foreign file
        raise error(f"{path} is not a readable checkpoint ({type(failure).__name__}: {str(failure)[:300]}); "
                    f"{if_damaged}") from None


def load_checkpoint(path: Union[str, Path], config: dict, may_differ: Iterable[str] = ()) -> dict:
    """The state saved at `path`, after checking that it was saved by a run of the same `config` (a dict; keys in
    `may_differ` are not compared). Every problem is an error that says what to do."""
    state = read_checkpoint(path, "train without --resume to start a new run there", "delete it to start afresh",
                            RuntimeError)
    saved = state.get("config", {})
    skip = set(may_differ)
    differences = [f"{key}: checkpoint {saved.get(key)!r}, now {config.get(key)!r}"
                   for key in sorted(set(saved) | set(config)) if key not in skip and saved.get(key) != config.get(key)]
    if differences:
        raise ValueError(f"{path} was saved by a run with another configuration ({'; '.join(differences)}); resume "
                         f"with the same settings, or choose another out_dir for the new run")
    return state


FINISHED_MARK = "metrics.json"  # every trainer writes it last: a folder that holds it holds a finished run


def check_run_folder(out_dir: Union[str, Path], overwrite: bool = False, resume: bool = False) -> None:
    """Refuse, before any work, to train into a folder that holds a run, finished or not, unless that run is being
    resumed (`resume`: the same configuration continues from its checkpoint) or replaced (`overwrite`): a model that
    took minutes to train is never replaced by a run that was not asked to."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out_dir={out} is a file, not a folder; pass --out_dir=A_FOLDER (made if missing)")
    if overwrite or resume or not out.is_dir():
        return
    if (out / FINISHED_MARK).is_file():
        kept = ", ".join(sorted(path.name for path in out.iterdir() if path.is_file())[:6])
        raise ValueError(f"{out} holds a finished run ({kept}); pass --overwrite=true to replace it, --resume=true to "
                         f"continue it, or --out_dir=ANOTHER_FOLDER for the new run")
    checkpoints = sorted(path.name for path in out.glob("*checkpoint.pt"))
    if checkpoints:
        raise ValueError(f"{out} holds an unfinished run ({', '.join(checkpoints)}); pass --resume=true to continue "
                         f"it, --overwrite=true to start over, or --out_dir=ANOTHER_FOLDER")
