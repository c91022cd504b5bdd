"""Spacetime patches: cut a video (B, C, T, H, W) into tokens (B, N, C * pt * ph * pw), and back.

An image is a video with T = 1 and pt = 1. Tokens are ordered time-major, then rows, then columns
(t, h, w), which is the order the positional embeddings of `embeddings.py` follow. Inside a token the values
are ordered (c, pt, ph, pw), the layout of a Conv3d kernel: a Linear layer on these tokens is the "patch
embedding" convolution of ViT (Dosovitskiy et al. 2021) and DiT (Peebles & Xie 2023).
"""
from typing import Sequence, Tuple

import torch
from einops import rearrange


def check_patchable(shape: Sequence[int], patch_size: Tuple[int, int, int]) -> Tuple[int, int, int]:
    """The token grid (T / pt, H / ph, W / pw) of a (C, T, H, W) or (B, C, T, H, W) shape; a clear error otherwise."""
    *_, frames, height, width = shape
    for name, size, patch in (("frames", frames, patch_size[0]), ("height", height, patch_size[1]),
                              ("width", width, patch_size[2])):
        if patch < 1 or size % patch:
            raise ValueError(f"{name} {size} is not divisible by the patch size {patch} (patch_size={tuple(patch_size)}); "
                             f"crop or pad the input to a multiple of {patch}, or choose another patch size")
    return frames // patch_size[0], height // patch_size[1], width // patch_size[2]


def patchify(video: torch.Tensor, patch_size: Tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, C * pt * ph * pw) with N = (T / pt)(H / ph)(W / pw)."""
    if video.dim() != 5:
        raise ValueError(f"patchify expects a video (B, C, T, H, W), got shape {tuple(video.shape)}; "
                         "an image batch (B, C, H, W) becomes one with x.unsqueeze(2)")
    check_patchable(video.shape, patch_size)
    pt, ph, pw = patch_size
    return rearrange(video, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)


def unpatchify(tokens: torch.Tensor, patch_size: Tuple[int, int, int], grid: Tuple[int, int, int]) -> torch.Tensor:
    """(B, N, C * pt * ph * pw) -> (B, C, T, H, W), the inverse of `patchify` for the token grid (T', H', W')."""
    pt, ph, pw = patch_size
    frames, height, width = grid
    if tokens.shape[1] != frames * height * width:
        raise ValueError(f"{tokens.shape[1]} tokens do not fill the grid {tuple(grid)} ({frames * height * width} tokens)")
    return rearrange(tokens, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
                     t=frames, h=height, w=width, pt=pt, ph=ph, pw=pw)
