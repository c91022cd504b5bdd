"""The training loop every trainer in minisora runs: AdamW, a constant-then-decaying learning rate, EMA of weights,
tqdm progress, and a clear error on a non-finite loss. Trainers supply the model and a function that draws a batch
and returns its loss."""
from typing import Callable, List, Tuple

import torch
from tqdm.auto import tqdm

from .ema import make_ema, update_ema


def train_loop(model: torch.nn.Module, loss_of_batch: Callable[[torch.Generator], torch.Tensor], steps: int,
               learning_rate: float, ema_decay: float, seed: int, description: str = "train",
               progress: bool = True) -> Tuple[torch.nn.Module, List[float]]:
    """Optimise `model` for `steps` steps of loss_of_batch(generator), which draws its own batch; returns
    (ema copy of the model, per-step losses). The learning rate is constant for the first half, then falls
    linearly to 0. Deterministic on CPU for a given seed."""
    generator = torch.Generator().manual_seed(seed)
    ema = make_ema(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, 2 * (1 - step / steps)))
    losses = []
    bar = tqdm(range(steps), desc=description, disable=not progress)
    for _ in bar:
        loss = loss_of_batch(generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {len(losses)}; lower --learning_rate "
                                     f"(now {learning_rate})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        update_ema(ema, model, ema_decay)
        losses.append(loss.item())
        if len(losses) % 100 == 0:
            bar.set_postfix(loss=f"{sum(losses[-100:]) / 100:.4f}")
    return ema, losses
