"""Lesson 14 worked solutions: a process's share of the loss (Li et al. 2020, PyTorch DDP) and ring attention's
merge (Liu et al. 2023). Try the exercises in lessons/exercises/lesson14_parallel.py first (hints:
lessons/hints/lesson14.md); these pass the same checks: `pytest -m lesson14 --impl=solutions`.

Notation (the lesson's): N processes share a batch of B rows, process r holding rows(r); element i has the loss l_i
and the mask m_i (1 if the loss counts it); M = sum_i m_i over the WHOLE batch. For attention, a block of keys J
gives each query its output O_J and its log-sum-exp L_J = log sum_{j in J} exp(s_j). Each equation sits on the
line above the line that computes it."""
from typing import Optional

import torch

from minisora.parallel.batch import BatchShard

REFERENCE_MODULES = ("minisora.parallel.batch", "minisora.parallel.sequence")


def shard_mean(values: torch.Tensor, mask: Optional[torch.Tensor], shard: BatchShard) -> torch.Tensor:
    """Lesson 14, exercise 1: this process's loss under data parallelism (lesson §1 derives it).

    `values` (B / N, ...) are the per-element losses of this process's rows of the batch (rows `shard.rows(B)`, with
    N = `shard.world_size` processes); `mask` is the WHOLE batch's mask, broadcastable to (B, ...), True for the
    elements the loss counts (None: every element). Return the number such that, when DDP averages the N
    processes' gradients, the average is the gradient of the whole batch's masked mean on one process — however
    unevenly the masked-in elements fall among the processes, including a process that has none. A batch whose mask
    counts no element at all must give 0, not NaN.
    """
    processes = shard.world_size
    rows_here = values.shape[0]
    whole_batch = rows_here * processes
    whole_shape = (whole_batch, *values.shape[1:])  # (B, ...)

    if mask is None:
        # every process holds B / N rows of equally many elements: the mean of the N local means is the mean
        return values.mean()

    weights = mask.to(values.dtype)
    # M = sum_i m_i over the whole batch (the mask broadcast over, e.g., the channels it does not name); at least 1,
    # so that a batch with nothing to count gives 0 / 1 = 0
    whole_count = weights.expand(whole_shape).sum().clamp(min=1)
    # this process's rows of the mask, broadcast to its values                                        (B / N, ...)
    weights_here = weights.expand(whole_shape)[shard.rows(whole_batch)]
    # L_r = N sum_{i in rows(r)} m_i l_i / M, so that (1 / N) sum_r L_r = sum_i m_i l_i / M, the one-process loss
    return processes * (weights_here * values).sum() / whole_count


def merge_partial(out: Optional[torch.Tensor], logsumexp: Optional[torch.Tensor], block_out: torch.Tensor,
                  block_logsumexp: torch.Tensor):
    """Lesson 14, exercise 2: one step of ring attention's merge (lesson §3 derives it).

    (out (..., N, d), logsumexp (..., N)) is attention of N queries over some set of keys — its output and, per
    query, the log of the sum of exp(score) over those keys; (block_out, block_logsumexp) the same queries' attention
    over another, disjoint block of keys (the block that just arrived). Return (out, logsumexp) of attention over
    both sets together, exact for any scores (no overflow, however large the log-sum-exps) and for any order of
    the blocks. `out` None means nothing merged yet: return the block's result as it is.
    """
    if out is None:
        # nothing merged yet: the first block's attention is attention over the keys seen so far
        return block_out, block_logsumexp

    # e^L = e^L1 + e^L2, computed as m + log(e^(L1 - m) + e^(L2 - m)) with m = max(L1, L2): no exp of a large number
    largest = torch.maximum(logsumexp, block_logsumexp)
    merged_logsumexp = largest + torch.log(torch.exp(logsumexp - largest) + torch.exp(block_logsumexp - largest))

    # O_J = sum_{j in J} e^(s_j - L_J) v_j, so sum_{j in J} e^(s_j - L) v_j = e^(L_J - L) O_J: each block's output
    # reweighted by its share e^(L_J - L) <= 1 of the union's softmax mass (the two shares add up to 1)
    share_so_far = torch.exp(logsumexp - merged_logsumexp)[..., None]  # (..., N, 1)
    share_of_block = torch.exp(block_logsumexp - merged_logsumexp)[..., None]
    # O = e^(L1 - L) O1 + e^(L2 - L) O2
    merged_out = share_so_far * out + share_of_block * block_out
    return merged_out, merged_logsumexp
