"""Checks that parallel training computes what one process computes, run on each process of a group
(`launch.run_on_processes(check, 2)`): lesson 14 runs them for real, and the tests assert on them. Every process
draws the same whole tensors from the same seed, computes the single-process reference itself, then its own share
in parallel, and returns the largest difference between the two (float64: rounding only)."""
import torch

from ..models.attention import attention_math
from .sequence import frames_to_positions, positions_to_frames, ring_attention, shard_of, ulysses_attention


def attention_with_gradients(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor):
    """Single-process attention written out: its output and (dQ, dK, dV) for the upstream gradient grad_out."""
    q, k, v = (tensor.clone().requires_grad_(True) for tensor in (q, k, v))
    out = attention_math(q, k, v)
    out.backward(grad_out)
    return out.detach(), q.grad, k.grad, v.grad


def sequence_attention_difference(method: str, batch: int = 2, heads: int = 4, length: int = 12,
                                  head_dim: int = 8) -> float:
    """Ulysses or ring attention of this process's S / P tokens against the rows of single-process attention:
    the largest difference in the output and in dQ, dK, dV."""
    generator = torch.Generator().manual_seed(0)  # every process draws the same whole tensors
    q, k, v, grad_out = (torch.randn(batch, heads, length, head_dim, generator=generator, dtype=torch.float64)
                         for _ in range(4))
    reference = attention_with_gradients(q, k, v, grad_out)
    mine = [shard_of(tensor, dim=2).clone().requires_grad_(True) for tensor in (q, k, v)]
    if method == "ring":
        out = ring_attention(*mine)
    else:
        out = ulysses_attention(*mine, attention=attention_math)
    out.backward(shard_of(grad_out, dim=2))
    found = [out.detach(), *(tensor.grad for tensor in mine)]
    return max((ours - shard_of(theirs, dim=2)).abs().max().item() for ours, theirs in zip(found, reference))


def temporal_attention(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, N, C) -> attention over the T frames at each of the N positions (self-attention, `heads` heads)."""
    batch, frames, positions, width = tokens.shape
    split = tokens.permute(0, 2, 1, 3).reshape(batch * positions, frames, heads, width // heads).transpose(1, 2)
    out = attention_math(split, split, split)
    return out.transpose(1, 2).reshape(batch, positions, frames, width).permute(0, 2, 1, 3)


def dsp_difference(batch: int = 2, frames: int = 6, positions: int = 8, heads: int = 4, head_dim: int = 8) -> float:
    """Temporal attention under DSP's switches (this process's frames -> its positions -> back) against one
    process: the largest difference in the output and the input's gradient."""
    generator = torch.Generator().manual_seed(1)
    x, grad_out = (torch.randn(batch, frames, positions, heads * head_dim, generator=generator, dtype=torch.float64)
                   for _ in range(2))
    whole = x.clone().requires_grad_(True)
    reference = temporal_attention(whole, heads)
    reference.backward(grad_out)
    mine = shard_of(x, dim=1).clone().requires_grad_(True)  # this process's frames, every position
    out = positions_to_frames(temporal_attention(frames_to_positions(mine), heads))
    out.backward(shard_of(grad_out, dim=1))
    return max((out.detach() - shard_of(reference.detach(), dim=1)).abs().max().item(),
               (mine.grad - shard_of(whole.grad, dim=1)).abs().max().item())


def every_sequence_difference() -> dict:
    """{method: largest difference} for Ulysses, ring attention and DSP, on this process."""
    return {"ulysses": sequence_attention_difference("ulysses"), "ring": sequence_attention_difference("ring"),
            "dsp": dsp_difference()}


def data_parallel_difference(mode: str = "ddp", steps: int = 3) -> float:
    """A tiny video DiT trained for `steps` steps (Muon, clipping, given frames, two accumulated micro-batches a
    step) by this process as one of the group under `mode` ("ddp" or "fsdp"), against the same training by this
    process alone: the largest difference between the trained weights (float64; the EMA at decay 0 is the
    weights)."""
    import tempfile
    from dataclasses import replace

    import torch.distributed as dist

    from ..data.buckets import Bucket
    from ..train.video import train_video
    from ..video_config import VideoConfig
    from .data_parallel import DataParallel

    torch.set_default_dtype(torch.float64)
    config = VideoConfig(num_frames=8, hidden=32, depth=2, heads=2, text_hidden=16, text_depth=1, batch_size=4,
                         accumulation=2, steps=steps, warmup_steps=1, task_mix="text:1,first:1,head:1",
                         frame_marking="mask_channel", checkpoint_every=0, ema_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    sets = [(Bucket(8, 32, 32, 4), torch.rand(16, 3, 8, 32, 32, generator=generator) * 2 - 1,
             torch.randint(3, 20, (16, config.caption_length), generator=generator))]
    rank, world_size = dist.get_rank(), dist.get_world_size()
    alone, _ = train_video(replace(config, out_dir=tempfile.mkdtemp()), sets, 20, progress=False)
    together, _ = train_video(replace(config, out_dir=tempfile.mkdtemp()), sets, 20, progress=False,
                              parallel=DataParallel(rank, world_size, torch.device("cpu"), mode))
    return max((ours - theirs).abs().max().item()
               for ours, theirs in zip(together.state_dict().values(), alone.state_dict().values()))
