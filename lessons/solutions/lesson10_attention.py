"""Lesson 10 worked solutions: the online softmax and FlashAttention's tiles (Dao et al. 2022; Dao 2023). Try the
exercises in lessons/exercises/lesson10_attention.py first (hints: lessons/hints/lesson10.md); these pass the same
checks: `pytest -m lesson10 --impl=solutions`.

Notation (the paper's): S = Q K^T / sqrt(d) the scores, P = softmax(S) row by row, O = P V. For each row of S the
online softmax keeps m (the largest score seen so far), l (the sum of exp(s - m) over the scores seen so far) and
the unnormalised output, the sum of exp(s - m) v over the same keys. Each equation sits on the line above the line
that computes it."""
from typing import Optional, Tuple

import torch

REFERENCE_MODULES = ("minisora.kernels.tiled",)

NEGATIVE_INFINITY = float("-inf")


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
    # the largest score of each row in this tile                                         (..., block_q)
    tile_max = scores.max(dim=-1).values
    # m_new = max(m_old, rowmax(S_tile))
    max_now = torch.maximum(row_max, tile_max)

    # A row that has seen only -inf so far has m_new = -inf, and -inf - (-inf) is NaN. Measure such a row from 0
    # instead: its exp(-inf - 0) terms are exactly 0, which is what a masked key must contribute.
    reference_point = max_now.masked_fill(torch.isinf(max_now), 0.0)

    # P~ = exp(S_tile - m_new): every new term measured from the new maximum, so each is at most 1
    weights = torch.exp(scores - reference_point.unsqueeze(-1))  # (..., block_q, block_k)
    # the old terms were measured from m_old: exp(s - m_old) exp(m_old - m_new) = exp(s - m_new)
    correction = torch.exp(row_max - reference_point)  # (..., block_q), at most 1

    # l_new = exp(m_old - m_new) l_old + rowsum(P~)
    sum_now = correction * row_sum + weights.sum(dim=-1)
    # O_new = exp(m_old - m_new) O_old + P~ V_tile
    output_now = correction.unsqueeze(-1) * accumulator + torch.matmul(weights, values)
    return max_now, sum_now, output_now


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
    batch, heads, num_queries, head_dim = q.shape
    num_keys = k.shape[2]
    # float16 and bfloat16 sums lose digits: compute in float32, or float64 when that is what we are given
    work_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = 1.0 / head_dim ** 0.5

    output_tiles, logsumexp_tiles = [], []
    for first_query in range(0, num_queries, block_queries):
        q_tile = q[:, :, first_query:first_query + block_queries].to(work_dtype)  # (B, heads, Br, d)
        rows = q_tile.shape[2]  # Br, shorter in the last tile

        # Algorithm 1, line 6: the empty state, m = -inf, l = 0, O = 0
        running_max = torch.full((batch, heads, rows), NEGATIVE_INFINITY, dtype=work_dtype, device=q.device)
        running_sum = torch.zeros((batch, heads, rows), dtype=work_dtype, device=q.device)
        running_output = torch.zeros((batch, heads, rows, head_dim), dtype=work_dtype, device=q.device)

        for first_key in range(0, num_keys, block_keys):
            k_tile = k[:, :, first_key:first_key + block_keys].to(work_dtype)  # (B, heads, Bc, d)
            v_tile = v[:, :, first_key:first_key + block_keys].to(work_dtype)
            # Algorithm 1, line 8: S_ij = Q_i K_j^T / sqrt(d), one (Br, Bc) tile
            score_tile = torch.matmul(q_tile, k_tile.transpose(2, 3)) * scale
            if key_padding_mask is not None:
                # a padding key gets the score -inf, so exp gives it weight 0
                keep = key_padding_mask[:, first_key:first_key + block_keys].view(batch, 1, 1, -1)
                score_tile = score_tile.masked_fill(keep.logical_not(), NEGATIVE_INFINITY)
            # Algorithm 1, lines 8-10: fold the tile into m, l, O
            running_max, running_sum, running_output = online_softmax_step(
                running_max, running_sum, running_output, score_tile, v_tile)

        # Algorithm 1, line 12: O_i = diag(l)^-1 O_i, the softmax's normalisation, done once at the end
        output_tiles.append((running_output / running_sum.unsqueeze(-1)).to(q.dtype))
        # Algorithm 1, line 13: L_i = m_i + log(l_i), the row's log-sum-exp
        logsumexp_tiles.append(running_max + torch.log(running_sum))

    # the query tiles are independent: stack their rows back in order
    return torch.cat(output_tiles, dim=2), torch.cat(logsumexp_tiles, dim=2)


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
    batch, heads, num_queries, head_dim = q.shape
    num_keys = k.shape[2]
    work_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = 1.0 / head_dim ** 0.5
    q_work, k_work, v_work = q.to(work_dtype), k.to(work_dtype), v.to(work_dtype)
    grad_out_work, saved_logsumexp = grad_out.to(work_dtype), logsumexp.to(work_dtype)

    # Algorithm 2, line 4 (lesson §5): D_i = sum_j P_ij dP_ij = dO_i . O_i, one number per query   (B, heads, N_q)
    row_dot = (grad_out_work * out.to(work_dtype)).sum(dim=-1)

    grad_q = torch.zeros_like(q_work)
    grad_k = torch.zeros_like(k_work)
    grad_v = torch.zeros_like(v_work)
    # outer loop over key tiles (FlashAttention-2): dK_j and dV_j are finished when their tile is
    for first_key in range(0, num_keys, block_keys):
        keys = slice(first_key, first_key + block_keys)
        k_tile, v_tile = k_work[:, :, keys], v_work[:, :, keys]  # (B, heads, Bc, d)
        for first_query in range(0, num_queries, block_queries):
            queries = slice(first_query, first_query + block_queries)
            q_tile, grad_out_tile = q_work[:, :, queries], grad_out_work[:, :, queries]  # (B, heads, Br, d)

            # S_ij = Q_i K_j^T / sqrt(d), recomputed: the forward pass did not keep it
            score_tile = torch.matmul(q_tile, k_tile.transpose(2, 3)) * scale
            if key_padding_mask is not None:
                keep = key_padding_mask[:, keys].view(batch, 1, 1, -1)
                score_tile = score_tile.masked_fill(keep.logical_not(), NEGATIVE_INFINITY)
            # P_ij = exp(S_ij - L_i): exactly the softmax, since L_i is the log of its whole row's denominator
            probability_tile = torch.exp(score_tile - saved_logsumexp[:, :, queries].unsqueeze(-1))  # (Br, Bc)

            # O = P V, so dV_j = sum over query tiles of P_ij^T dO_i
            grad_v[:, :, keys] += torch.matmul(probability_tile.transpose(2, 3), grad_out_tile)
            # and dP_ij = dO_i V_j^T
            grad_probability_tile = torch.matmul(grad_out_tile, v_tile.transpose(2, 3))
            # the softmax's backward (lesson §5): dS_ij = P_ij (dP_ij - D_i)
            grad_score_tile = probability_tile * (grad_probability_tile - row_dot[:, :, queries].unsqueeze(-1))
            # S = Q K^T / sqrt(d): dQ_i += dS_ij K_j / sqrt(d) and dK_j += dS_ij^T Q_i / sqrt(d)
            grad_q[:, :, queries] += scale * torch.matmul(grad_score_tile, k_tile)
            grad_k[:, :, keys] += scale * torch.matmul(grad_score_tile.transpose(2, 3), q_tile)

    return grad_q.to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype)
