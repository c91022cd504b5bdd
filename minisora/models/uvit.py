"""U-ViT: "All are Worth Words: A ViT Backbone for Diffusion Models" (Bao et al. 2023).

Everything is a token — the noise level, the class, and the patches of the input — and a plain ViT processes them,
with long skip connections from each shallow block to its mirror deep block (concatenate, then a linear map back to
D), as a U-Net does between its encoder and decoder. A 3x3 convolution after unpatchifying smooths patch seams.
The signature F(x, noise_label, label=None) is DiT's, so it goes behind the same denoiser wrappers.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .embeddings import LabelEmbedding, TimestepEmbedding
from .patches import check_patchable, patchify, unpatchify
from .transformer import TransformerBlock, check_class_conditional_inputs, run_block


@dataclass
class UViTConfig:
    input_size: int = 32  # height = width of the input
    frames: int = 1  # T; 1 for images
    in_channels: int = 3  # channels of the input
    patch_size: int = 2  # spatial patch side
    temporal_patch: int = 1  # frames per patch
    hidden: int = 512  # token width D (U-ViT-S: 512)
    depth: int = 13  # blocks: depth // 2 in, one middle, depth // 2 out (U-ViT-S: 13)
    heads: int = 8  # attention heads (U-ViT-S: 8)
    mlp_ratio: float = 4.0  # MLP width / D
    num_classes: int = 0  # 0 for unconditional; else labels 0..num_classes-1 and a null label num_classes
    final_conv: bool = True  # the 3x3 convolution after unpatchify (Bao et al., Section 3.1)
    attention_backend: str = "sdpa"  # "math", "sdpa" or "flash" (minisora.kernels: no N x N matrix kept)
    checkpoint_activations: bool = False  # recompute each block in the backward pass instead of storing its activations
    noise_label_scale: float = 1.0  # multiplies the noise label: 1 for DDPM timesteps, 1000 for flow times, 250 for EDM
    long_skips: bool = True  # each deep block takes Linear([h, its mirror shallow block's output]); False: a plain ViT


class UViT(nn.Module):
    """x (B, C, T, H, W), noise_label (B,), label (B,) -> (B, C, T, H, W)."""

    def __init__(self, config: UViTConfig):
        super().__init__()
        if config.depth % 2 == 0:
            raise ValueError(f"U-ViT needs an odd depth (in blocks, a middle block, mirrored out blocks), got {config.depth}")
        self.config = config
        self.patch = (config.temporal_patch, config.patch_size, config.patch_size)
        self.grid = check_patchable((config.frames, config.input_size, config.input_size), self.patch)
        dim, half = config.hidden, config.depth // 2
        self.patch_embedding = nn.Linear(config.in_channels * math.prod(self.patch), dim)
        self.noise_embedding = TimestepEmbedding(dim, scale=config.noise_label_scale)
        self.label_embedding = LabelEmbedding(config.num_classes, dim, dropout=0.0) if config.num_classes else None
        self.extra_tokens = 1 + (1 if config.num_classes else 0)  # the noise level, and the class
        self.position = nn.Parameter(torch.zeros(1, self.extra_tokens + math.prod(self.grid), dim))  # learned
        nn.init.trunc_normal_(self.position, std=0.02)

        def block():
            return TransformerBlock(dim, config.heads, config.mlp_ratio, config.attention_backend)

        self.in_blocks = nn.ModuleList(block() for _ in range(half))
        self.mid_block = block()
        self.out_blocks = nn.ModuleList(block() for _ in range(half))
        skips = half if config.long_skips else 0
        self.skip_projections = nn.ModuleList(nn.Linear(2 * dim, dim) for _ in range(skips))  # [h, skip] -> D
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, config.in_channels * math.prod(self.patch))
        self.final_conv = nn.Conv3d(config.in_channels, config.in_channels, (1, 3, 3), padding=(0, 1, 1)) \
            if config.final_conv else nn.Identity()

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        return uvit_forward(self, x, noise_label, label)


def uvit_forward(model: UViT, x: torch.Tensor, noise_label: torch.Tensor,
                 label: Optional[torch.Tensor] = None) -> torch.Tensor:
    """U-ViT's forward pass (Bao et al. 2023, Section 3.1 and Figure 1) on the layers of `model`: x (B, C, T, H, W),
    noise_label (B,) or one value, label (B,) -> (B, C, T, H, W). Lesson 07 has the learner write it."""
    check_class_conditional_inputs("U-ViT", model.config, x, label)
    # all inputs are tokens: [noise level, class, patch_1 .. patch_N] + learned positions
    tokens = [model.noise_embedding(noise_label.expand(x.shape[0]))[:, None]]  # (B, 1, D)
    if label is not None:
        tokens.append(model.label_embedding(label)[:, None])  # (B, 1, D)
    tokens.append(model.patch_embedding(patchify(x, model.patch)))  # (B, N, D)
    h = torch.cat(tokens, dim=1) + model.position  # (B, extra + N, D)
    skips, checkpointed = [], model.config.checkpoint_activations
    for block in model.in_blocks:
        h = run_block(block, checkpointed, h)
        skips.append(h)
    h = run_block(model.mid_block, checkpointed, h)
    for index, block in enumerate(model.out_blocks):
        if model.config.long_skips:
            # the long skip: h = Linear([h, output of the mirror shallow block])                    (B, extra + N, D)
            h = model.skip_projections[index](torch.cat([h, skips.pop()], dim=-1))
        h = run_block(block, checkpointed, h)
    patches = model.output(model.norm(h))[:, model.extra_tokens:]  # drop the noise and class tokens   (B, N, C p p)
    return model.final_conv(unpatchify(patches, model.patch, model.grid))
