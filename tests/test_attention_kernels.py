"""The hand-written FlashAttention (minisora.kernels) against a float64 reference: outputs and all three input
gradients, odd lengths, padding masks, and the memory it does not keep."""
import pytest
import torch

from minisora.kernels import TRITON_AVAILABLE, flash_attention
from minisora.kernels.tiled import tiled_attention
from minisora.models.attention import Attention, attention_math

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def random_inputs(batch, heads, n_queries, n_keys, head_dim, dtype, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, n_queries, head_dim), (batch, heads, n_keys, head_dim), (batch, heads, n_keys, head_dim)]
    # scaled so that the softmax is neither uniform nor one-hot
    return [(torch.randn(shape, generator=generator) * 1.5).to(device=device, dtype=dtype) for shape in shapes]


def padding_mask(batch, n_keys, seed=1, device="cpu"):
    """Each item keeps a random number of leading keys (at least one), as packed sequences of different lengths do."""
    lengths = torch.randint(1, n_keys + 1, (batch,), generator=torch.Generator().manual_seed(seed))
    lengths[0] = n_keys  # one item unpadded
    return (torch.arange(n_keys)[None, :] < lengths[:, None]).to(device)


def outputs_and_gradients(attention, q, k, v, mask, seed=2):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = attention(q, k, v, mask)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    out.backward(grad_out)
    return [out.detach(), q.grad, k.grad, v.grad]


def relative_errors(results, references):
    return [float((r.double().cpu() - ref.cpu()).norm() / ref.cpu().norm()) for r, ref in zip(results, references)]


def reference(q, k, v, mask):
    """The formula in float64 on the CPU: the independent answer."""
    return outputs_and_gradients(attention_math, *(t.double().cpu() for t in (q, k, v)),
                                 None if mask is None else mask.cpu())


CASES = [  # (batch, heads, n_queries, n_keys, head_dim, block_queries, block_keys)
    (2, 3, 37, 37, 16, 16, 16),  # lengths that leave a tail in the last tile
    (1, 2, 50, 23, 40, 32, 16),  # cross-attention, a head size that is not a power of two
    (2, 1, 5, 70, 8, 64, 32),  # fewer queries than one tile
    (1, 1, 1, 1, 4, 16, 16),  # a single token
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_tiled_attention_matches_float64_in_float32(case, masked):
    batch, heads, n_queries, n_keys, head_dim, block_queries, block_keys = case
    q, k, v = random_inputs(batch, heads, n_queries, n_keys, head_dim, torch.float32)
    mask = padding_mask(batch, n_keys) if masked else None
    results = outputs_and_gradients(
        lambda *a: tiled_attention(*a, block_queries=block_queries, block_keys=block_keys), q, k, v, mask)
    errors = relative_errors(results, reference(q, k, v, mask))
    assert max(errors) < 1e-5, dict(zip(["out", "dq", "dk", "dv"], errors))
    assert all(torch.isfinite(r).all() for r in results)


def test_tiled_attention_in_bfloat16_within_bfloat16_precision():
    q, k, v = random_inputs(2, 2, 45, 45, 16, torch.bfloat16)
    mask = padding_mask(2, 45)
    results = outputs_and_gradients(lambda *a: tiled_attention(*a, block_queries=16, block_keys=32), q, k, v, mask)
    assert all(r.dtype == torch.bfloat16 for r in results)
    errors = relative_errors(results, reference(q, k, v, mask))
    assert max(errors) < 1e-2, errors


def test_padded_keys_are_ignored_and_get_no_gradient():
    """Independent of the reference's masking: attending over keys[:n] alone gives the same rows."""
    q, k, v = random_inputs(1, 2, 20, 30, 8, torch.float64)
    mask = torch.arange(30)[None, :] < 11
    out, _, grad_k, grad_v = outputs_and_gradients(lambda *a: tiled_attention(*a, block_queries=8, block_keys=8),
                                                   q, k, v, mask)
    truncated = attention_math(q, k[:, :, :11], v[:, :, :11])
    torch.testing.assert_close(out, truncated, rtol=1e-10, atol=1e-12)
    assert grad_k[:, :, 11:].abs().max() == 0 and grad_v[:, :, 11:].abs().max() == 0
    assert grad_k[:, :, :11].abs().max() > 0


def test_tiled_attention_keeps_no_quadratic_tensor_for_backward():
    """What autograd saves: math keeps the (B, heads, N, N) probabilities, tiled attention only O(N d) tensors."""
    n = 96

    def largest_saved(attention):
        sizes = []
        q, k, v = (t.requires_grad_() for t in random_inputs(1, 2, n, n, 8, torch.float32))
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            attention(q, k, v, None).sum().backward()
        return max(sizes)

    assert largest_saved(attention_math) >= 2 * n * n
    assert largest_saved(lambda *a: tiled_attention(*a, block_queries=32, block_keys=32)) <= 2 * n * 8


def test_forward_callback_sees_every_tile_and_the_prefix_softmax():
    """The callback is called once per (query tile, key tile), in the loop's order, and its running state is the
    softmax of the keys seen so far: m the prefix's row maximum, O / l its attention output."""
    from minisora.kernels.tiled import tiled_attention_forward

    q, k, v = random_inputs(1, 2, 10, 13, 4, torch.float64)
    seen = []
    out, _ = tiled_attention_forward(q, k, v, None, 4, 5, callback=lambda info: seen.append(
        {name: value.clone() if torch.is_tensor(value) else value for name, value in info.items()}))
    assert [(info["q_start"], info["k_start"]) for info in seen] == [(i, j) for i in (0, 4, 8) for j in (0, 5, 10)]
    scores = q @ k.transpose(-2, -1) / 2
    for info in seen:
        rows, end = slice(info["q_start"], info["q_start"] + 4), info["k_start"] + 5
        prefix = scores[:, :, rows, :end]
        torch.testing.assert_close(info["row_max"], prefix.amax(-1))
        torch.testing.assert_close(info["accumulator"] / info["row_sum"][..., None],
                                   prefix.softmax(-1) @ v[:, :, :end])
    torch.testing.assert_close(out, attention_math(q, k, v))


def test_attention_module_flash_backend_equals_math():
    torch.manual_seed(0)
    module = Attention(32, 4, backend="math")
    x, context = torch.randn(2, 19, 32), torch.randn(2, 7, 32)
    expected = module(x), module(x, context)
    module.backend = "flash"
    torch.testing.assert_close(module(x), expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(module(x, context), expected[1], rtol=1e-5, atol=1e-6)


def test_clear_errors_for_bad_inputs():
    q, k, v = random_inputs(2, 1, 4, 6, 8, torch.float32)
    with pytest.raises(ValueError, match="masks every key of batch items \\[1\\]"):
        flash_attention(q, k, v, torch.tensor([[True] * 6, [False] * 6]))
    with pytest.raises(ValueError, match="bool tensor"):
        flash_attention(q, k, v, torch.ones(2, 6))
    with pytest.raises(ValueError, match="q \\(B, heads, N_q, d\\)"):
        flash_attention(q, k[..., :4], v, None)
    with pytest.raises(ValueError, match="block sizes must be positive"):
        tiled_attention(q, k, v, block_queries=0)


# The Triton kernel: compiled on a CUDA GPU, interpreted on CPU tensors otherwise (tests/conftest.py sets
# TRITON_INTERPRET=1 there). The interpreter is slow, so the CPU cases stay small.
triton_only = pytest.mark.skipif(not TRITON_AVAILABLE, reason="triton is not installed (pip install triton)")
TRITON_DTYPES = [torch.float32, torch.float16] + (
    [torch.bfloat16] if DEVICE == "cuda" else [])  # Triton's interpreter computes bfloat16 dots wrongly
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


@triton_only
@pytest.mark.parametrize("dtype", TRITON_DTYPES)
@pytest.mark.parametrize("case", CASES[:3])
@pytest.mark.parametrize("masked", [False, True])
def test_triton_kernel_matches_float64(dtype, case, masked):
    from minisora.kernels.triton_attention import triton_attention

    batch, heads, n_queries, n_keys, head_dim, block_queries, block_keys = case
    q, k, v = random_inputs(batch, heads, n_queries, n_keys, head_dim, dtype, device=DEVICE)
    mask = padding_mask(batch, n_keys, device=DEVICE) if masked else None
    results = outputs_and_gradients(
        lambda *a: triton_attention(*a, block_queries=block_queries, block_keys=block_keys), q, k, v, mask)
    assert all(r.dtype == dtype and torch.isfinite(r).all() for r in results)
    errors = relative_errors(results, reference(q, k, v, mask))
    assert max(errors) < TOLERANCE[dtype], dict(zip(["out", "dq", "dk", "dv"], errors))


@triton_only
def test_triton_kernel_writes_every_output_element():
    """Into buffers filled with NaN: any element a tile forgot would stay NaN. Each kernel cuts the work its own way
    (as the tuned defaults do), and the gradients still match the float64 reference."""
    from minisora.kernels.triton_attention import Tiles, flash_backward, flash_forward

    q, k, v = random_inputs(2, 2, 33, 29, 24, torch.float32, device=DEVICE)
    mask = padding_mask(2, 29, device=DEVICE)
    out, logsumexp = torch.full_like(q, float("nan")), torch.full(q.shape[:-1], float("nan"), device=DEVICE)
    flash_forward(q, k, v, mask, out, logsumexp, Tiles(queries=32, keys=16))
    grads = [torch.full_like(t, float("nan")) for t in (q, k, v)]
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(out)
    flash_backward(q, k, v, mask, out, grad_out, logsumexp, *grads, keys_tiles=Tiles(queries=16, keys=32),
                   queries_tiles=Tiles(queries=32, keys=16))
    for name, tensor in zip(["out", "logsumexp", "dq", "dk", "dv"], [out, logsumexp, *grads]):
        assert torch.isfinite(tensor).all(), name
    errors = relative_errors([out, *grads], reference(q, k, v, mask))
    assert max(errors) < 1e-5, dict(zip(["out", "dq", "dk", "dv"], errors))


@triton_only
def test_triton_kernel_accepts_strided_heads_as_the_attention_module_makes_them():
    """Keys and values split from one projection are views with gaps between rows: strides, not copies."""
    from minisora.kernels.triton_attention import triton_attention

    generator = torch.Generator().manual_seed(3)
    projected = torch.randn(2, 21, 2 * 32, generator=generator).to(DEVICE)  # (B, N, 2 D)
    key, value = (t.reshape(2, 21, 2, 16).transpose(1, 2) for t in projected.chunk(2, dim=-1))
    query = torch.randn(2, 2, 21, 16, generator=generator).to(DEVICE)
    results = outputs_and_gradients(lambda *a: triton_attention(*a, block_queries=16, block_keys=16),
                                    query, key, value, None)
    assert max(relative_errors(results, reference(query, key, value, None))) < 1e-5


@triton_only
def test_triton_kernel_refuses_what_tl_dot_cannot_do():
    from minisora.kernels.triton_attention import triton_attention

    q, k, v = random_inputs(1, 1, 4, 4, 8, torch.float32, device=DEVICE)
    with pytest.raises(ValueError, match="block_keys must be a power of two of at least 16"):
        triton_attention(q, k, v, block_keys=24)
    with pytest.raises(ValueError, match="one dtype among float32, float16 and bfloat16; got torch.float32, "
                                         "torch.float16"):
        triton_attention(q, k.half(), v)
