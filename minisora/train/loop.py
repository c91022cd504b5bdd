"""The training loop every trainer in minisora runs: AdamW (or Muon, see optimizers.py), a learning rate that warms
up, holds, then decays, EMA of weights, gradient accumulation and clipping, mixed precision, skipped steps on
non-finite gradients (an error when they persist), tqdm progress with the loss, metrics to a JSON-lines file, and
checkpoints to resume from, on one process or several (parallel/). Trainers supply the model and a function that
draws a batch and returns its loss."""
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from ..parallel.data_parallel import DataParallel, load_whole_optimizer_state, load_whole_state, whole
from ..checkpoint import load_checkpoint, save_checkpoint
from .ema import make_ema, update_ema
from .optimizers import build_optimizer
from .precision import MixedPrecision


@dataclass
class Checkpointing:
    path: Path  # the checkpoint file, rewritten atomically
    config: dict  # the run's configuration: saved with the weights, and compared when resuming
    every: int = 0  # steps between checkpoints; 0 writes one only at the end
    resume: bool = False  # continue from `path` when it exists
    may_differ: Tuple[str, ...] = ()  # config keys that may change between a run and its resumption
    on_save: Optional[Callable[[int, torch.nn.Module], None]] = None  # called with (step, ema model) after each save


@dataclass
class Logging:
    path: Path  # metrics.jsonl: one JSON object per `every` steps (step, loss, learning rate, gradient norm, speed)
    every: int = 10  # steps per line


def learning_rate_factor(step: int, steps: int, warmup_steps: int = 0) -> float:
    """The learning rate's multiplier at `step`: a linear warmup from 0 over `warmup_steps`, then constant for the
    first half of the run, then falling linearly to 0 at `steps`."""
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    return warmup * min(1.0, 2 * (1 - step / steps))


def learning_rates(learning_rate: float, steps: int, warmup_steps: int = 0) -> List[float]:
    """The learning rate of each of the `steps` steps, as train_loop sets it (for the loss picture)."""
    return [learning_rate * learning_rate_factor(step, steps, warmup_steps) for step in range(steps)]


def read_metrics(path: Path, up_to_step: Optional[int] = None) -> List[dict]:
    """The lines of a metrics.jsonl as dicts (those with step <= up_to_step, when given)."""
    if not Path(path).is_file():
        return []
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [line for line in lines if up_to_step is None or line["step"] <= up_to_step]


def train_loop(model: torch.nn.Module, loss_of_batch: Callable[[torch.Generator], torch.Tensor], steps: int,
               learning_rate: float, ema_decay: float, seed: int, description: str = "train",
               progress: bool = True, checkpointing: Optional[Checkpointing] = None, precision: str = "fp32",
               warmup_steps: int = 0, accumulation: int = 1, clip_norm: float = 0.0, weight_decay: float = 0.01,
               logging: Optional[Logging] = None, optimizer: str = "adamw",
               parallel: Optional[DataParallel] = None, ema: Optional[torch.nn.Module] = None
               ) -> Tuple[torch.nn.Module, List[float]]:
    """Optimise `model` for `steps` optimizer steps of loss_of_batch(generator), which draws its own batch; returns
    (ema copy of the model, per-step losses). Each step accumulates the gradients of `accumulation` batches (the
    mean of their losses), clips their norm to `clip_norm` when positive, and updates with `optimizer` ("adamw", or
    "muon" for the transformer blocks' matrices and AdamW for the rest) at learning_rate * learning_rate_factor(step).
    `precision` "bf16" or "fp16" runs the loss under autocast with float32 master weights (see precision.py).
    Deterministic on CPU for a given seed, and a resumed run continues exactly as an uninterrupted one would (the
    batch generator's and torch's random states are checkpointed too). Under data parallelism (`parallel`, with
    loss_of_batch training the network `parallel.wrap` made) every process runs this loop alike; gradients are
    all-reduced at each step's last micro-batch only, and process 0 alone shows progress, logs and saves (whole
    tensors, gathered from the shards under FSDP, whose sharded model cannot be copied: pass its `ema`, a copy made
    before sharding and sharded alike)."""
    if steps < 1 or accumulation < 1 or warmup_steps < 0 or clip_norm < 0:
        raise ValueError(f"need steps >= 1, accumulation >= 1, warmup_steps >= 0 and clip_norm >= 0; got steps="
                         f"{steps}, accumulation={accumulation}, warmup_steps={warmup_steps}, clip_norm={clip_norm}")
    generator = torch.Generator().manual_seed(seed)
    device_type = next(model.parameters()).device.type
    mixed_precision = MixedPrecision(precision, device_type, learning_rate=learning_rate)
    ema = make_ema(model) if ema is None else ema
    optimizer = build_optimizer(model, optimizer, learning_rate, weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, steps,
                                                                                              warmup_steps))
    losses: List[float] = []
    if checkpointing is not None and checkpointing.resume and Path(checkpointing.path).exists():
        state = load_checkpoint(checkpointing.path, checkpointing.config, checkpointing.may_differ)
        load_whole_state(model, state["model"])
        load_whole_state(ema, state["ema"])
        load_whole_optimizer_state(optimizer, state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        mixed_precision.load_state_dict(state["precision"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        losses = list(state["losses"])
    main = parallel is None or parallel.is_main
    if logging is not None and main:  # keep the lines of the steps the weights have seen; a resumed run writes the rest
        kept = read_metrics(logging.path, up_to_step=len(losses))
        Path(logging.path).parent.mkdir(parents=True, exist_ok=True)
        Path(logging.path).write_text("".join(json.dumps(line) + "\n" for line in kept))

    def save() -> None:  # on every process: the shards are gathered on all, process 0 writes
        weights = whole({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict()})
        if not main:
            return
        save_checkpoint(checkpointing.path, {
            "config": checkpointing.config, "step": len(losses), "losses": losses, **weights,
            "schedule": schedule.state_dict(),
            "precision": mixed_precision.state_dict(), "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state()})
        if checkpointing.on_save is not None:
            checkpointing.on_save(len(losses), ema)

    bar = tqdm(range(len(losses), steps), desc=description, disable=not (progress and main), initial=len(losses),
               total=steps)
    since, norms = time.perf_counter(), []
    for _ in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        for micro_batch in range(accumulation):
            # the gradients of all micro-batches but the last add up locally: one all-reduce a step
            last = parallel is None or micro_batch == accumulation - 1
            with contextlib.nullcontext() if last else parallel.skip_gradient_sync():
                with mixed_precision.autocast():
                    part = loss_of_batch(generator) / accumulation
                mixed_precision.backward(part)
            loss = loss + part.detach()
        if parallel is not None:  # each process holds its part of the whole batch's loss
            loss = parallel.average(loss)
        gradient_norm = mixed_precision.step(optimizer, model.parameters(), len(losses), loss, clip_norm)
        if gradient_norm is not None:
            update_ema(ema, model, ema_decay)
            norms.append(gradient_norm)
        learning_rate_used = schedule.get_last_lr()[0]
        schedule.step()
        losses.append(loss.item())
        if len(losses) % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / 10:.4f}")
        if logging is not None and main and len(losses) % logging.every == 0:
            seconds = time.perf_counter() - since
            line = {"step": len(losses), "loss": sum(losses[-logging.every:]) / logging.every,
                    "learning_rate": learning_rate_used, "gradient_norm": sum(norms) / max(1, len(norms)),
                    "seconds_per_step": seconds / logging.every}
            if device_type == "cuda":  # the allocator's high-water mark so far (the planner's "peak")
                line["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            with open(logging.path, "a") as file:
                file.write(json.dumps(line) + "\n")
            since, norms = time.perf_counter(), []
        if checkpointing is not None and checkpointing.every and len(losses) % checkpointing.every == 0:
            save()
    if checkpointing is not None and (not checkpointing.every or len(losses) % checkpointing.every):
        save()
    return ema, losses
