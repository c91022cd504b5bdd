"""The fused attention kernel in Triton: FlashAttention-2's forward and backward passes (Dao 2023, Algorithms 1 and
2), with Q K^T, the online softmax and P V in one kernel, so the N x N scores never leave the GPU's on-chip memory.

It is `tiled.py` again, with each Python loop over query tiles turned into a grid of programs: one program owns
one tile of BLOCK_Q queries of one (batch, head) and walks the keys BLOCK_K at a time. Inputs may be float32,
float16 or bfloat16; the dots accumulate in float32 and the softmax statistics are float32. Any length works (the
tails of the last tiles are masked), head sizes up to 256, and an optional key-padding mask for packed sequences
of different lengths.

Triton compiles for GPUs only. With TRITON_INTERPRET=1 set before triton is imported, the same kernels run on CPU
tensors in Triton's interpreter (slowly; its float16 and float32 dots are right, its bfloat16 dots are not), which
is how the test suite checks them on a machine without a GPU.
"""
from dataclasses import dataclass, replace
from functools import partial
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .tiled import RecomputingAttention, check_attention_inputs

LOG2_E = 1.4426950408889634  # exp(x) = 2^(x log2 e): the GPU's exponential unit computes powers of two


@dataclass(frozen=True)
class Tiles:
    """How one kernel cuts its work into programs, and how the GPU runs each program."""
    queries: int = 64  # BLOCK_Q: query rows per tile (a power of two, at least 16: tl.dot's smallest)
    keys: int = 64  # BLOCK_K: key rows per tile (likewise)
    warps: int = 4  # num_warps: groups of 32 threads that share one program
    stages: int = 3  # num_stages: tiles loaded ahead of the one being multiplied (software pipelining)


# The fastest of benchmarks/attention_kernel_tuning.py's candidates on an H100 in bfloat16 at N = 4096, d = 64
# (benchmarks/RESULTS.md). The forward program owns a query tile and walks the keys; the backward's keys program
# owns a key tile and walks the queries (it was fastest with few queries at a time), its queries program the other
# way round.
FORWARD_TILES = Tiles(queries=128, keys=64, warps=8, stages=3)
BACKWARD_KEYS_TILES = Tiles(queries=32, keys=128, warps=4, stages=3)
BACKWARD_QUERIES_TILES = Tiles(queries=128, keys=64, warps=8, stages=3)


@triton.jit
def _tile_scores(q, k_tile, key_ok, scale_log2, PRECISION: tl.constexpr):
    """S log2(e) = Q K^T log2(e) / sqrt(d) for one tile in float32 (base-2 units, for exp2), -inf where the key is
    padding or past the end."""
    scores = tl.dot(q, tl.trans(k_tile), input_precision=PRECISION) * scale_log2
    return tl.where(key_ok[None, :], scores, float("-inf"))


@triton.jit
def _key_ok(Mask, batch, stride_mask_b, keys, n_keys, HAS_MASK: tl.constexpr):
    """Which keys of this tile exist and are attended to: (BLOCK_K,) booleans."""
    key_ok = keys < n_keys
    if HAS_MASK:
        key_ok = key_ok & (tl.load(Mask + batch * stride_mask_b + keys, mask=key_ok, other=0) != 0)
    return key_ok


@triton.jit
def _tile(Base, batch, head, stride_b, stride_h, stride_n, rows, n_rows, dims, head_dim):
    """Pointers to rows `rows` of one (batch, head)'s (N, d) matrix, and which of them exist (the tails of the last
    tile and of the head dimension do not): two (len(rows), BLOCK_D) blocks."""
    pointers = Base + batch * stride_b + head * stride_h + rows[:, None] * stride_n + dims[None, :]
    return pointers, (rows < n_rows)[:, None] & (dims < head_dim)[None, :]


@triton.jit
def _load_rows(Base, batch, head, stride_b, stride_h, stride_n, rows, n_rows, dims, head_dim):
    """Rows `rows` of one (batch, head)'s (N, d) matrix, zeros past the end: a (len(rows), BLOCK_D) block."""
    pointers, ok = _tile(Base, batch, head, stride_b, stride_h, stride_n, rows, n_rows, dims, head_dim)
    return tl.load(pointers, mask=ok, other=0.0)


@triton.jit
def _forward_kernel(Q, K, V, Mask, Out, LogSumExp,
                    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
                    stride_ob, stride_oh, stride_on, stride_mask_b,
                    heads, n_queries, n_keys, head_dim, scale_log2,
                    HAS_MASK: tl.constexpr, PRECISION: tl.constexpr,
                    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """One tile of queries of one (batch, head): O and L = m + log l for its rows. The last dimension of every
    tensor is contiguous. The running maximum m is kept in base-2 units (S log2 e), so each exponential is one exp2."""
    batch, head = tl.program_id(1) // heads, tl.program_id(1) % heads
    rows = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    dims = tl.arange(0, BLOCK_D)
    q = _load_rows(Q, batch, head, stride_qb, stride_qh, stride_qn, rows, n_queries, dims, head_dim)
    row_max = tl.full([BLOCK_Q], float("-inf"), tl.float32)  # m
    row_sum = tl.zeros([BLOCK_Q], tl.float32)  # l
    accumulator = tl.zeros([BLOCK_Q, BLOCK_D], tl.float32)  # unnormalised O
    for k_start in range(0, n_keys, BLOCK_K):
        keys = k_start + tl.arange(0, BLOCK_K)
        k_tile = _load_rows(K, batch, head, stride_kb, stride_kh, stride_kn, keys, n_keys, dims, head_dim)
        v_tile = _load_rows(V, batch, head, stride_vb, stride_vh, stride_vn, keys, n_keys, dims, head_dim)
        key_ok = _key_ok(Mask, batch, stride_mask_b, keys, n_keys, HAS_MASK)
        scores = _tile_scores(q, k_tile, key_ok, scale_log2, PRECISION)
        # m_new = max(m, rowmax(S)); a row with only padding so far subtracts 0 so that exp(-inf) gives 0, not NaN
        new_max = tl.maximum(row_max, tl.max(scores, 1))
        safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
        # P~ = exp(S - m_new);  l_new = exp(m - m_new) l + rowsum(P~);  O_new = exp(m - m_new) O + P~ V
        probabilities = tl.exp2(scores - safe_max[:, None])
        rescale = tl.exp2(row_max - safe_max)
        row_sum = rescale * row_sum + tl.sum(probabilities, 1)
        accumulator = accumulator * rescale[:, None] + tl.dot(probabilities.to(v_tile.dtype), v_tile,
                                                              input_precision=PRECISION)
        row_max = new_max
    # O = diag(l)^-1 O_new;  L = m + log l, in base-2 units like m: L log2(e) = m log2(e) + log2 l
    out_pointers, rows_ok = _tile(Out, batch, head, stride_ob, stride_oh, stride_on, rows, n_queries, dims, head_dim)
    tl.store(out_pointers, (accumulator / row_sum[:, None]).to(Out.dtype.element_ty), mask=rows_ok)
    tl.store(LogSumExp + tl.program_id(1) * n_queries + rows, row_max + tl.log2(row_sum), mask=rows < n_queries)


@triton.jit
def _delta_kernel(Out, GradOut, Delta, stride_ob, stride_oh, stride_on, stride_gb, stride_gh, stride_gn,
                  heads, n_queries, head_dim, BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr):
    """D_i = rowsum(dO_i * O_i) in float32 for one tile of query rows: the softmax's backward term, computed in one
    pass without a float32 copy of dO or O (FlashAttention-2's preprocessing step)."""
    batch, head = tl.program_id(1) // heads, tl.program_id(1) % heads
    rows = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    dims = tl.arange(0, BLOCK_D)
    out = _load_rows(Out, batch, head, stride_ob, stride_oh, stride_on, rows, n_queries, dims, head_dim)
    grad_out = _load_rows(GradOut, batch, head, stride_gb, stride_gh, stride_gn, rows, n_queries, dims, head_dim)
    delta = tl.sum(out.to(tl.float32) * grad_out.to(tl.float32), 1)
    tl.store(Delta + tl.program_id(1) * n_queries + rows, delta, mask=rows < n_queries)


@triton.jit
def _backward_keys_kernel(Q, K, V, Mask, GradOut, LogSumExp, Delta, GradK, GradV,
                          stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
                          stride_vb, stride_vh, stride_vn, stride_gb, stride_gh, stride_gn,
                          stride_dkb, stride_dkh, stride_dkn, stride_dvb, stride_dvh, stride_dvn, stride_mask_b,
                          heads, n_queries, n_keys, head_dim, scale, scale_log2,
                          HAS_MASK: tl.constexpr, PRECISION: tl.constexpr,
                          BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """One tile of keys of one (batch, head): dK and dV, summed over every query tile. It works on the transposed
    tile (keys x queries), so that every product has the key rows it accumulates into on its left."""
    batch, head = tl.program_id(1) // heads, tl.program_id(1) % heads
    keys = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    dims = tl.arange(0, BLOCK_D)
    k_tile = _load_rows(K, batch, head, stride_kb, stride_kh, stride_kn, keys, n_keys, dims, head_dim)
    v_tile = _load_rows(V, batch, head, stride_vb, stride_vh, stride_vn, keys, n_keys, dims, head_dim)
    key_ok = _key_ok(Mask, batch, stride_mask_b, keys, n_keys, HAS_MASK)
    grad_k = tl.zeros([BLOCK_K, BLOCK_D], tl.float32)
    grad_v = tl.zeros([BLOCK_K, BLOCK_D], tl.float32)
    for q_start in range(0, n_queries, BLOCK_Q):
        rows = q_start + tl.arange(0, BLOCK_Q)
        q = _load_rows(Q, batch, head, stride_qb, stride_qh, stride_qn, rows, n_queries, dims, head_dim)
        grad_out = _load_rows(GradOut, batch, head, stride_gb, stride_gh, stride_gn, rows, n_queries, dims, head_dim)
        row_ok = rows < n_queries
        logsumexp = tl.load(LogSumExp + tl.program_id(1) * n_queries + rows, mask=row_ok, other=0.0)
        delta = tl.load(Delta + tl.program_id(1) * n_queries + rows, mask=row_ok, other=0.0)
        # P^T = exp(K Q^T / sqrt(d) - L) (L in base-2 units, as the forward kernel stores it), zero for padding keys and rows past the end           (BLOCK_K, BLOCK_Q)
        scores_t = tl.dot(k_tile, tl.trans(q), input_precision=PRECISION) * scale_log2
        probabilities_t = tl.exp2(scores_t - logsumexp[None, :])
        probabilities_t = tl.where(key_ok[:, None] & row_ok[None, :], probabilities_t, 0.0)
        # dV_j += P^T dO_i
        grad_v += tl.dot(probabilities_t.to(grad_out.dtype), grad_out, input_precision=PRECISION)
        # dP^T = V_j dO_i^T;  dS^T = P^T * (dP^T - D_i);  dK_j += dS^T Q_i / sqrt(d)
        grad_scores_t = probabilities_t * (tl.dot(v_tile, tl.trans(grad_out), input_precision=PRECISION)
                                           - delta[None, :])
        grad_k += tl.dot(grad_scores_t.to(q.dtype), q, input_precision=PRECISION)
    # the 1/sqrt(d) of dK, once for the sum instead of once per tile
    pointers, ok = _tile(GradK, batch, head, stride_dkb, stride_dkh, stride_dkn, keys, n_keys, dims, head_dim)
    tl.store(pointers, (grad_k * scale).to(GradK.dtype.element_ty), mask=ok)
    pointers, ok = _tile(GradV, batch, head, stride_dvb, stride_dvh, stride_dvn, keys, n_keys, dims, head_dim)
    tl.store(pointers, grad_v.to(GradV.dtype.element_ty), mask=ok)


@triton.jit
def _backward_queries_kernel(Q, K, V, Mask, GradOut, LogSumExp, Delta, GradQ,
                             stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
                             stride_vb, stride_vh, stride_vn, stride_gb, stride_gh, stride_gn,
                             stride_dqb, stride_dqh, stride_dqn, stride_mask_b,
                             heads, n_queries, n_keys, head_dim, scale, scale_log2,
                             HAS_MASK: tl.constexpr, PRECISION: tl.constexpr,
                             BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """One tile of queries of one (batch, head): dQ, summed over every key tile (a second walk, so that no two
    programs add into the same dQ rows and the result is deterministic)."""
    batch, head = tl.program_id(1) // heads, tl.program_id(1) % heads
    rows = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    dims = tl.arange(0, BLOCK_D)
    q = _load_rows(Q, batch, head, stride_qb, stride_qh, stride_qn, rows, n_queries, dims, head_dim)
    grad_out = _load_rows(GradOut, batch, head, stride_gb, stride_gh, stride_gn, rows, n_queries, dims, head_dim)
    logsumexp = tl.load(LogSumExp + tl.program_id(1) * n_queries + rows, mask=rows < n_queries, other=0.0)
    delta = tl.load(Delta + tl.program_id(1) * n_queries + rows, mask=rows < n_queries, other=0.0)
    grad_q = tl.zeros([BLOCK_Q, BLOCK_D], tl.float32)
    for k_start in range(0, n_keys, BLOCK_K):
        keys = k_start + tl.arange(0, BLOCK_K)
        k_tile = _load_rows(K, batch, head, stride_kb, stride_kh, stride_kn, keys, n_keys, dims, head_dim)
        v_tile = _load_rows(V, batch, head, stride_vb, stride_vh, stride_vn, keys, n_keys, dims, head_dim)
        key_ok = _key_ok(Mask, batch, stride_mask_b, keys, n_keys, HAS_MASK)
        # P = exp(S - L)
        probabilities = tl.exp2(_tile_scores(q, k_tile, key_ok, scale_log2, PRECISION) - logsumexp[:, None])
        # dS = P * (dO V^T - D);  dQ_i += dS K_j / sqrt(d)
        grad_scores = probabilities * (tl.dot(grad_out, tl.trans(v_tile), input_precision=PRECISION) - delta[:, None])
        grad_q += tl.dot(grad_scores.to(k_tile.dtype), k_tile, input_precision=PRECISION)
    pointers, ok = _tile(GradQ, batch, head, stride_dqb, stride_dqh, stride_dqn, rows, n_queries, dims, head_dim)
    tl.store(pointers, (grad_q * scale).to(GradQ.dtype.element_ty), mask=ok)


def _head_block(head_dim: int) -> int:
    """BLOCK_D: the head size rounded up to a power of two of at least 16 (the tail is masked)."""
    return max(16, triton.next_power_of_2(head_dim))


def _mask_arguments(q: torch.Tensor, key_padding_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, int, bool]:
    """The key-padding mask as the kernels read it: (int8 mask, or q as a stand-in they never read; its batch
    stride; whether there is a mask)."""
    if key_padding_mask is None:
        return q, 0, False
    mask = key_padding_mask.to(torch.int8).contiguous()
    return mask, mask.stride(0), True


def _launch_settings(q: torch.Tensor, has_mask: bool, tiles: Tiles) -> dict:
    """The kernels' compile-time arguments and launch options for one launch."""
    head_dim = q.shape[-1]
    if head_dim > 256:
        raise ValueError(f"the Triton attention kernel takes head sizes up to 256; got {head_dim}: use more heads")
    return dict(HAS_MASK=has_mask, PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
                BLOCK_Q=tiles.queries, BLOCK_K=tiles.keys, BLOCK_D=_head_block(head_dim),
                num_warps=tiles.warps, num_stages=tiles.stages)


def _strides(*tensors: torch.Tensor) -> list:
    """(batch, head, position) strides of each (B, heads, N, d) tensor, whose last dimension must be contiguous."""
    return [stride for tensor in tensors for stride in tensor.stride()[:3]]


def flash_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: Optional[torch.Tensor],
                  out: torch.Tensor, logsumexp: torch.Tensor, tiles: Tiles = FORWARD_TILES) -> None:
    """Run the forward kernel, writing O into `out` (q's shape) and L log2(e) into `logsumexp` (B, heads, N_q)
    float32: the log-sum-exp in the base-2 units the backward kernels read."""
    mask, mask_stride, has_mask = _mask_arguments(q, key_padding_mask)
    batch, heads, n_queries, head_dim = q.shape
    grid = (triton.cdiv(n_queries, tiles.queries), batch * heads)
    _forward_kernel[grid](q, k, v, mask, out, logsumexp, *_strides(q, k, v, out), mask_stride, heads, n_queries,
                          k.shape[2], head_dim, head_dim ** -0.5 * LOG2_E, **_launch_settings(q, has_mask, tiles))


def flash_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: Optional[torch.Tensor],
                   out: torch.Tensor, grad_out: torch.Tensor, logsumexp: torch.Tensor, grad_q: torch.Tensor,
                   grad_k: torch.Tensor, grad_v: torch.Tensor, keys_tiles: Tiles = BACKWARD_KEYS_TILES,
                   queries_tiles: Tiles = BACKWARD_QUERIES_TILES) -> None:
    """Run the backward kernels, writing dQ, dK and dV into `grad_q`, `grad_k` and `grad_v` (the inputs' shapes)."""
    mask, mask_stride, has_mask = _mask_arguments(q, key_padding_mask)
    batch, heads, n_queries, head_dim = q.shape
    n_keys = k.shape[2]
    # D_i = rowsum(dO_i * O_i), float32                                                 (B, heads, N_q)
    delta = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    _delta_kernel[(triton.cdiv(n_queries, 64), batch * heads)](out, grad_out, delta, *_strides(out, grad_out), heads,
                                                                n_queries, head_dim, BLOCK_Q=64,
                                                                BLOCK_D=_head_block(head_dim))
    # the keys kernel: one program per key tile; the queries kernel: one per query tile
    for kernel, tiles, programs, outputs in (
            (_backward_keys_kernel, keys_tiles, triton.cdiv(n_keys, keys_tiles.keys), (grad_k, grad_v)),
            (_backward_queries_kernel, queries_tiles, triton.cdiv(n_queries, queries_tiles.queries), (grad_q,))):
        kernel[(programs, batch * heads)](q, k, v, mask, grad_out, logsumexp, delta, *outputs,
                                          *_strides(q, k, v, grad_out, *outputs), mask_stride, heads, n_queries,
                                          n_keys, head_dim, head_dim ** -0.5, head_dim ** -0.5 * LOG2_E,
                                          **_launch_settings(q, has_mask, tiles))


def _last_dimension_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


def triton_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: Optional[torch.Tensor],
                   tiles: Tiles = FORWARD_TILES) -> Tuple[torch.Tensor, torch.Tensor]:
    """(O, L) from the forward kernel, in new tensors."""
    out = torch.empty_like(q)
    logsumexp = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    flash_forward(q, k, v, key_padding_mask, out, logsumexp, tiles)
    return out, logsumexp


def triton_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, grad_out: torch.Tensor,
                    logsumexp: torch.Tensor, key_padding_mask: Optional[torch.Tensor],
                    keys_tiles: Tiles = BACKWARD_KEYS_TILES,
                    queries_tiles: Tiles = BACKWARD_QUERIES_TILES) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dQ, dK, dV) from the backward kernels, in new tensors."""
    grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    flash_backward(q, k, v, key_padding_mask, out, _last_dimension_contiguous(grad_out), logsumexp, grad_q, grad_k,
                   grad_v, keys_tiles, queries_tiles)
    return grad_q, grad_k, grad_v


def triton_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     key_padding_mask: Optional[torch.Tensor] = None, block_queries: Optional[int] = None,
                     block_keys: Optional[int] = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V with the fused Triton kernels, differentiable: (B, heads, N_q, d). The tile sizes
    default to the tuned ones (FORWARD_TILES and the backward's); `block_queries`, `block_keys` override them in
    all three kernels."""
    check_attention_inputs(q, k, v, key_padding_mask)
    if not q.dtype == k.dtype == v.dtype or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"the Triton attention kernel takes q, k, v of one dtype among float32, float16 and bfloat16; "
                         f"got {q.dtype}, {k.dtype}, {v.dtype} (cast them, or run under torch.autocast)")
    overrides = {}
    for name, field, block in (("block_queries", "queries", block_queries), ("block_keys", "keys", block_keys)):
        if block is not None:
            if block < 16 or block & (block - 1):
                raise ValueError(f"{name} must be a power of two of at least 16 (tl.dot's smallest tile); got {block}")
            overrides[field] = block
    forward_tiles, keys_tiles, queries_tiles = (replace(tiles, **overrides) for tiles in
                                                (FORWARD_TILES, BACKWARD_KEYS_TILES, BACKWARD_QUERIES_TILES))
    q, k, v = (_last_dimension_contiguous(t) for t in (q, k, v))
    return RecomputingAttention.apply(q, k, v, key_padding_mask, partial(triton_forward, tiles=forward_tiles),
                                      partial(triton_backward, keys_tiles=keys_tiles, queries_tiles=queries_tiles))
