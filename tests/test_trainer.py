"""The shared training loop's knobs: gradient accumulation equals one big batch, clipping caps the gradient norm,
the learning rate warms up, holds and decays, and the metrics file of a resumed run equals an uninterrupted one's."""
import json

import pytest
import torch

from minisora.train.loop import Checkpointing, Logging, learning_rate_factor, read_metrics, train_loop
from minisora.train.precision import MixedPrecision


def regression(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()
    inputs = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = inputs.sum(1, keepdim=True).sin()
    return model, inputs, targets


def test_gradient_accumulation_equals_one_big_batch():
    big, inputs, targets = regression()
    train_loop(big, lambda generator: (big(inputs) - targets).pow(2).mean(), 6, 1e-2, 0.9, seed=0, progress=False)
    halves, _, _ = regression()
    calls = []

    def half_batch(generator):  # the first half of the batch, then the second, and so on
        part = slice(0, 8) if len(calls) % 2 == 0 else slice(8, 16)
        calls.append(1)
        return (halves(inputs[part]) - targets[part]).pow(2).mean()

    _, losses = train_loop(halves, half_batch, 6, 1e-2, 0.9, seed=0, progress=False, accumulation=2)
    assert len(calls) == 12 and len(losses) == 6
    for ours, theirs in zip(halves.parameters(), big.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    moved, _, _ = regression()
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(moved.parameters(), big.parameters()))


def test_clipping_caps_the_gradient_norm_and_reports_the_norm_before():
    model, inputs, targets = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    guard = MixedPrecision("fp32")
    loss = (model(inputs) - targets).pow(2).mean() * 100
    guard.backward(loss)
    before = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    reported = guard.step(optimizer, model.parameters(), 0, loss, clip_norm=0.5)
    after = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    assert before > 1 and reported == pytest.approx(before) and after == pytest.approx(0.5, rel=1e-6)


def test_the_learning_rate_warms_up_holds_then_decays_to_zero():
    factors = [learning_rate_factor(step, 100, warmup_steps=10) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and all(a < b for a, b in zip(factors[:10], factors[1:10]))
    assert all(factor == 1 for factor in factors[9:51])
    assert all(a > b for a, b in zip(factors[51:], factors[52:])) and factors[-1] == pytest.approx(0.02)
    assert learning_rate_factor(100, 100) == 0
    with pytest.raises(ValueError, match="accumulation >= 1"):
        train_loop(torch.nn.Linear(1, 1), lambda generator: torch.zeros(()), 3, 0.1, 0.9, 0, accumulation=0)


def test_the_metrics_of_a_resumed_run_equal_an_uninterrupted_runs(tmp_path):
    def run(folder, steps, stop_after=None):
        model, inputs, targets = regression()
        calls = []

        def loss_of_batch(generator):
            if stop_after is not None and len(calls) == stop_after:
                raise KeyboardInterrupt
            calls.append(1)
            index = torch.randint(16, (8,), generator=generator)
            return (model(inputs[index]) - targets[index]).pow(2).mean()

        plan = Checkpointing(folder / "checkpoint.pt", {"lr": 1e-2}, every=10, resume=True)
        return train_loop(model, loss_of_batch, steps, 1e-2, 0.9, seed=0, progress=False, checkpointing=plan,
                          warmup_steps=5, logging=Logging(folder / "metrics.jsonl", every=5))

    run(tmp_path / "straight", 40)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", 40, stop_after=27)  # logged up to step 25, checkpointed at step 20
    assert [line["step"] for line in read_metrics(tmp_path / "resumed" / "metrics.jsonl")] == [5, 10, 15, 20, 25]
    run(tmp_path / "resumed", 40)
    straight = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    resumed = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [line["step"] for line in resumed] == list(range(5, 41, 5))
    for ours, theirs in zip(resumed, straight):
        assert (ours["loss"], ours["learning_rate"]) == (theirs["loss"], theirs["learning_rate"])
        assert ours["gradient_norm"] == pytest.approx(theirs["gradient_norm"], rel=1e-12)
    assert json.loads((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[0])["seconds_per_step"] > 0
