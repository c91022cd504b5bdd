"""Sequence parallelism: the tokens of one long clip split across P processes, each holding S / P of them
(lesson 14). Attention is the one place where a token needs the others; three ways to give it them:

- DeepSpeed-Ulysses (Jacobs et al. 2023): an all-to-all turns "my tokens of every head" into "every token of my
  heads" (H / P heads each), attention runs whole and local, and the inverse all-to-all turns it back. Needs
  H % P == 0; each all-to-all moves (P - 1) / P of the tensor.
- Ring attention (Liu et al. 2023): each process keeps its queries while the key/value blocks travel around the
  ring of processes; each block's partial result is merged through the log-sum-exp, the online softmax of lesson 10
  (FlashAttention's merge across blocks, here across processes). The backward pass sends dK and dV around the ring
  with their blocks, back to their owners. No limit on heads; P - 1 steps of K and V forward, P of K, V, dK, dV back.
- For factorised layouts (Latte: spatial blocks attend within a frame, temporal blocks within a position),
  OpenDiT's DSP (Zhao et al. 2024): shard the frames, so spatial attention is local; before a temporal block one
  all-to-all reshards the tokens by position (every frame of N / P positions), after it another switches back:
  two all-to-alls a block, against Ulysses' four (q, k, v in, the output back).

Every function takes this process's shard and returns its shard, differentiable (the backward of an all-to-all is
the inverse all-to-all). Lengths that P does not divide are a clear error (pad the clip or pick another P).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.distributed as dist

from ..kernels.tiled import tiled_attention_backward, tiled_attention_forward
from ..models.attention import attention_sdpa


def group_size(group=None) -> int:
    return dist.get_world_size(group)


def check_divides(length: int, parts: int, what: str) -> None:
    if length % parts:
        raise ValueError(f"{what} {length} cannot be split evenly over {parts} processes; pad it to a multiple of "
                         f"{parts} (e.g. {length + parts - length % parts}) or use a number of processes that "
                         f"divides it")


def shard_of(x: torch.Tensor, dim: int, group=None) -> torch.Tensor:
    """This process's contiguous 1/P of `x` along `dim` (the rank-th chunk)."""
    parts = group_size(group)
    check_divides(x.shape[dim], parts, "a length of")
    return x.chunk(parts, dim=dim)[dist.get_rank(group)]


def _all_to_all(x: torch.Tensor, split_dim: int, gather_dim: int, group) -> torch.Tensor:
    parts = group_size(group)
    # chunk i of split_dim goes to process i; what process i sends us lands as chunk i of gather_dim
    sending = torch.stack(x.chunk(parts, dim=split_dim)).contiguous()  # (P, ...chunk)
    receiving = torch.empty_like(sending)
    dist.all_to_all_single(receiving, sending, group=group)
    return torch.cat(receiving.unbind(0), dim=gather_dim)


class Reshard(torch.autograd.Function):
    """x split along `gather_dim` across the processes -> the same tensor split along `split_dim` instead."""

    @staticmethod
    def forward(ctx, x, split_dim, gather_dim, group):
        ctx.dims, ctx.group = (split_dim, gather_dim), group
        return _all_to_all(x, split_dim, gather_dim, group)

    @staticmethod
    def backward(ctx, grad):
        split_dim, gather_dim = ctx.dims
        return _all_to_all(grad, gather_dim, split_dim, ctx.group), None, None, None


def reshard(x: torch.Tensor, split_dim: int, gather_dim: int, group=None) -> torch.Tensor:
    """One all-to-all: this process's shard along `gather_dim` (the whole of `split_dim`) -> its shard along
    `split_dim` (the whole of `gather_dim`). (B, H, S/P, d) with split_dim=1, gather_dim=2 -> (B, H/P, S, d)."""
    check_divides(x.shape[split_dim], group_size(group), f"dimension {split_dim} of size")
    return Reshard.apply(x, split_dim, gather_dim, group)


def ulysses_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group=None,
                      attention: Callable = attention_sdpa) -> torch.Tensor:
    """DeepSpeed-Ulysses: q, k, v (B, H, S/P, d), this process's tokens -> its tokens' attention output over all S."""
    check_divides(q.shape[1], group_size(group), "a head count of")
    # (B, H, S/P, d) -> (B, H/P, S, d): every token of this process's heads
    q, k, v = (reshard(tensor, split_dim=1, gather_dim=2, group=group) for tensor in (q, k, v))
    out = attention(q, k, v, None)
    # (B, H/P, S, d) -> (B, H, S/P, d)
    return reshard(out, split_dim=2, gather_dim=1, group=group)


def _pass_on(tensor: torch.Tensor, group) -> torch.Tensor:
    """Send `tensor` to the next process of the ring and return what the previous one sent (isend/irecv pairs:
    batch_isend_irecv can hang on gloo)."""
    rank, parts = dist.get_rank(group), group_size(group)
    following, preceding = (rank + 1) % parts, (rank - 1) % parts
    if group is not None:
        following, preceding = dist.get_global_rank(group, following), dist.get_global_rank(group, preceding)
    received = torch.empty_like(tensor)
    requests = [dist.isend(tensor.contiguous(), following, group=group), dist.irecv(received, preceding, group=group)]
    for request in requests:
        request.wait()
    return received


def merge_partial(out: Optional[torch.Tensor], logsumexp: Optional[torch.Tensor], block_out: torch.Tensor,
                  block_logsumexp: torch.Tensor):
    """Two attention results over disjoint key sets -> the result over their union:
    L = log(e^L1 + e^L2),  O = e^(L1 - L) O1 + e^(L2 - L) O2."""
    if out is None:
        return block_out, block_logsumexp
    merged = torch.logaddexp(logsumexp, block_logsumexp)
    return (torch.exp(logsumexp - merged)[..., None] * out
            + torch.exp(block_logsumexp - merged)[..., None] * block_out), merged


class RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, group):
        parts = group_size(group)
        out = logsumexp = None
        travelling = torch.stack([k, v])  # the key/value block now here: our own first
        for step in range(parts):
            block_out, block_logsumexp = tiled_attention_forward(q, travelling[0], travelling[1])
            out, logsumexp = merge_partial(out, logsumexp, block_out, block_logsumexp)
            if step < parts - 1:
                travelling = _pass_on(travelling, group)
        ctx.save_for_backward(q, k, v, out, logsumexp)
        ctx.group = group
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, logsumexp = ctx.saved_tensors
        parts = group_size(ctx.group)
        grad_q = torch.zeros_like(q)
        # each block travels with the gradients gathered for it so far; after P passes it is home again
        travelling = torch.stack([k, v, torch.zeros_like(k), torch.zeros_like(v)])
        for _ in range(parts):
            # with the whole row's O and L, each block's share of the gradients is exact (FlashAttention-2's
            # backward: P = exp(S - L), D = rowsum(dO * O))
            block_grad_q, block_grad_k, block_grad_v = tiled_attention_backward(
                q, travelling[0], travelling[1], out, grad_out, logsumexp)
            grad_q += block_grad_q
            travelling = torch.stack([travelling[0], travelling[1], travelling[2] + block_grad_k,
                                      travelling[3] + block_grad_v])
            travelling = _pass_on(travelling, ctx.group)
        return grad_q, travelling[2], travelling[3], None


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group=None) -> torch.Tensor:
    """Ring attention: q, k, v (B, H, S/P, d), this process's tokens -> its tokens' attention output over all S."""
    return RingAttention.apply(q, k, v, group)


def frames_to_positions(x: torch.Tensor, group=None) -> torch.Tensor:
    """DSP's switch before a temporal block: (B, T/P, N, C), every position of this process's frames ->
    (B, T, N/P, C), every frame of its positions."""
    return reshard(x, split_dim=2, gather_dim=1, group=group)


def positions_to_frames(x: torch.Tensor, group=None) -> torch.Tensor:
    """DSP's switch back after a temporal block: (B, T, N/P, C) -> (B, T/P, N, C)."""
    return reshard(x, split_dim=1, gather_dim=2, group=group)


class GatherTokens(torch.autograd.Function):
    """The processes' shards along `dim` -> the whole tensor on every process. Backward: this process's rows of the
    gradient, times P. Every process computes the same loss from the whole output, so its gradient for the other
    rows is another process's to pass back; what comes back here is P times its share of the parameters'
    gradient, and DDP's average over the P processes is the sum of the shares: the whole gradient."""

    @staticmethod
    def forward(ctx, x, dim, group):
        ctx.dim, ctx.group = dim, group
        parts = [torch.empty_like(x) for _ in range(group_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad):
        parts = group_size(ctx.group)
        return grad.chunk(parts, dim=ctx.dim)[dist.get_rank(ctx.group)] * parts, None, None


SEQUENCE_METHODS = ("ulysses", "ring")


@dataclass
class SequenceSharding:
    """How the processes of `group` share each clip's tokens inside a network: each holds a contiguous 1/P of them
    (whole token frames, for a video DiT), whole-sequence attention runs by `method`, and the network gathers its
    output at the end (`gather`)."""
    method: str = "ulysses"  # SEQUENCE_METHODS: attention over the whole sequence
    group: Optional[object] = None  # the process group (None: every process)

    def __post_init__(self):
        if self.method not in SEQUENCE_METHODS:
            raise ValueError(f"sequence parallel method {self.method!r} is not one of {SEQUENCE_METHODS}")

    def __deepcopy__(self, memo) -> "SequenceSharding":
        return self  # a handle on running processes, shared by every copy of the network (an EMA's, an expert's)

    @property
    def parts(self) -> int:
        return group_size(self.group)

    def shard(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return shard_of(x, dim, self.group)

    def gather(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return GatherTokens.apply(x, dim, self.group)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention over every process's tokens, for this process's queries (an attention backend's signature)."""
        if key_padding_mask is not None:
            raise ValueError("sequence parallel attention takes no key padding mask")
        if self.method == "ring":
            return ring_attention(q, k, v, self.group)
        return ulysses_attention(q, k, v, self.group)
