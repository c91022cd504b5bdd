"""Lesson 11 exercises: mixed precision and memory (Micikevicius et al. 2018; Chen et al. 2016). Check with
`pytest -m lesson11 --impl=exercises` (one exercise: add `-k NAME`). Hints: lessons/hints/lesson11.md; worked
solutions: lessons/solutions/lesson11_memory.py.

The first exercise is the loop of the lesson's first paper: the optimizer step of dynamic loss scaling. The other
three count what a training step holds, and trade memory for compute."""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from minisora.memory import MemoryConfig

REFERENCE_MODULES = ("minisora.train.precision", "minisora.memory", "minisora.models.transformer")


def dynamic_loss_scale_step(parameters: Sequence[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                            scale: float, good_steps: int, growth_interval: int = 2000
                            ) -> Tuple[Optional[float], float, int]:
    """Lesson 11, exercise 1 (section 1; Micikevicius et al. 2018, section 3.2: dynamic loss scaling).

    Called after the backward pass of `scale` x loss, so each parameter's .grad (where not None) holds `scale` times
    the true gradient, possibly overflowed to inf or nan. Leave the true gradients in .grad; if any of them is not
    finite, do not step (the weights must stay as they were) and return a smaller scale for the next step;
    otherwise take the optimizer step, and once `growth_interval` good steps have passed in a row return a larger
    scale (the factors are GradScaler's defaults: a power of two each way, so that unscaling stays exact).

    Returns (the total 2-norm of the true gradients, or None when the step was skipped; the scale for the next step;
    the number of good steps in a row since the scale last changed)."""
    raise NotImplementedError("Lesson 11: a dynamic loss scaler's step")


def token_grid(config: MemoryConfig) -> Tuple[int, int, int]:
    """Lesson 11, exercise 2 (section 4): the (t, h, w) grid of spacetime patches of a video after the VAE: latent
    frames 1 + (frames - 1) / temporal_downsample (or frames when temporal_downsample is 1), sides /
    spatial_downsample, then divided by temporal_patch, patch_size, patch_size. A size that does not divide raises
    ValueError."""
    raise NotImplementedError("Lesson 11: how many tokens a video makes")


def count_dit_parameters(config: MemoryConfig) -> int:
    """Lesson 11, exercise 3 (section 4): the parameters of an adaLN-Zero DiT without class labels, counted by hand:
    per block the attention projections, the MLP and the adaLN modulation (6 D outputs); the patch embedding; the
    noise level's MLP (256 frequencies -> D -> D); the final layer (2 D modulation and the projection to patch
    values)."""
    raise NotImplementedError("Lesson 11: counting parameters")


def run_block(block: nn.Module, checkpointed: bool, *inputs: torch.Tensor) -> torch.Tensor:
    """Lesson 11, exercise 4 (section 3; Chen et al. 2016): block(*inputs); when `checkpointed` and gradients are
    being recorded, keep only the inputs and run the block again in the backward pass (torch.utils.checkpoint,
    use_reentrant=False)."""
    raise NotImplementedError("Lesson 11: activation checkpointing")
