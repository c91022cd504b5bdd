"""Each process's share of a batch under data parallelism, drawn so that N processes train the model one does.

Every process draws the whole batch's random numbers (which clips, which captions dropped, which frames given, the
noise and the times) from the same generator and keeps its own rows of each: process r of N takes rows
[r B / N, (r + 1) B / N). Losses are normalised by the whole batch, not the share: for a mean over the elements
where a mask is set,

    L_r = N * sum_{i in rows(r)} m_i l_i / sum_i m_i,     so     (1 / N) sum_r L_r = sum_i m_i l_i / sum_i m_i,

the one-process loss; DDP averages the processes' gradients, so their mean is its gradient too. Drawing B numbers
where B / N are used costs nothing next to the network; what it buys is a run on N processes that checks against
one process to float rounding.
"""
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class BatchShard:
    rank: int = 0  # this process
    world_size: int = 1  # processes sharing each batch

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a batch of `batch_size`; a batch the processes cannot share evenly is an error."""
        if batch_size % self.world_size:
            raise ValueError(f"a batch of {batch_size} cannot be shared evenly by {self.world_size} processes; use "
                             f"a batch size (each bucket's, for video) that {self.world_size} divides, or another "
                             f"number of processes")
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def take(self, value, batch_size: int):
        """This process's rows of a tensor whose first dimension is the batch (of each one in a dict of them, a
        network's conditions); anything else as it is."""
        if isinstance(value, dict):
            return {name: self.take(item, batch_size) for name, item in value.items()}
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch_size:
            return value[self.rows(batch_size)]
        return value


def shard_mean(values: torch.Tensor, mask: Optional[torch.Tensor], shard: BatchShard) -> torch.Tensor:
    """N * sum(m l) / sum(m) over this process's rows `values` (B / N, ...) of a batch whose mask `mask` is the whole
    batch's (broadcastable to (B, ...)), or None (every element): the process's part of the whole batch's mean."""
    whole = (values.shape[0] * shard.world_size, *values.shape[1:])
    if mask is None:
        return values.mean()  # the shares are equal, so the mean of the means is the mean
    mask = mask.to(values.dtype)
    count = mask.expand(whole).sum()
    local = shard.take(mask, whole[0]).expand_as(values)
    return shard.world_size * (values * local).sum() / count.clamp(min=1)
