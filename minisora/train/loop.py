"""The training loop every trainer in minisora runs: AdamW, a constant-then-decaying learning rate, EMA of weights,
mixed precision, skipped steps on non-finite gradients (an error when they persist), tqdm progress, and checkpoints
to resume from. Trainers supply the model and a function that draws a batch and returns its loss."""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .ema import make_ema, update_ema
from .precision import MixedPrecision


@dataclass
class Checkpointing:
    path: Path  # the checkpoint file, rewritten atomically
    config: dict  # the run's configuration: saved with the weights, and compared when resuming
    every: int = 0  # steps between checkpoints; 0 writes one only at the end
    resume: bool = False  # continue from `path` when it exists
    may_differ: Tuple[str, ...] = ()  # config keys that may change between a run and its resumption
    on_save: Optional[Callable[[int, torch.nn.Module], None]] = None  # called with (step, ema model) after each save


def train_loop(model: torch.nn.Module, loss_of_batch: Callable[[torch.Generator], torch.Tensor], steps: int,
               learning_rate: float, ema_decay: float, seed: int, description: str = "train",
               progress: bool = True, checkpointing: Optional[Checkpointing] = None, precision: str = "fp32"
               ) -> Tuple[torch.nn.Module, List[float]]:
    """Optimise `model` for `steps` steps of loss_of_batch(generator), which draws its own batch; returns
    (ema copy of the model, per-step losses). The learning rate is constant for the first half, then falls
    linearly to 0. `precision` "bf16" or "fp16" runs the loss under autocast with float32 master weights (see
    precision.py). Deterministic on CPU for a given seed, and a resumed run continues exactly as an uninterrupted
    one would (the batch generator's and torch's random states are checkpointed too)."""
    generator = torch.Generator().manual_seed(seed)
    device_type = next(model.parameters()).device.type
    mixed_precision = MixedPrecision(precision, device_type, learning_rate=learning_rate)
    ema = make_ema(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, 2 * (1 - step / steps)))
    losses: List[float] = []
    if checkpointing is not None and checkpointing.resume and Path(checkpointing.path).exists():
        state = load_checkpoint(checkpointing.path, checkpointing.config, checkpointing.may_differ)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        mixed_precision.load_state_dict(state["precision"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        losses = list(state["losses"])

    def save() -> None:
        save_checkpoint(checkpointing.path, {
            "config": checkpointing.config, "step": len(losses), "losses": losses, "model": model.state_dict(),
            "ema": ema.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "precision": mixed_precision.state_dict(), "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state()})
        if checkpointing.on_save is not None:
            checkpointing.on_save(len(losses), ema)

    bar = tqdm(range(len(losses), steps), desc=description, disable=not progress, initial=len(losses), total=steps)
    for _ in bar:
        with mixed_precision.autocast():
            loss = loss_of_batch(generator)
        optimizer.zero_grad(set_to_none=True)
        if mixed_precision.backward_and_step(loss, optimizer, model.parameters(), len(losses)):
            update_ema(ema, model, ema_decay)
        schedule.step()
        losses.append(loss.item())
        if len(losses) % 100 == 0:
            bar.set_postfix(loss=f"{sum(losses[-100:]) / 100:.4f}")
        if checkpointing is not None and checkpointing.every and len(losses) % checkpointing.every == 0:
            save()
    if checkpointing is not None and (not checkpointing.every or len(losses) % checkpointing.every):
        save()
    return ema, losses
