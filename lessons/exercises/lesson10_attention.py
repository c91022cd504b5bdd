"""Lesson 10 exercises: attention from the formula to FlashAttention's tiles (Dao et al. 2022; Dao 2023).
Check with `pytest -m lesson10 --impl=exercises`."""
from typing import Optional, Tuple

import torch

REFERENCE_MODULES = ("minisora.kernels.tiled",)


def online_softmax_step(row_max: torch.Tensor, row_sum: torch.Tensor, accumulator: torch.Tensor,
                        scores: torch.Tensor, values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lesson 10: fold one tile of scores S (..., block_q, block_k) and its values V (..., block_k, d) into the
    running row maximum m and row sum l (..., block_q) and the unnormalised output O (..., block_q, d):
    m_new = max(m, rowmax(S)), P = exp(S - m_new), l_new = exp(m - m_new) l + rowsum(P),
    O_new = exp(m - m_new) O + P V. Return (m_new, l_new, O_new). A row whose scores are all -inf so far must give
    0, not NaN."""
    raise NotImplementedError("Lesson 10: the online softmax")


def tiled_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            key_padding_mask: Optional[torch.Tensor] = None, block_queries: int = 64,
                            block_keys: int = 64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lesson 10, FlashAttention-2's forward pass (Dao 2023, Algorithm 1): for each tile of queries, walk the keys
    tile by tile with the online softmax; return O = softmax(Q K^T / sqrt(d)) V (B, heads, N_q, d) in q's dtype and
    the log-sum-exp L = m + log l of every score row (B, heads, N_q), without ever holding an N x N matrix.
    `key_padding_mask` (B, N_k) is False for keys to ignore."""
    raise NotImplementedError("Lesson 10: tiled attention, forward")


def tiled_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                             grad_out: torch.Tensor, logsumexp: torch.Tensor,
                             key_padding_mask: Optional[torch.Tensor] = None, block_queries: int = 64,
                             block_keys: int = 64) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lesson 10, FlashAttention-2's backward pass (Dao 2023, Algorithm 2): with D = rowsum(dO * O), for each tile
    recompute P = exp(S - L), then dV += P^T dO, dP = dO V^T, dS = P * (dP - D), dQ += dS K / sqrt(d),
    dK += dS^T Q / sqrt(d). Return (dQ, dK, dV)."""
    raise NotImplementedError("Lesson 10: tiled attention, backward")
