"""Lesson 10 checks (attention, the online softmax, tiles), against minisora by default and your stubs with
--impl=exercises."""
import pytest
import torch

from minisora.models.attention import attention_math

pytestmark = pytest.mark.lesson10


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5


def test_online_softmax_over_tiles_equals_the_softmax_of_the_whole_row(impl):
    scores, values = random(3, 5, 40), random(3, 40, 4, seed=1)
    row_max, row_sum = torch.full((3, 5), float("-inf"), dtype=torch.float64), torch.zeros(3, 5, dtype=torch.float64)
    accumulator = torch.zeros(3, 5, 4, dtype=torch.float64)
    for start in range(0, 40, 16):  # tiles of 16, 16 and 8 keys
        row_max, row_sum, accumulator = impl.online_softmax_step(row_max, row_sum, accumulator,
                                                                 scores[..., start:start + 16],
                                                                 values[:, start:start + 16])
    torch.testing.assert_close(accumulator / row_sum[..., None], scores.softmax(-1) @ values)
    torch.testing.assert_close(row_max, scores.amax(-1))
    torch.testing.assert_close(row_max + row_sum.log(), scores.logsumexp(-1))


def test_online_softmax_survives_a_fully_masked_tile(impl):
    scores, values = random(2, 3, 8), random(2, 8, 4, seed=1)
    start = (torch.full((2, 3), float("-inf"), dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64),
             torch.zeros(2, 3, 4, dtype=torch.float64))
    masked = impl.online_softmax_step(*start, torch.full((2, 3, 8), float("-inf"), dtype=torch.float64), values)
    assert all(torch.isfinite(t).all() or t is masked[0] for t in masked)  # m stays -inf, l and O stay 0
    row_max, row_sum, accumulator = impl.online_softmax_step(*masked, scores, values)
    torch.testing.assert_close(accumulator / row_sum[..., None], scores.softmax(-1) @ values)


@pytest.mark.parametrize("lengths", [(37, 37), (20, 53), (1, 5)])
def test_tiled_forward_matches_the_formula(impl, lengths):
    q, k, v = random(2, 3, lengths[0], 8), random(2, 3, lengths[1], 8, seed=1), random(2, 3, lengths[1], 8, seed=2)
    mask = torch.arange(lengths[1])[None, :] < torch.tensor([[lengths[1]], [max(1, lengths[1] // 2)]])
    out, logsumexp = impl.tiled_attention_forward(q, k, v, mask, 16, 16)
    torch.testing.assert_close(out, attention_math(q, k, v, mask))
    scores = (q @ k.transpose(-2, -1) / 8 ** 0.5).masked_fill(~mask[:, None, None, :], float("-inf"))
    torch.testing.assert_close(logsumexp, scores.logsumexp(-1))


def test_tiled_backward_matches_autograd_of_the_formula(impl):
    q, k, v = (random(2, 2, 29, 8, seed=seed).requires_grad_() for seed in range(3))
    mask = torch.arange(29)[None, :] < torch.tensor([[29], [11]])
    grad_out = random(2, 2, 29, 8, seed=3)
    attention_math(q, k, v, mask).backward(grad_out)
    with torch.no_grad():
        scores = (q @ k.transpose(-2, -1) / 8 ** 0.5).masked_fill(~mask[:, None, None, :], float("-inf"))
        out = attention_math(q, k, v, mask)
        grads = impl.tiled_attention_backward(q, k, v, out, grad_out, scores.logsumexp(-1), mask, 8, 16)
    for mine, expected in zip(grads, (q.grad, k.grad, v.grad)):
        torch.testing.assert_close(mine, expected)
