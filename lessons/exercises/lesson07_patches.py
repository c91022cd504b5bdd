"""Lesson 07 exercises: patches, positions and attention (ViT), and U-ViT's forward pass. Check with
`pytest -m lesson07 --impl=exercises`; hints in lessons/hints/lesson07.md, worked solutions in lessons/solutions/."""
from typing import Optional, Tuple

import torch

from minisora.models.uvit import UViT

REFERENCE_MODULES = ("minisora.models.patches", "minisora.models.embeddings", "minisora.models.attention",
                     "minisora.models.uvit")


def patchify(video: torch.Tensor, patch_size: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 07, section 1: cut a video (B, C, T, H, W) into non-overlapping pt x ph x pw blocks and flatten each into
    one token: (B, N, C * pt * ph * pw). Tokens run frame by frame, then row by row, then column by column; inside a
    token the numbers run over channel, then frame, row and column within the block (the layout of a Conv3d kernel,
    so that a linear layer on the tokens is the patch-embedding convolution). A side its patch size does not divide
    is a ValueError that names the side."""
    raise NotImplementedError("Lesson 07: cut a video into spacetime patches (ViT, Section 3.1)")


def unpatchify(tokens: torch.Tensor, patch_size: Tuple[int, int, int], grid: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 07, section 1: put the tokens (B, N, C * pt * ph * pw) of a (T', H', W') token grid back in place:
    (B, C, T' pt, H' ph, W' pw), so that unpatchify(patchify(x)) is x."""
    raise NotImplementedError("Lesson 07: put the patches back in place")


def sincos_position_embedding(grid: Tuple[int, int, int], dim: int, time_dim: int = 0) -> torch.Tensor:
    """Lesson 07, section 4: the fixed sin-cos positions of a (T, H, W) token grid in patchify's token order,
    (T * H * W, dim): the first time_dim channels encode the frame, the next (dim - time_dim) / 2 the row and the
    last (dim - time_dim) / 2 the column, each as minisora.models.embeddings.sinusoidal_embedding of that index.
    With time_dim = 0 every frame gets the 2D table of ViT/MAE/DiT."""
    raise NotImplementedError("Lesson 07: the 2D/3D sin-cos positional embedding of ViT/MAE/DiT")


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lesson 07, section 3 (Vaswani et al. 2017, Eq. 1): scaled dot-product attention on queries (B, heads, N_q, d),
    keys and values (B, heads, N_k, d) -> (B, heads, N_q, d), each query's output a weighted mean of the values with
    weights from its scaled scores against every key. Keys where key_padding_mask (B, N_k) is False get weight 0."""
    raise NotImplementedError("Lesson 07: scaled dot-product attention, written out")


def uvit_forward(model: UViT, x: torch.Tensor, noise_label: torch.Tensor,
                 label: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lesson 07, section 6 (Bao et al. 2023, Section 3.1): U-ViT's forward pass, written with the layers of `model`
    (a minisora UViT: use its patch_embedding, noise_embedding, label_embedding, position, in_blocks, mid_block,
    out_blocks, skip_projections, norm, output and final_conv; model.patch, model.grid and model.extra_tokens).
    x (B, C, T, H, W), noise_label (B,) or one value, label (B,) or None for an unconditional model
    -> (B, C, T, H, W).

    Every input is a token: the embedded noise level, then the embedded class (when a label is given), then the
    embedded patches, with the learned positions added. The shallow blocks run in order and each one's output is
    kept; then the middle block; then each deep block takes, first, the projection of [its input, the output of the
    shallow block that mirrors it] (the long skip; none when model.config.long_skips is False). The final norm and
    linear layer give each token its patch back; the noise and class tokens are dropped, the patches put back in
    place and smoothed by final_conv."""
    raise NotImplementedError("Lesson 07: U-ViT's forward pass, all inputs as tokens and the long skips")
