"""Lesson 10 exercises: attention from the formula to FlashAttention's tiles (Dao et al. 2022; Dao 2023).
Check with `pytest -m lesson10 --impl=exercises`; hints in lessons/hints/lesson10.md."""
from typing import Optional, Tuple

import torch

REFERENCE_MODULES = ("minisora.kernels.tiled",)


def online_softmax_step(row_max: torch.Tensor, row_sum: torch.Tensor, accumulator: torch.Tensor,
                        scores: torch.Tensor, values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lesson 10, exercise 1: one step of the online softmax (Milakov & Gimelshein 2018; Dao 2023, Algorithm 1,
    lines 8-10; lesson §3 derives it).

    The running state of a block of score rows is (row_max m, row_sum l) of shape (..., block_q) and the
    unnormalised output accumulator (..., block_q, d), all relative to m. Fold in one new tile: its scores
    (..., block_q, block_k) and the values of its keys (..., block_k, d). Return the new (row_max, row_sum,
    accumulator), such that after the last tile m is each row's maximum, m + log l its log-sum-exp and
    accumulator / l equals softmax(all scores) @ all values, for any split of the keys into tiles. The state before
    the first tile is m = -inf, l = 0, accumulator = 0. Scores may be -inf (masked keys): a row whose scores are all
    -inf so far keeps m = -inf, l = 0 and a zero accumulator, never NaN.
    """
    raise NotImplementedError("Lesson 10: the online softmax")


def tiled_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            key_padding_mask: Optional[torch.Tensor] = None, block_queries: int = 64,
                            block_keys: int = 64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lesson 10, exercise 2: FlashAttention-2's forward pass (Dao 2023, Algorithm 1; lesson §4).

    q (B, heads, N_q, d), k and v (B, heads, N_k, d); key_padding_mask (B, N_k) bool, True for the keys to attend
    to (None: all). For each tile of `block_queries` queries, walk the keys and values in tiles of `block_keys`,
    folding each tile of scaled scores into the running state with the online softmax (your exercise 1), then
    normalise. Never build a tensor with N_q x N_k entries per head: the biggest temporary is one tile. The last
    tiles may be shorter. Compute in float32 at least (float64 stays float64). Return (O, L): the attention output
    softmax(Q K^T / sqrt(d)) V (B, heads, N_q, d) in q's dtype, and the log-sum-exp of every row of scaled scores
    (B, heads, N_q), in the computing dtype: all that the backward pass will keep.
    """
    raise NotImplementedError("Lesson 10: tiled attention, forward")


def tiled_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                             grad_out: torch.Tensor, logsumexp: torch.Tensor,
                             key_padding_mask: Optional[torch.Tensor] = None, block_queries: int = 64,
                             block_keys: int = 64) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lesson 10, exercise 3: FlashAttention-2's backward pass (Dao 2023, Algorithm 2; lesson §5 derives it).

    q, k, v as in exercise 2; out (B, heads, N_q, d) and logsumexp (B, heads, N_q) are what the forward pass
    returned; grad_out (B, heads, N_q, d) is the loss's gradient with respect to out. Return the gradients
    (dQ, dK, dV) of the loss with respect to q, k and v, each in its input's shape and dtype. Use the one number
    per query that §5 derives from out and grad_out, and rebuild each tile of probabilities from its scores and
    the saved log-sum-exp: like the forward pass, never hold an N_q x N_k tensor, and accumulate in float32 at least.
    """
    raise NotImplementedError("Lesson 10: tiled attention, backward")
