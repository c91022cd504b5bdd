"""Lesson 14 checks (a process's share of the batch's loss, the merge of partial attention results), against
minisora by default and your stubs with --impl=exercises. The references are independent of the functions checked:
the whole batch's masked mean and its autograd gradient on one process, and attention over all the keys at once."""
import pytest
import torch

from minisora.models.attention import attention_math
from minisora.kernels.tiled import tiled_attention_forward
from minisora.parallel.batch import BatchShard

pytestmark = pytest.mark.lesson14


def test_shard_mean_the_processes_parts_average_to_the_whole_batchs_masked_mean(impl):
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
    # a batch with nothing to count: 0, not NaN
    nothing = impl.shard_mean(values[:4], torch.zeros(8, 1, 5, dtype=torch.bool), BatchShard(0, 2))
    assert nothing == 0


def test_shard_mean_the_averaged_gradients_of_the_parts_are_the_one_process_gradient(impl):
    """What DDP computes — the mean over processes of each one's gradient — against autograd of the whole batch's
    masked mean, for a small linear model whose per-element losses depend on its weights."""
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(12, 4, 6, generator=generator, dtype=torch.float64)  # 12 clips, 4 frames, 6 features
    targets = torch.randn(12, 4, 3, generator=generator, dtype=torch.float64)
    mask = torch.rand(12, 4, 1, generator=generator) > 0.3
    mask[:3] = False  # process 0 of 4 (and half of process 0 of 2) counts nothing
    weights = torch.randn(6, 3, generator=generator, dtype=torch.float64, requires_grad=True)

    def losses(rows):
        return (inputs[rows] @ weights - targets[rows]) ** 2  # (rows, 4, 3)

    whole = (losses(slice(None)) * mask).sum() / mask.expand(12, 4, 3).sum()
    (one_process,) = torch.autograd.grad(whole, weights)
    for processes in (2, 3, 4):
        gradients = []
        for rank in range(processes):
            shard = BatchShard(rank, processes)
            (gradient,) = torch.autograd.grad(impl.shard_mean(losses(shard.rows(12)), mask, shard), weights)
            gradients.append(gradient)
        assert torch.allclose(sum(gradients) / processes, one_process, rtol=1e-12, atol=1e-15), processes


def test_merge_partial_two_partial_attention_results_merge_into_the_whole(impl):
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


def test_merge_partial_a_ring_of_unequal_blocks_merges_exactly_in_any_order_even_with_huge_scores(impl):
    """Five blocks of keys of unequal sizes, merged one by one as they would arrive around a ring, from every
    starting block; scores near 1000, where e^L overflows float64 (e^709 is its largest), must still merge."""
    generator = torch.Generator().manual_seed(3)
    q = torch.randn(1, 2, 7, 4, generator=generator, dtype=torch.float64)  # 7 queries, 12 keys in 5 blocks
    k, v = (torch.randn(1, 2, 12, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    edges = [0, 1, 4, 5, 9, 12]
    for spread in (1.0, 30.0):  # 30: scores of about 30^2 * 4 / 2 ~ a thousand
        q_scaled, k_scaled = q * spread, k * spread
        whole = attention_math(q_scaled, k_scaled, v)
        exact_logsumexp = (q_scaled @ k_scaled.transpose(-2, -1) / 2).logsumexp(dim=-1)
        blocks = [tiled_attention_forward(q_scaled, k_scaled[:, :, a:b], v[:, :, a:b])
                  for a, b in zip(edges, edges[1:])]
        for start in range(len(blocks)):
            out = logsumexp = None
            for step in range(len(blocks)):
                out, logsumexp = impl.merge_partial(out, logsumexp, *blocks[(start - step) % len(blocks)])
            assert torch.isfinite(out).all() and torch.isfinite(logsumexp).all(), (spread, start)
            assert torch.allclose(out, whole, atol=1e-10), (spread, start)
            assert torch.allclose(logsumexp, exact_logsumexp, rtol=1e-12, atol=0), (spread, start)
