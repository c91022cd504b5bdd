"""Lesson 11 worked solutions: mixed precision and memory (Micikevicius et al. 2018; Chen et al. 2016). Try the
exercises in lessons/exercises/lesson11_memory.py first; these pass the same checks:
`pytest -m lesson11 --impl=solutions`.

Notation: S the loss scale, L the loss, g = grad L the true gradient; B clips a step, N tokens, D the width.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from minisora.memory import MemoryConfig

REFERENCE_MODULES = ("minisora.train.precision", "minisora.memory", "minisora.models.transformer")


def dynamic_loss_scale_step(parameters: Sequence[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                            scale: float, good_steps: int, growth_interval: int = 2000
                            ) -> Tuple[Optional[float], float, int]:
    """Lesson 11, exercise 1 (section 1; Micikevicius et al. 2018, section 3.2: dynamic loss scaling).

    After the backward pass of S L each .grad holds S g (or inf/nan where S g overflowed). Unscale, skip and halve
    on a non-finite gradient, else step, and double S after `growth_interval` good steps in a row. Returns (|g| or
    None for a skipped step, the next S, the good steps in a row)."""
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    # grad(S L) = S grad L, so dividing by S gives back g. For S a power of two the division only changes the
    # exponent: exact in float32, unless S g overflowed (then it stays inf or nan, and the check below sees it)
    for gradient in gradients:
        gradient.mul_(1.0 / scale)
    # one number tells whether any gradient is inf or nan: the norm of a vector with an inf or nan is not finite
    norm = torch.sqrt(sum((gradient.double() ** 2).sum() for gradient in gradients)) if gradients \
        else torch.tensor(0.0)
    if not torch.isfinite(norm):
        # S g overflowed somewhere: the step would write inf or nan into the weights. Skip it (the optimizer is
        # not called, so neither the weights nor its moments change) and try half the scale next time
        return None, scale / 2, 0
    optimizer.step()
    good_steps += 1
    if good_steps == growth_interval:
        # no overflow for `growth_interval` steps: S may be too small, flushing gradients below 2^-24 / S to zero;
        # try twice as large (an overflow will halve it back)
        return norm.item(), scale * 2, 0
    return norm.item(), scale, good_steps


def token_grid(config: MemoryConfig) -> Tuple[int, int, int]:
    """Lesson 11, exercise 2 (section 4): the (t, h, w) grid of spacetime patches of the video after the VAE."""
    # a causal video VAE keeps the first frame and compresses the rest by temporal_downsample: 1 + (T - 1) / s_t
    if (config.frames - 1) % config.temporal_downsample:
        raise ValueError(f"frames={config.frames} must be 1 + {config.temporal_downsample} k for a causal VAE with "
                         f"temporal_downsample={config.temporal_downsample}")
    if config.temporal_downsample > 1:
        latent_frames = 1 + (config.frames - 1) // config.temporal_downsample
    else:
        latent_frames = config.frames  # no temporal compression: every frame is a latent frame
    # space: each side shrinks by spatial_downsample
    if config.height % config.spatial_downsample or config.width % config.spatial_downsample:
        raise ValueError(f"a {config.height} x {config.width} video does not divide by spatial_downsample="
                         f"{config.spatial_downsample}")
    latent_height, latent_width = config.height // config.spatial_downsample, config.width // config.spatial_downsample
    # then patches of temporal_patch x patch_size x patch_size latent values
    grid = []
    for name, size, patch in (("latent frames", latent_frames, config.temporal_patch),
                              ("latent height", latent_height, config.patch_size),
                              ("latent width", latent_width, config.patch_size)):
        if size % patch:
            raise ValueError(f"{name} {size} is not divisible by the patch size {patch}")
        grid.append(size // patch)
    return tuple(grid)


def count_dit_parameters(config: MemoryConfig) -> int:
    """Lesson 11, exercise 3 (section 4): an adaLN-Zero DiT's parameters without class labels, counted by hand."""
    D = config.hidden
    mlp_width = int(D * config.mlp_ratio)
    # a linear layer from a to b features holds a b weights and b biases
    def linear(a: int, b: int) -> int:
        return a * b + b

    patch_values = config.temporal_patch * config.patch_size ** 2 * config.latent_channels  # one token's inputs
    attention = 4 * linear(D, D)  # queries, keys, values, and the output projection
    mlp = linear(D, mlp_width) + linear(mlp_width, D)
    modulation = linear(D, 6 * D)  # shift, scale and gate for each of the two sublayers, from the conditioning c
    block = attention + mlp + modulation  # its LayerNorms have no affine weights: adaLN supplies them
    patch_embedding = linear(patch_values, D)
    noise_level_mlp = linear(256, D) + linear(D, D)  # 256 sinusoidal frequencies -> D -> D
    final_layer = linear(D, 2 * D) + linear(D, patch_values)  # shift and scale, then back to patch values
    return config.depth * block + patch_embedding + noise_level_mlp + final_layer


def run_block(block: nn.Module, checkpointed: bool, *inputs: torch.Tensor) -> torch.Tensor:
    """Lesson 11, exercise 4 (section 3; Chen et al. 2016): block(*inputs), checkpointed when asked and useful."""
    # without recorded gradients there is no backward pass to save memory for, and nothing to recompute
    if checkpointed and torch.is_grad_enabled():
        # keep the inputs only; the backward pass runs block(*inputs) again to rebuild its activations
        return checkpoint(block, *inputs, use_reentrant=False)
    return block(*inputs)
