"""Lesson 14 exercises: the two loops that make parallel training compute what one process computes — each
process's share of the batch's loss (data parallelism), and the merge of attention results over disjoint blocks of
keys (ring attention's step). Check with `pytest -m lesson14 --impl=exercises`; hints in lessons/hints/lesson14.md."""
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
    raise NotImplementedError("Lesson 14: a process's share of the batch's loss")


def merge_partial(out: Optional[torch.Tensor], logsumexp: Optional[torch.Tensor], block_out: torch.Tensor,
                  block_logsumexp: torch.Tensor):
    """Lesson 14, exercise 2: one step of ring attention's merge (lesson §3 derives it).

    (out (..., N, d), logsumexp (..., N)) is attention of N queries over some set of keys — its output and, per
    query, the log of the sum of exp(score) over those keys; (block_out, block_logsumexp) the same queries' attention
    over another, disjoint block of keys (the block that just arrived). Return (out, logsumexp) of attention over
    both sets together, exact for any scores (no overflow, however large the log-sum-exps) and for any order of
    the blocks. `out` None means nothing merged yet: return the block's result as it is.
    """
    raise NotImplementedError("Lesson 14: merge two partial attention results")
