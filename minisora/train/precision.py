"""Mixed-precision training (Micikevicius et al. 2018) and the guard against non-finite steps.

The weights stay float32 (the "master weights"); autocast runs the matrix products in bfloat16 or float16 and keeps
softmax, norms and losses in float32. float16's narrow range needs loss scaling: the loss is multiplied by S before
the backward pass so that small gradients do not flush to zero, the gradients are divided by S before the update,
and S halves whenever a step overflows and doubles after a run of good steps (torch.amp.GradScaler). bfloat16 has
float32's range and needs no scaling.

Whatever the precision, a step whose gradients are not finite is skipped with a warning, leaving the weights as
they were; several in a row stop the run with an error, and weights that become non-finite stop it at once.
"""
import warnings
from contextlib import nullcontext
from typing import Iterable, Optional

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast, loss scaling for float16, and the non-finite step guard, for one training run."""

    def __init__(self, precision: str = "fp32", device_type: str = "cpu", max_skipped_in_a_row: int = 5,
                 learning_rate: Optional[float] = None):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
        self.precision, self.device_type, self.dtype = precision, device_type, PRECISIONS[precision]
        self.max_skipped_in_a_row, self.learning_rate = max_skipped_in_a_row, learning_rate
        self.scaler = torch.amp.GradScaler(device_type, enabled=precision == "fp16")
        self.skipped_in_a_row = 0

    def autocast(self):
        """The context to run the forward pass and the loss in."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` (scaled for float16)."""
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter], step: int,
             loss: torch.Tensor, clip_norm: float = 0.0) -> Optional[float]:
        """The optimizer step on the accumulated gradients, after clipping their total norm to `clip_norm` (when
        positive), unless they are non-finite. Returns the gradient norm before clipping, or None for a skipped
        step (the weights are left as they were)."""
        parameters = [parameter for parameter in parameters if parameter.requires_grad]
        self.scaler.unscale_(optimizer)  # the gradients are now true gradients (a no-op without scaling)
        gradient_norm = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
        if not torch.isfinite(gradient_norm):
            self.skip(step, loss)
            self.scaler.update()  # float16: halve the scale after an overflow
            return None
        if clip_norm > 0:
            torch.nn.utils.clip_grads_with_norm_(parameters, clip_norm, gradient_norm)
        self.scaler.step(optimizer)
        self.scaler.update()
        self.skipped_in_a_row = 0
        if not torch.isfinite(torch.nn.utils.get_total_norm(parameters)):
            raise FloatingPointError(f"the weights became non-finite at step {step} (loss {loss.item():.4g}); lower "
                                     f"--learning_rate (now {self.learning_rate})")
        return gradient_norm.item()

    def skip(self, step: int, loss: torch.Tensor) -> None:
        self.skipped_in_a_row += 1
        scale = f"; float16 loss scale now {self.scaler.get_scale() / 2:g}" if self.scaler.is_enabled() else ""
        warnings.warn(f"step {step} skipped: non-finite gradients (loss {loss.item():.4g}){scale}", RuntimeWarning)
        if self.skipped_in_a_row >= self.max_skipped_in_a_row:
            raise FloatingPointError(
                f"{self.skipped_in_a_row} steps in a row had non-finite gradients (the last at step {step}, loss "
                f"{loss.item():.4g}); lower --learning_rate (now {self.learning_rate}), or train in fp32 or bf16 "
                f"(now {self.precision})")

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict(), "skipped_in_a_row": self.skipped_in_a_row}

    def load_state_dict(self, state: dict) -> None:
        self.scaler.load_state_dict(state["scaler"])
        self.skipped_in_a_row = state["skipped_in_a_row"]
