"""The video DiT: a Diffusion Transformer over spacetime patches of (latent) video, conditioned on a caption.

Tokens are spacetime patches (pt, ph, pw) of the input with fixed sin-cos positions, a part of each for the frame
and the rest for row and column (`embeddings.sincos_position_embedding`); with `rotary`, self-attention also turns
queries and keys by their positions (3D RoPE, `embeddings.rotary_angles`), so that attention scores see the offset
between two tokens directly. Every block is DiT's adaLN-Zero block
(Peebles & Xie 2023) with cross-attention to the caption's tokens added after self-attention (as PixArt-alpha and
Latte condition on text); the noise level and the pooled caption modulate the norms.

What differs between video transformers is *which tokens attend to which*. Each block attends within windows of
the (T', H', W') token grid, and the layout chooses the windows block by block:

  "spacetime"          every token with every token, in every block (the Sora report's "spacetime patches")
  "latte_interleaved"  spatial blocks (1, H', W') alternate with temporal blocks (T', 1, 1)    (Latte, variant 1)
  "latte_late_fusion"  the first half of the blocks spatial, the second half temporal          (Latte, variant 2)
  "walt_windows"       spatial blocks (1, H', W') alternate with local spacetime windows `window` (W.A.L.T)

The network's signature is F(x, noise_label, caption=None), so it goes behind any denoiser wrapper of the diffusion
core (`EDMDenoiser`, `FlowDenoiser`, ...) and is sampled by every sampler unchanged.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from .attention import Attention
from .dit import FinalLayer, initialize_adaln_zero, modulate
from .embeddings import TimestepEmbedding, rotary_angles, sincos_position_embedding
from .patches import check_patchable, patchify, unpatchify
from .text import TextEncoder
from .transformer import MLP, check_denoiser_inputs, run_block

LAYOUTS = ("spacetime", "latte_interleaved", "latte_late_fusion", "walt_windows")


@dataclass
class VideoDiTConfig:
    frames: int = 16  # T of the input: latent frames, or pixel frames for a pixel-space model
    height: int = 32  # H of the input
    width: int = 32  # W of the input
    in_channels: int = 3  # C of the input (latent channels, or 3 for pixels)
    patch_size: int = 4  # spatial patch side p
    temporal_patch: int = 2  # frames per patch pt
    hidden: int = 96  # token width D
    depth: int = 4  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP width / D
    layout: str = "spacetime"  # which tokens attend to which, block by block: one of LAYOUTS
    window: Tuple[int, int, int] = (2, 2, 2)  # "walt_windows": the spacetime window (t, h, w), in tokens
    rotary: bool = False  # also turn queries and keys by their positions in the window (3D RoPE), besides sin-cos
    vocabulary_size: int = 0  # caption tokenizer's vocabulary; 0 for an unconditional model (no text encoder)
    caption_length: int = 16  # caption ids per sample, <caption> token and padding included
    text_hidden: int = 64  # width of the text encoder
    text_depth: int = 2  # transformer blocks of the text encoder
    attention_backend: str = "sdpa"  # "math", "sdpa" or "flash"
    checkpoint_activations: bool = False  # recompute each block in the backward pass instead of storing its activations
    noise_label_scale: float = 1.0  # multiplies the noise label: 1 for DDPM timesteps, 1000 for flow times, 250 for EDM

    @property
    def out_channels(self) -> int:
        return self.in_channels


def token_grid(config: VideoDiTConfig) -> Tuple[int, int, int]:
    return check_patchable((config.frames, config.height, config.width),
                           (config.temporal_patch, config.patch_size, config.patch_size))


def block_windows(config: VideoDiTConfig) -> List[Tuple[int, int, int]]:
    """The attention window (t, h, w) of every block, in tokens, from the layout."""
    frames, height, width = grid = token_grid(config)
    spatial, temporal = (1, height, width), (frames, 1, 1)
    if config.layout == "spacetime":
        return [grid] * config.depth
    if config.layout == "latte_interleaved":
        return [spatial if index % 2 == 0 else temporal for index in range(config.depth)]
    if config.layout == "latte_late_fusion":
        return [spatial if index < config.depth // 2 else temporal for index in range(config.depth)]
    if config.layout == "walt_windows":
        if any(size % side for size, side in zip(grid, config.window)):
            raise ValueError(f"window {tuple(config.window)} does not tile the token grid {grid}; choose a window "
                             f"whose sides divide it")
        return [spatial if index % 2 == 0 else tuple(config.window) for index in range(config.depth)]
    raise ValueError(f"unknown layout {config.layout!r}; choose one of {LAYOUTS}")


def group_into_windows(tokens: torch.Tensor, grid: Tuple[int, int, int],
                       window: Tuple[int, int, int]) -> torch.Tensor:
    """(B, T H W, D) tokens in (t, h, w) order -> (B * windows, t h w, D): one attention sequence per window."""
    (frames, height, width), (wt, wh, ww) = grid, window
    return rearrange(tokens, "b (t wt h wh w ww) d -> (b t h w) (wt wh ww) d",
                     t=frames // wt, wt=wt, h=height // wh, wh=wh, w=width // ww, ww=ww)


def ungroup_windows(windows: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                    batch: int) -> torch.Tensor:
    """The inverse of `group_into_windows`: (B * windows, t h w, D) -> (B, T H W, D)."""
    (frames, height, width), (wt, wh, ww) = grid, window
    return rearrange(windows, "(b t h w) (wt wh ww) d -> b (t wt h wh w ww) d",
                     b=batch, t=frames // wt, h=height // wh, w=width // ww, wt=wt, wh=wh, ww=ww)


class VideoDiTBlock(nn.Module):
    """adaLN-Zero self-attention within this block's windows, cross-attention to the caption, then the MLP."""

    def __init__(self, config: VideoDiTConfig, window: Tuple[int, int, int]):
        super().__init__()
        dim, self.window, self.grid = config.hidden, window, token_grid(config)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attention = Attention(dim, config.heads, config.attention_backend)
        # positions within a window: RoPE's dot products see only differences, so every window can share them
        angles = rotary_angles(window, dim // config.heads) if config.rotary else None
        self.register_buffer("rotary_angles", angles, persistent=False)  # (t h w, D / heads / 2) or None
        self.text = config.vocabulary_size > 0
        if self.text:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attention = Attention(dim, config.heads, config.attention_backend,
                                             context_dim=config.text_hidden)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, config.mlp_ratio)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: Optional[torch.Tensor] = None,
                text_mask: Optional[torch.Tensor] = None) -> torch.Tensor:  # x (B, N, D), c (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)
        h = group_into_windows(modulate(self.norm1(x), shift1, scale1), self.grid, self.window)
        # x = x + alpha_1 Attn_window(gamma_1 LN(x) + beta_1)
        attended = self.attention(h, rotary_angles=self.rotary_angles)
        x = x + gate1[:, None] * ungroup_windows(attended, self.grid, self.window, x.shape[0])
        if self.text:
            # x = x + CrossAttn(LN(x), caption tokens)
            x = x + self.cross_attention(self.norm_cross(x), context=text, key_padding_mask=text_mask)
        # x = x + alpha_2 MLP(gamma_2 LN(x) + beta_2)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class VideoDiT(nn.Module):
    """x (B, C, T, H, W), noise_label (B,), caption ids (B, caption_length) -> (B, C, T, H, W)."""

    def __init__(self, config: VideoDiTConfig):
        super().__init__()
        self.config = config
        self.patch = (config.temporal_patch, config.patch_size, config.patch_size)
        self.grid = token_grid(config)
        dim = config.hidden
        self.patch_embedding = nn.Linear(config.in_channels * math.prod(self.patch), dim)
        time_dim = 0 if self.grid[0] == 1 else dim // 4 - (dim // 4) % 2
        self.register_buffer("position", sincos_position_embedding(self.grid, dim, time_dim)[None], persistent=False)
        self.noise_embedding = TimestepEmbedding(dim, scale=config.noise_label_scale)
        if config.vocabulary_size:
            self.text_encoder = TextEncoder(config.vocabulary_size, config.caption_length, config.text_hidden,
                                            config.text_depth, max(1, config.text_hidden // 32),
                                            config.attention_backend)
            self.caption_projection = nn.Linear(config.text_hidden, dim)  # pooled caption -> c
        self.blocks = nn.ModuleList(VideoDiTBlock(config, window) for window in block_windows(config))
        self.final = FinalLayer(config)
        initialize_adaln_zero(self, self.noise_embedding, [block.modulation[1] for block in self.blocks])

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, caption: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        config = self.config
        check_denoiser_inputs("VideoDiT", (config.in_channels, config.frames, config.height, config.width), x,
                              caption, "caption (ids from CaptionTokenizer.encode)", config.vocabulary_size > 0,
                              f"vocabulary_size={config.vocabulary_size}")
        tokens = self.patch_embedding(patchify(x, self.patch)) + self.position  # (B, N, D)
        c = self.noise_embedding(noise_label.expand(x.shape[0]))  # (B, D)
        text = text_mask = None
        if caption is not None:
            text, text_mask, pooled = self.text_encoder(caption)  # (B, M, D_text), (B, M), (B, D_text)
            c = c + self.caption_projection(pooled)
        for block in self.blocks:
            tokens = run_block(block, config.checkpoint_activations, tokens, c, text, text_mask)
        return unpatchify(self.final(tokens, c), self.patch, self.grid)  # (B, C, T, H, W)
