"""Lesson 14 exercises: the two formulas that make parallel training equal one process — each process's part of
the batch's loss, and the merge of two attention results over disjoint keys (ring attention's step). Check with
`pytest -m lesson14 --impl=exercises`."""
from typing import Optional

import torch

from minisora.parallel.batch import BatchShard

REFERENCE_MODULES = ("minisora.parallel.batch", "minisora.parallel.sequence")


def shard_mean(values: torch.Tensor, mask: Optional[torch.Tensor], shard: BatchShard) -> torch.Tensor:
    """Lesson 14: this process's part of the whole batch's masked mean. `values` (B / N, ...) are its rows (rows
    `shard.rows(B)` of the batch), `mask` the whole batch's (broadcastable to (B, ...)) or None:
    N * sum(m l) over its rows / sum(m) over the whole batch (with the count at least 1); without a mask, the mean
    of `values`. Averaged over the N processes it is the one-process masked mean."""
    raise NotImplementedError("Lesson 14: a process's part of the batch's loss")


def merge_partial(out: Optional[torch.Tensor], logsumexp: Optional[torch.Tensor], block_out: torch.Tensor,
                  block_logsumexp: torch.Tensor):
    """Lesson 14: attention results over two disjoint key sets, (O1 (..., N, d), L1 (..., N)) and (O2, L2), merged
    into the result over their union: L = log(e^L1 + e^L2), O = e^(L1 - L) O1 + e^(L2 - L) O2. With out None (the
    first block), (block_out, block_logsumexp) as they are."""
    raise NotImplementedError("Lesson 14: merge two partial attention results")
