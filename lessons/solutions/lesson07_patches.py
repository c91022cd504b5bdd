"""Lesson 07 worked solutions: patches, positions, attention (Dosovitskiy et al. 2021; Vaswani et al. 2017) and
U-ViT's forward pass (Bao et al. 2023). Try the exercises in lessons/exercises/lesson07_patches.py first; these pass
the same checks: `pytest -m lesson07 --impl=solutions`."""
import math
from typing import Optional, Tuple

import torch

from minisora.models.embeddings import sinusoidal_embedding
from minisora.models.uvit import UViT

REFERENCE_MODULES = ("minisora.models.patches", "minisora.models.embeddings", "minisora.models.attention",
                     "minisora.models.uvit")


def patchify(video: torch.Tensor, patch_size: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 07, exercise 1 (section 1): (B, C, T, H, W) -> (B, N, C * pt * ph * pw), tokens in (t, h, w) order,
    values in (c, pt, ph, pw) order; a side its patch size does not divide is a ValueError."""
    batch, channels, frames, height, width = video.shape
    for name, size, patch in zip(("frames", "height", "width"), (frames, height, width), patch_size):
        if size % patch:
            raise ValueError(f"{name} {size} is not divisible by the patch size {patch}; crop or pad the input")
    pt, ph, pw = patch_size
    grid = (frames // pt, height // ph, width // pw)
    # split each axis into (which block, where inside the block): T = T' pt, H = H' ph, W = W' pw
    blocks = video.reshape(batch, channels, grid[0], pt, grid[1], ph, grid[2], pw)
    # bring the block indices (t, h, w) to the front and the values inside a block (c, pt, ph, pw) to the back
    blocks = blocks.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, pt, ph, pw)
    # N = T' H' W' tokens of C pt ph pw numbers each
    return blocks.reshape(batch, math.prod(grid), channels * pt * ph * pw)


def unpatchify(tokens: torch.Tensor, patch_size: Tuple[int, int, int], grid: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 07, exercise 1 (section 1): the inverse of patchify for the token grid (T', H', W')."""
    batch, count, values = tokens.shape
    pt, ph, pw = patch_size
    frames, height, width = grid
    if count != frames * height * width:
        raise ValueError(f"{count} tokens do not fill the grid {tuple(grid)}")
    channels = values // (pt * ph * pw)
    # undo patchify's last step, then its permutation (the inverse of (0, 2, 4, 6, 1, 3, 5, 7)), then the split
    blocks = tokens.reshape(batch, frames, height, width, channels, pt, ph, pw)
    blocks = blocks.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', pt, H', ph, W', pw)
    return blocks.reshape(batch, channels, frames * pt, height * ph, width * pw)


def sincos_position_embedding(grid: Tuple[int, int, int], dim: int, time_dim: int = 0) -> torch.Tensor:
    """Lesson 07, exercise 2 (section 4): [frame (time_dim) | row ((dim - time_dim) / 2) | column (the rest)]."""
    frames, height, width = grid
    per_axis = (dim - time_dim) // 2
    # every token's (t, h, w), in patchify's order: t slowest, w fastest
    t, h, w = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    # each axis gets the Transformer's encoding of its index: [cos(p omega_i), sin(p omega_i)]
    parts = [sinusoidal_embedding(h.flatten(), per_axis), sinusoidal_embedding(w.flatten(), per_axis)]
    if time_dim:
        parts.insert(0, sinusoidal_embedding(t.flatten(), time_dim))
    return torch.cat(parts, dim=1)  # (T H W, dim)


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lesson 07, exercise 3 (section 3): softmax(Q K^T / sqrt(d)) V, with masked keys given no weight."""
    # S = Q K^T / sqrt(d): with unit-variance entries q.k has variance d, so the scores have variance 1 (section 3)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, N_q, N_k)
    if key_padding_mask is not None:
        # exp(-inf) = 0: a masked key gets no weight, and the other weights still add up to 1
        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    # P = softmax(S) over the keys;  O = P V
    return scores.softmax(dim=-1) @ v


def uvit_forward(model: UViT, x: torch.Tensor, noise_label: torch.Tensor,
                 label: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lesson 07, exercise 4 (section 6; Bao et al. 2023, Section 3.1 and Figure 1): U-ViT's forward pass."""
    # all inputs are tokens: the noise level, the class (if any), then the N patches
    tokens = [model.noise_embedding(noise_label.expand(x.shape[0]))[:, None]]  # (B, 1, D)
    if label is not None:
        tokens.append(model.label_embedding(label)[:, None])  # (B, 1, D)
    tokens.append(model.patch_embedding(patchify(x, model.patch)))  # (B, N, D): z_i = E x_i + b
    # h_0 = [noise; class; E x_1 + b; ...; E x_N + b] + positions
    h = torch.cat(tokens, dim=1) + model.position  # (B, extra + N, D)
    shallow = []  # the outputs of the shallow blocks, the first at the bottom of the stack
    for block in model.in_blocks:
        h = block(h)
        shallow.append(h)
    h = model.mid_block(h)
    for index, block in enumerate(model.out_blocks):
        if model.config.long_skips:
            # h = Linear([h, h_mirror]): the first deep block meets the last shallow block, as in a U-Net
            h = model.skip_projections[index](torch.cat([h, shallow.pop()], dim=-1))
        h = block(h)
    # each token back to the C pt ph pw numbers of its patch; the noise and class tokens have no patch
    patches = model.output(model.norm(h))[:, model.extra_tokens:]  # (B, N, C pt ph pw)
    return model.final_conv(unpatchify(patches, model.patch, model.grid))  # 3x3 convolution over the seams
