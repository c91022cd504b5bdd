"""Lesson 10 checks (the online softmax, FlashAttention's tiled forward and backward passes), against minisora by
default, your stubs with --impl=exercises, the worked solutions with --impl=solutions. The answers they compare with
are the formula evaluated in float64 and autograd's gradients of it."""
import pytest
import torch
from torch.overrides import TorchFunctionMode

from minisora.models.attention import attention_math

pytestmark = pytest.mark.lesson10


def random(*shape, seed=0, dtype=torch.float64):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5).to(dtype)


def scaled_scores(q, k, mask=None):
    """S = Q K^T / sqrt(d) in float64, -inf at masked keys: the rows whose softmax the kernels compute."""
    scores = q.double() @ k.double().transpose(-2, -1) / q.shape[-1] ** 0.5
    return scores if mask is None else scores.masked_fill(~mask[:, None, None, :], float("-inf"))


def fold(impl, scores, values, widths):
    """Run impl.online_softmax_step over the keys split into tiles of the given widths, from the empty state."""
    rows = scores.shape[:-1]
    state = (torch.full(rows, float("-inf"), dtype=scores.dtype), torch.zeros(rows, dtype=scores.dtype),
             torch.zeros(*rows, values.shape[-1], dtype=scores.dtype))
    start = 0
    for width in widths:
        state = impl.online_softmax_step(*state, scores[..., start:start + width], values[..., start:start + width, :])
        start += width
    assert start == scores.shape[-1]
    return state


class LargestTensor(TorchFunctionMode):
    """Records the largest number of entries of any tensor a torch function returns while the mode is on."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return result


def test_online_softmax_step_over_tiles_equals_the_softmax_of_the_whole_row(impl):
    scores, values = random(3, 5, 40), random(3, 40, 4, seed=1)
    row_max, row_sum, accumulator = fold(impl, scores, values, [16, 16, 8])
    torch.testing.assert_close(accumulator / row_sum[..., None], scores.softmax(-1) @ values)
    torch.testing.assert_close(row_max, scores.amax(-1))
    torch.testing.assert_close(row_max + row_sum.log(), scores.logsumexp(-1))


def test_online_softmax_step_is_exact_for_any_split_and_rising_maxima(impl):
    """The induction of lesson §3: any widths, one key at a time included; the scores rise along the row, so that
    nearly every tile raises the running maximum and everything kept so far must be rescaled."""
    scores = random(4, 30) + torch.linspace(0, 12, 30, dtype=torch.float64)
    values = random(30, 3, seed=1)
    expected = scores.softmax(-1) @ values
    uneven = []
    for width in torch.randint(1, 8, (30,), generator=torch.Generator().manual_seed(2)).tolist():
        uneven.append(min(width, 30 - sum(uneven)))  # random widths from 1 to 7, the last cut to end at key 30
        if sum(uneven) == 30:
            break
    for split in ([1] * 30, [30], uneven):
        row_max, row_sum, accumulator = fold(impl, scores, values, split)
        torch.testing.assert_close(accumulator / row_sum[..., None], expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(row_max + row_sum.log(), scores.logsumexp(-1), rtol=1e-12, atol=1e-12)


def test_online_softmax_step_does_not_overflow_on_large_scores(impl):
    """Scores near 1000: exp(1000) is inf even in float64, so the step must work relative to the running maximum."""
    scores, values = random(2, 24) + 1000.0, random(24, 4, seed=1)
    row_max, row_sum, accumulator = fold(impl, scores, values, [10, 10, 4])
    assert torch.isfinite(row_sum).all() and torch.isfinite(accumulator).all()
    torch.testing.assert_close(accumulator / row_sum[..., None], scores.softmax(-1) @ values)


def test_online_softmax_step_survives_a_fully_masked_tile(impl):
    scores, values = random(2, 3, 8), random(2, 8, 4, seed=1)
    start = (torch.full((2, 3), float("-inf"), dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64),
             torch.zeros(2, 3, 4, dtype=torch.float64))
    masked = impl.online_softmax_step(*start, torch.full((2, 3, 8), float("-inf"), dtype=torch.float64), values)
    assert torch.isinf(masked[0]).all() and (masked[1] == 0).all() and (masked[2] == 0).all()
    row_max, row_sum, accumulator = impl.online_softmax_step(*masked, scores, values)
    torch.testing.assert_close(accumulator / row_sum[..., None], scores.softmax(-1) @ values)


@pytest.mark.parametrize("lengths", [(37, 37), (20, 53), (1, 5)])
def test_tiled_attention_forward_matches_the_formula(impl, lengths):
    q, k, v = random(2, 3, lengths[0], 8), random(2, 3, lengths[1], 8, seed=1), random(2, 3, lengths[1], 8, seed=2)
    mask = torch.arange(lengths[1])[None, :] < torch.tensor([[lengths[1]], [max(1, lengths[1] // 2)]])
    out, logsumexp = impl.tiled_attention_forward(q, k, v, mask, 16, 16)
    torch.testing.assert_close(out, attention_math(q, k, v, mask))
    torch.testing.assert_close(logsumexp, scaled_scores(q, k, mask).logsumexp(-1))


def test_tiled_attention_forward_holds_no_score_matrix(impl):
    """96 queries and 96 keys in tiles of 16 x 32: no tensor made inside may have as many entries as one head's
    96 x 96 scores (a tile has 2 heads x 16 x 32 = 1024)."""
    q, k, v = random(1, 2, 96, 8, dtype=torch.float32), random(1, 2, 96, 8, seed=1, dtype=torch.float32), \
        random(1, 2, 96, 8, seed=2, dtype=torch.float32)
    with LargestTensor() as watch:
        out, logsumexp = impl.tiled_attention_forward(q, k, v, None, 16, 32)
    assert watch.largest < 96 * 96, f"a tensor of {watch.largest} entries: that is the whole score matrix of a head"
    expected = attention_math(q.double(), k.double(), v.double())
    assert out.dtype == torch.float32 and float((out.double() - expected).abs().max()) < 1e-5


def test_tiled_attention_forward_in_float16_returns_float16_computed_in_float32(impl):
    q, k, v = (random(1, 2, 40, 16, seed=seed).to(torch.float16) for seed in range(3))
    out, logsumexp = impl.tiled_attention_forward(q, k, v, None, 16, 16)
    assert out.dtype == torch.float16 and logsumexp.dtype == torch.float32
    expected = attention_math(q.double(), k.double(), v.double())
    assert float((out.double() - expected).norm() / expected.norm()) < 2e-3
    torch.testing.assert_close(logsumexp.double(), scaled_scores(q, k).logsumexp(-1), rtol=1e-5, atol=1e-5)


def test_tiled_attention_backward_matches_autograd_of_the_formula(impl):
    q, k, v = (random(2, 2, 29, 8, seed=seed).requires_grad_() for seed in range(3))
    mask = torch.arange(29)[None, :] < torch.tensor([[29], [11]])
    grad_out = random(2, 2, 29, 8, seed=3)
    attention_math(q, k, v, mask).backward(grad_out)
    with torch.no_grad():
        out = attention_math(q, k, v, mask)
        grads = impl.tiled_attention_backward(q, k, v, out, grad_out, scaled_scores(q, k, mask).logsumexp(-1), mask,
                                              8, 16)
    for mine, expected in zip(grads, (q.grad, k.grad, v.grad)):
        torch.testing.assert_close(mine, expected)
    assert grads[1][1, :, 11:].abs().max() == 0 and grads[2][1, :, 11:].abs().max() == 0  # padding gets no gradient


def test_tiled_attention_backward_of_cross_attention_in_float32_holds_no_score_matrix(impl):
    """80 queries, 64 keys (not the same count, so dQ and dK cannot be mixed up), float32 in and out."""
    q = random(1, 2, 80, 8, dtype=torch.float32).requires_grad_()
    k, v = (random(1, 2, 64, 8, seed=seed, dtype=torch.float32).requires_grad_() for seed in (1, 2))
    grad_out = random(1, 2, 80, 8, seed=3, dtype=torch.float32)
    reference = [t.detach().double().requires_grad_() for t in (q, k, v)]
    out64 = attention_math(*reference)
    out64.backward(grad_out.double())
    out = out64.detach().float()
    logsumexp = scaled_scores(q.detach(), k.detach()).logsumexp(-1).float()
    with torch.no_grad(), LargestTensor() as watch:
        grads = impl.tiled_attention_backward(q.detach(), k.detach(), v.detach(), out, grad_out, logsumexp, None,
                                              16, 16)
    assert watch.largest < 80 * 64, f"a tensor of {watch.largest} entries: that is the whole score matrix of a head"
    for name, mine, expected in zip(("dQ", "dK", "dV"), grads, (t.grad for t in reference)):
        assert mine.dtype == torch.float32 and mine.shape == expected.shape, name
        assert float((mine.double() - expected).norm() / expected.norm()) < 1e-5, name
