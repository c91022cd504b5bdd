"""Lesson 11 exercises: will it fit? Counting a training step's memory, and activation checkpointing
(Micikevicius et al. 2018; Chen et al. 2016). Check with `pytest -m lesson11 --impl=exercises`."""
from typing import Tuple

import torch
from torch import nn

from minisora.memory import MemoryConfig

REFERENCE_MODULES = ("minisora.memory", "minisora.models.transformer")


def token_grid(config: MemoryConfig) -> Tuple[int, int, int]:
    """Lesson 11: the (t, h, w) grid of spacetime patches of a video after the VAE: latent frames
    1 + (frames - 1) / temporal_downsample (or frames when temporal_downsample is 1), sides / spatial_downsample,
    then divided by temporal_patch, patch_size, patch_size. A size that does not divide raises ValueError."""
    raise NotImplementedError("Lesson 11: how many tokens a video makes")


def count_dit_parameters(config: MemoryConfig) -> int:
    """Lesson 11: the parameters of an adaLN-Zero DiT without class labels, counted by hand: per block the attention
    projections, the MLP and the adaLN modulation (6 D outputs); the patch embedding; the noise level's MLP
    (256 frequencies -> D -> D); the final layer (2 D modulation and the projection to patch values)."""
    raise NotImplementedError("Lesson 11: counting parameters")


def run_block(block: nn.Module, checkpointed: bool, *inputs: torch.Tensor) -> torch.Tensor:
    """Lesson 11, Chen et al. 2016: block(*inputs); when `checkpointed` and gradients are being recorded, keep only
    the inputs and run the block again in the backward pass (torch.utils.checkpoint, use_reentrant=False)."""
    raise NotImplementedError("Lesson 11: activation checkpointing")
