"""Mixed-precision training (Micikevicius et al. 2018) and the guard against non-finite steps.

The weights stay float32 (the "master weights"); autocast runs the matrix products in bfloat16 or float16 and keeps
softmax, norms and losses in float32. float16's narrow range needs loss scaling: the loss is multiplied by S before
the backward pass so that small gradients do not flush to zero, the gradients are divided by S before the update,
and S halves whenever a step overflows and doubles after a run of good steps (`dynamic_loss_scale_step`, the
paper's dynamic loss scaling; torch.amp.GradScaler does the same). bfloat16 has float32's range and needs no scaling.

Whatever the precision, a step whose gradients are not finite is skipped with a warning, leaving the weights as
they were; several in a row stop the run with an error, and weights that become non-finite stop it at once.
"""
import warnings
from contextlib import nullcontext
from typing import Iterable, Optional, Sequence, Tuple

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
INITIAL_LOSS_SCALE = 2.0 ** 16  # torch.amp.GradScaler's default: large, and halved at once if it overflows
GROWTH_INTERVAL = 2000  # good steps in a row before the scale doubles (GradScaler's default)


def dynamic_loss_scale_step(parameters: Sequence[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                            scale: float, good_steps: int, growth_interval: int = GROWTH_INTERVAL,
                            clip_norm: float = 0.0) -> Tuple[Optional[float], float, int]:
    """Dynamic loss scaling (Micikevicius et al. 2018, section 3.2), after the backward pass of `scale` x loss.

    Divides the gradients by `scale`; if any is inf or nan, skips the optimizer step (the weights stay as they were)
    and halves the scale; otherwise clips their total norm to `clip_norm` (when positive), steps, and doubles the
    scale once `growth_interval` good steps have passed in a row. Returns (the true gradients' norm, or None for a
    skipped step; the next scale; the good steps in a row so far)."""
    if not scale > 0 or growth_interval < 1:
        raise ValueError(f"need a positive loss scale and growth_interval >= 1; got scale={scale}, "
                         f"growth_interval={growth_interval}")
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    # grad(S L) / S = grad L: exact for a power-of-two S (only the exponent changes) unless S grad L overflowed
    for gradient in gradients:
        gradient.mul_(1.0 / scale)
    gradient_norm = torch.nn.utils.get_total_norm(gradients)
    if not torch.isfinite(gradient_norm):
        return None, scale / 2, 0  # S grad L overflowed somewhere: no update, and a smaller S next time
    if clip_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(parameters, clip_norm, gradient_norm)
    optimizer.step()
    good_steps += 1
    if good_steps == growth_interval:  # no overflow for a while: try a larger S, keeping more small gradients
        return gradient_norm.item(), scale * 2, 0
    return gradient_norm.item(), scale, good_steps


class MixedPrecision:
    """Autocast, loss scaling for float16, and the non-finite step guard, for one training run."""

    def __init__(self, precision: str = "fp32", device_type: str = "cpu", max_skipped_in_a_row: int = 5,
                 learning_rate: Optional[float] = None):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
        self.precision, self.device_type, self.dtype = precision, device_type, PRECISIONS[precision]
        self.max_skipped_in_a_row, self.learning_rate = max_skipped_in_a_row, learning_rate
        self.scaling = precision == "fp16"  # bfloat16 and float32 have the range: their scale stays 1
        self.scale = INITIAL_LOSS_SCALE if self.scaling else 1.0
        self.good_steps = 0
        self.skipped_in_a_row = 0

    def autocast(self):
        """The context to run the forward pass and the loss in."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` (scaled for float16)."""
        (loss * self.scale).backward()

    def step(self, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter], step: int,
             loss: torch.Tensor, clip_norm: float = 0.0) -> Optional[float]:
        """The optimizer step on the accumulated gradients, after clipping their total norm to `clip_norm` (when
        positive), unless they are non-finite. Returns the gradient norm before clipping, or None for a skipped
        step (the weights are left as they were)."""
        parameters = [parameter for parameter in parameters if parameter.requires_grad]
        gradient_norm, scale, good_steps = dynamic_loss_scale_step(parameters, optimizer, self.scale, self.good_steps,
                                                                   clip_norm=clip_norm)
        if self.scaling:  # without scaling the scale stays 1: a skipped step does not change it
            self.scale, self.good_steps = scale, good_steps
        if gradient_norm is None:
            self.skip(step, loss)
            return None
        self.skipped_in_a_row = 0
        if not torch.isfinite(torch.nn.utils.get_total_norm(parameters)):
            raise FloatingPointError(f"the weights became non-finite at step {step} (loss {loss.item():.4g}); lower "
                                     f"--learning_rate (now {self.learning_rate})")
        return gradient_norm

    def skip(self, step: int, loss: torch.Tensor) -> None:
        self.skipped_in_a_row += 1
        scale = f"; float16 loss scale now {self.scale:g}" if self.scaling else ""
        warnings.warn(f"step {step} skipped: non-finite gradients (loss {loss.item():.4g}){scale}", RuntimeWarning)
        if self.skipped_in_a_row >= self.max_skipped_in_a_row:
            raise FloatingPointError(
                f"{self.skipped_in_a_row} steps in a row had non-finite gradients (the last at step {step}, loss "
                f"{loss.item():.4g}); lower --learning_rate (now {self.learning_rate}), or train in fp32 or bf16 "
                f"(now {self.precision})")

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped_in_a_row": self.skipped_in_a_row}

    def load_state_dict(self, state: dict) -> None:
        if "scaler" in state:  # a checkpoint from before dynamic_loss_scale_step: torch.amp.GradScaler's state
            scaler = state["scaler"]
            self.scale = scaler.get("scale", self.scale)
            self.good_steps = scaler.get("_growth_tracker", 0)
        else:
            self.scale, self.good_steps = state["scale"], state["good_steps"]
        self.skipped_in_a_row = state["skipped_in_a_row"]
