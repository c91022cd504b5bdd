"""Lesson 14 checks (a process's part of the batch's loss, the merge of partial attention results), against
minisora by default and your stubs with --impl=exercises."""
import pytest
import torch

from minisora.models.attention import attention_math
from minisora.kernels.tiled import tiled_attention_forward
from minisora.parallel.batch import BatchShard

pytestmark = pytest.mark.lesson14


def test_the_processes_parts_average_to_the_whole_batchs_masked_mean(impl):
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(8, 3, 5, generator=generator, dtype=torch.float64)
    mask = torch.rand(8, 1, 5, generator=generator) > 0.5  # unevenly many elements in each process's rows
    whole = (values * mask).sum() / mask.expand_as(values).sum()  # the mask broadcast over the channels
    for processes in (1, 2, 4):
        parts = [impl.shard_mean(values[BatchShard(rank, processes).rows(8)], mask, BatchShard(rank, processes))
                 for rank in range(processes)]
        assert torch.allclose(sum(parts) / processes, whole, rtol=1e-12, atol=0)
    assert torch.allclose(impl.shard_mean(values[:4], None, BatchShard(0, 2)), values[:4].mean())
    # a process's rows without any masked-in element still count the whole batch's elements
    sparse = torch.zeros(8, 1, 5, dtype=torch.bool)
    sparse[5:, :, 2] = True
    first = impl.shard_mean(values[:4], sparse, BatchShard(0, 2))
    second = impl.shard_mean(values[4:], sparse, BatchShard(1, 2))
    assert first == 0 and torch.allclose((first + second) / 2, (values * sparse).sum() / 9)  # 3 frames x 3 channels


def test_two_partial_attention_results_merge_into_the_whole(impl):
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    whole = attention_math(q, k, v)
    first = tiled_attention_forward(q, k[:, :, :2], v[:, :, :2])  # (O, L) over the first two keys
    second = tiled_attention_forward(q, k[:, :, 2:], v[:, :, 2:])  # over the other four
    out, logsumexp = impl.merge_partial(None, None, *first)
    assert torch.equal(out, first[0]) and torch.equal(logsumexp, first[1])
    out, logsumexp = impl.merge_partial(out, logsumexp, *second)
    assert torch.allclose(out, whole, atol=1e-12)
    scores = (q @ k.transpose(-2, -1)) / 2  # d = 4
    assert torch.allclose(logsumexp, scores.logsumexp(dim=-1), atol=1e-12)
    out_reversed, _ = impl.merge_partial(*second, *first)  # the order of the blocks does not matter
    assert torch.allclose(out_reversed, whole, atol=1e-12)
