"""FlashAttention's algorithm in plain PyTorch: attention computed tile by tile with an online softmax, forward and
backward, never holding the N x N attention matrix (Dao et al. 2022; the loop order of FlashAttention-2, Dao 2023).

This is the teaching version of the fused kernel in `triton_attention.py`: the same arithmetic, one tile of
(block_queries x block_keys) scores at a time, written as Python loops over tiles that run on any device. Memory
beyond the inputs and outputs is O(N) (one log-sum-exp per query) plus one tile, instead of the O(N^2) scores
that `attention_math` keeps for its backward pass; the price is recomputing the scores in the backward pass.

Inputs are (B, heads, N, d); every tile is computed in float32 (float64 for float64 inputs) whatever the input
precision, and the outputs are cast back. `key_padding_mask` (B, N_keys) is True for the keys to attend to.
"""
from functools import partial
from typing import Callable, Optional, Tuple

import torch


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           key_padding_mask: Optional[torch.Tensor]) -> None:
    """Shapes that agree, and at least one key for every query: a row with every key masked has no softmax."""
    if q.dim() != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention needs q (B, heads, N_q, d) and k, v (B, heads, N_k, d); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if key_padding_mask is not None:
        if key_padding_mask.shape != (k.shape[0], k.shape[2]) or key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be a bool tensor (B, N_k) = ({k.shape[0]}, {k.shape[2]}); got "
                             f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}")
        empty = (~key_padding_mask.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"key_padding_mask masks every key of batch items {empty}: keep at least one key "
                             f"(True) per item")


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for 16-bit inputs (their sums would lose digits), the input's own type when it is wider."""
    return torch.promote_types(dtype, torch.float32)


def _scores(q_tile: torch.Tensor, k_tile: torch.Tensor, scale: float,
            mask_tile: Optional[torch.Tensor]) -> torch.Tensor:
    """One tile of S = Q K^T / sqrt(d), -inf where the key is padding: (B, heads, block_q, block_k). The tiles
    arrive in the accumulation dtype."""
    scores = (q_tile @ k_tile.transpose(-2, -1)) * scale
    if mask_tile is not None:
        scores = scores.masked_fill(~mask_tile[:, None, None, :], float("-inf"))
    return scores


def online_softmax_step(row_max: torch.Tensor, row_sum: torch.Tensor, accumulator: torch.Tensor,
                        scores: torch.Tensor, values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one tile of scores S (..., block_q, block_k) and its values V (..., block_k, d) into the running row
    maximum m, row sum l (..., block_q) and unnormalised output O (..., block_q, d): the online softmax of Milakov &
    Gimelshein 2018 as FlashAttention-2 uses it (Dao 2023, Algorithm 1, lines 8-10). Start from m = -inf, l = 0,
    O = 0; after the last tile, O / l is softmax(S) V over every tile."""
    # m_new = max(m, rowmax(S))
    new_max = torch.maximum(row_max, scores.amax(dim=-1))
    # a row whose keys so far are all padding has m_new = -inf; subtract 0 there so exp(-inf) gives 0, not NaN
    safe_max = torch.where(new_max == float("-inf"), 0.0, new_max)
    # P~ = exp(S - m_new)
    probabilities = torch.exp(scores - safe_max[..., None])
    # l_new = exp(m - m_new) l + rowsum(P~);   O_new = exp(m - m_new) O + P~ V
    rescale = torch.exp(row_max - safe_max)
    new_sum = rescale * row_sum + probabilities.sum(dim=-1)
    return new_max, new_sum, rescale[..., None] * accumulator + probabilities @ values


def tiled_attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            key_padding_mask: Optional[torch.Tensor] = None, block_queries: int = 64,
                            block_keys: int = 64,
                            callback: Optional[Callable[[dict], None]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 of Dao 2023 (FlashAttention-2 forward): returns O (B, heads, N_q, d) in q's dtype and the
    log-sum-exp L = m + log l of each score row (B, heads, N_q), in the accumulation dtype: all the backward keeps.
    `callback`, if given, is called after every tile with a dict of q_start, k_start (the tile's first query and key)
    and the running row_max m, row_sum l (B, heads, block_q) and unnormalised accumulator O (B, heads, block_q, d)
    of that query tile (to read, not to modify: lesson 10 animates them)."""
    scale, dtype = q.shape[-1] ** -0.5, accumulation_dtype(q.dtype)
    out = torch.empty_like(q)
    logsumexp = torch.empty(q.shape[:-1], dtype=dtype, device=q.device)
    for q_start in range(0, q.shape[2], block_queries):
        q_tile = q[:, :, q_start:q_start + block_queries].to(dtype)
        row_max = torch.full(q_tile.shape[:-1], float("-inf"), dtype=dtype, device=q.device)  # m, (B, heads, block_q)
        row_sum = torch.zeros(q_tile.shape[:-1], dtype=dtype, device=q.device)  # l
        accumulator = torch.zeros(q_tile.shape, dtype=dtype, device=q.device)  # unnormalised O, (B, heads, block_q, d)
        for k_start in range(0, k.shape[2], block_keys):
            mask_tile = None if key_padding_mask is None else key_padding_mask[:, k_start:k_start + block_keys]
            scores = _scores(q_tile, k[:, :, k_start:k_start + block_keys].to(dtype), scale, mask_tile)
            row_max, row_sum, accumulator = online_softmax_step(row_max, row_sum, accumulator, scores,
                                                                 v[:, :, k_start:k_start + block_keys].to(dtype))
            if callback is not None:
                callback(dict(q_start=q_start, k_start=k_start, row_max=row_max, row_sum=row_sum,
                              accumulator=accumulator))
        # O = diag(l)^-1 O_new;   L = m + log l
        out[:, :, q_start:q_start + block_queries] = (accumulator / row_sum[..., None]).to(q.dtype)
        logsumexp[:, :, q_start:q_start + block_queries] = row_max + torch.log(row_sum)
    return out, logsumexp


def tiled_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                             grad_out: torch.Tensor, logsumexp: torch.Tensor,
                             key_padding_mask: Optional[torch.Tensor] = None, block_queries: int = 64,
                             block_keys: int = 64) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 2 of Dao 2023 (FlashAttention-2 backward): the scores are recomputed tile by tile from Q, K and L;
    returns (dQ, dK, dV) in the inputs' dtypes."""
    scale, dtype = q.shape[-1] ** -0.5, accumulation_dtype(q.dtype)
    # D_i = rowsum(dO_i * O_i)  (= sum_j P_ij dP_ij, the softmax's backward term)     (B, heads, N_q)
    delta = (grad_out.to(dtype) * out.to(dtype)).sum(dim=-1)
    grad_q = torch.zeros(q.shape, dtype=dtype, device=q.device)
    grad_k, grad_v = torch.empty_like(k), torch.empty_like(v)
    for k_start in range(0, k.shape[2], block_keys):
        columns = slice(k_start, k_start + block_keys)
        k_tile, v_tile = k[:, :, columns].to(dtype), v[:, :, columns].to(dtype)
        mask_tile = None if key_padding_mask is None else key_padding_mask[:, k_start:k_start + block_keys]
        grad_k_tile, grad_v_tile = torch.zeros_like(k_tile), torch.zeros_like(v_tile)
        for q_start in range(0, q.shape[2], block_queries):
            rows = slice(q_start, q_start + block_queries)
            q_tile, grad_out_tile = q[:, :, rows].to(dtype), grad_out[:, :, rows].to(dtype)
            # P = exp(S - L): the softmax, exactly, without a second pass over the row
            probabilities = torch.exp(_scores(q_tile, k_tile, scale, mask_tile) - logsumexp[:, :, rows, None])
            # dV_j += P^T dO_i
            grad_v_tile += probabilities.transpose(-2, -1) @ grad_out_tile
            # dP = dO_i V_j^T;   dS = P * (dP - D_i)
            grad_scores = probabilities * (grad_out_tile @ v_tile.transpose(-2, -1) - delta[:, :, rows, None])
            # dQ_i += dS K_j / sqrt(d);   dK_j += dS^T Q_i / sqrt(d)
            grad_q[:, :, rows] += (grad_scores @ k_tile) * scale
            grad_k_tile += (grad_scores.transpose(-2, -1) @ q_tile) * scale
        grad_k[:, :, k_start:k_start + block_keys] = grad_k_tile.to(k.dtype)
        grad_v[:, :, k_start:k_start + block_keys] = grad_v_tile.to(v.dtype)
    return grad_q.to(q.dtype), grad_k, grad_v


class RecomputingAttention(torch.autograd.Function):
    """Attention whose backward pass recomputes the scores instead of storing them: it saves Q, K, V, O and the
    log-sum-exp L, O(N d) numbers. `forward_pass(q, k, v, mask) -> (O, L)` and
    `backward_pass(q, k, v, O, dO, L, mask) -> (dQ, dK, dV)` are the tiled loops here or the Triton kernels."""

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask, forward_pass, backward_pass):
        out, logsumexp = forward_pass(q, k, v, key_padding_mask)
        ctx.save_for_backward(q, k, v, out, logsumexp, key_padding_mask)
        ctx.backward_pass = backward_pass
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, logsumexp, key_padding_mask = ctx.saved_tensors
        return (*ctx.backward_pass(q, k, v, out, grad_out, logsumexp, key_padding_mask), None, None, None)


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None,
                    block_queries: int = 64, block_keys: int = 64) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V tile by tile, differentiable, in O(N) extra memory: (B, heads, N_q, d)."""
    check_attention_inputs(q, k, v, key_padding_mask)
    if block_queries < 1 or block_keys < 1:
        raise ValueError(f"block sizes must be positive; got block_queries={block_queries}, block_keys={block_keys}")
    blocks = dict(block_queries=block_queries, block_keys=block_keys)
    return RecomputingAttention.apply(q, k, v, key_padding_mask, partial(tiled_attention_forward, **blocks),
                                      partial(tiled_attention_backward, **blocks))
