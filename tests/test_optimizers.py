"""Muon with AdamW: the Newton-Schulz iteration against its closed form on the singular values, the AdamW groups
against torch.optim.AdamW, the Muon groups against torch.optim.Muon, and which weights Muon takes."""
import pytest
import torch
from torch import nn

from minisora.models.video_dit import VideoDiT, VideoDiTConfig
from minisora.train.optimizers import (NEWTON_SCHULZ_COEFFICIENTS, MuonWithAdamW, build_optimizer, muon_matrices,
                                       newton_schulz_orthogonalize)


@pytest.mark.parametrize("shape", [(24, 40), (40, 24)])
def test_newton_schulz_acts_on_each_singular_value_by_the_quintic(shape):
    """X <- a X + b X X^T X + c (X X^T)^2 X keeps the singular vectors and maps each singular value s through
    s <- a s + b s^3 + c s^5: checked against the SVD, in float64, of a matrix with a wide spread of singular values."""
    generator = torch.Generator().manual_seed(0)
    left, _ = torch.linalg.qr(torch.randn(shape[0], shape[0], dtype=torch.float64, generator=generator))
    right, _ = torch.linalg.qr(torch.randn(shape[1], shape[1], dtype=torch.float64, generator=generator))
    rank = min(shape)
    singular = torch.logspace(0, -3, rank, dtype=torch.float64)  # 1 down to 1e-3
    matrix = left[:, :rank] @ torch.diag(singular) @ right[:, :rank].T
    s = singular / singular.norm()  # the iteration starts from matrix / ||matrix||_F
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    for _ in range(5):
        s = a * s + b * s**3 + c * s**5
    expected = left[:, :rank] @ torch.diag(s) @ right[:, :rank].T
    torch.testing.assert_close(newton_schulz_orthogonalize(matrix), expected, rtol=0, atol=2e-5)
    # what it is for: the singular values within 100x of the largest come out between 0.6 and 1.25
    kept = s[singular > 1e-2]
    assert kept.min() > 0.6 and kept.max() < 1.25, kept


def test_a_batch_of_matrices_is_orthogonalised_one_by_one():
    matrices = torch.randn(3, 12, 20, generator=torch.Generator().manual_seed(0))
    matrices[1] *= 100  # each matrix is normalised by its own norm, not the batch's
    together = newton_schulz_orthogonalize(matrices)
    for matrix, batched in zip(matrices, together):
        torch.testing.assert_close(batched, newton_schulz_orthogonalize(matrix))
    torch.testing.assert_close(newton_schulz_orthogonalize(matrices.mT), together.mT)


def blocks_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("embedding", nn.Linear(6, 16))
    model.add_module("blocks", nn.Sequential(nn.Linear(16, 24), nn.Tanh(), nn.Linear(24, 16), nn.Tanh()))
    model.add_module("out", nn.Linear(16, 2))
    return model


def take_steps(model, optimizer, steps=4):
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=generator)
        loss = (model(x) - x[:, :2].sin()).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_the_adamw_groups_step_as_torch_adamw():
    ours, theirs = blocks_model(), blocks_model()
    take_steps(ours, MuonWithAdamW([dict(params=ours.parameters())], lr=1e-2, weight_decay=0.1))
    take_steps(theirs, torch.optim.AdamW(theirs.parameters(), lr=1e-2, weight_decay=0.1))
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-7)


def test_the_muon_groups_step_as_torch_muon(monkeypatch):
    """torch.optim.Muon with Moonshot's learning-rate match is the same algorithm. It runs Newton-Schulz in bfloat16,
    where ours runs in float32: a gradient of small singular values is amplified about 500-fold by the iteration, and
    bfloat16's rounding with it (the steps differ by 30%), so the reference here runs in float32 too."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", torch.Tensor.float)
    start, ours, theirs = blocks_model(), blocks_model(), blocks_model()

    def split(model):  # (the hidden matrices, every other parameter)
        matrices = [model.blocks[0].weight, model.blocks[2].weight]
        return matrices, [p for p in model.parameters() if all(p is not m for m in matrices)]

    matrices, others = split(ours)
    take_steps(ours, MuonWithAdamW([dict(params=matrices, muon=True), dict(params=others)], lr=1e-2,
                                   weight_decay=0.1))
    matrices, others = split(theirs)
    take_steps(theirs, Both(torch.optim.Muon(matrices, lr=1e-2, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"),
                            torch.optim.AdamW(others, lr=1e-2, weight_decay=0.1)))
    for index in (0, 2):
        moved_ours = ours.blocks[index].weight - start.blocks[index].weight
        moved_theirs = theirs.blocks[index].weight - start.blocks[index].weight
        assert moved_theirs.norm() > 1e-2, index
        torch.testing.assert_close(moved_ours, moved_theirs, rtol=1e-4, atol=1e-6)
    # and not what AdamW would have done with the same matrices
    adam = blocks_model()
    take_steps(adam, torch.optim.AdamW(adam.parameters(), lr=1e-2, weight_decay=0.1))
    moved_adam = adam.blocks[0].weight - start.blocks[0].weight
    assert (moved_adam - (ours.blocks[0].weight - start.blocks[0].weight)).norm() > 0.1 * moved_adam.norm()


class Both:
    """Two optimizers stepped as one (the reference pairing of torch's Muon and AdamW)."""

    def __init__(self, *optimizers):
        self.optimizers = optimizers

    def zero_grad(self):
        for optimizer in self.optimizers:
            optimizer.zero_grad()

    def step(self):
        for optimizer in self.optimizers:
            optimizer.step()


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = VideoDiT(VideoDiTConfig(patch_size=4, hidden=32, depth=2, heads=2,
                                    vocabulary_size=10, caption_length=6, text_hidden=32, text_depth=1))
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    chosen = sorted(names[id(parameter)] for parameter in muon_matrices(model))
    assert "blocks.0.attention.query.weight" in chosen and "blocks.1.mlp.2.weight" in chosen
    assert "text_encoder.blocks.0.attention.query.weight" in chosen
    assert all(name.endswith(".weight") and "blocks." in name for name in chosen)
    for outside in ("patch_embedding.weight", "final.linear.weight", "caption_projection.weight"):
        assert outside in names.values() and outside not in chosen
    optimizer = build_optimizer(model, "muon", 1e-3, 0.01)
    groups = {group["muon"]: group["params"] for group in optimizer.param_groups}
    assert len(groups[True]) == len(chosen)
    assert len(groups[True]) + len(groups[False]) == len(list(model.parameters()))


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        build_optimizer(blocks_model(), "sgd", 1e-3, 0.0)
    with pytest.raises(ValueError, match="found no transformer blocks"):
        build_optimizer(nn.Linear(3, 3), "muon", 1e-3, 0.0)


def test_parameters_that_missed_steps_are_corrected_by_their_own_count():
    """A parameter without a gradient skips the step (no decay, no moment update), so its AdamW bias correction counts
    fewer steps than its group's others: the updates grouped by step count must still step as torch's AdamW does."""
    ours, theirs = blocks_model(), blocks_model()
    generator = torch.Generator().manual_seed(2)
    optimizers = (MuonWithAdamW([dict(params=ours.parameters())], lr=1e-2, weight_decay=0.1),
                  torch.optim.AdamW(theirs.parameters(), lr=1e-2, weight_decay=0.1))
    for step in range(5):
        x = torch.randn(32, 6, generator=generator)
        for model, optimizer in zip((ours, theirs), optimizers):
            # the output layer sits out the first two steps: it has no gradient there
            hidden = model.blocks(model.embedding(x))
            output = model.out(hidden) if step >= 2 else hidden[:, :2]
            loss = (output - x[:, :2].sin()).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    steps = {optimizers[0].state[parameter]["step"] for parameter in ours.parameters()}
    assert steps == {3, 5}
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-7)
