"""Mixed precision, the non-finite step guard, and activation checkpointing (lesson 11)."""
import warnings

import pytest
import torch

from minisora.memory import measure_peak_memory
from minisora.models.dit import DiT, DiTConfig
from minisora.train.loop import train_loop
from minisora.train.precision import MixedPrecision


def tiny_dit(**fields):
    torch.manual_seed(0)
    config = dict(input_size=8, in_channels=3, hidden=32, depth=2, heads=2, patch_size=2, num_classes=0,
                  learn_sigma=False)
    return DiT(DiTConfig(**{**config, **fields}))


def regression_loss(model):
    """Denoise a fixed batch: enough for the weights to move (adaLN-Zero starts at the zero function)."""
    data = torch.randn(8, 3, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def loss_of_batch(generator):
        noise = torch.randn(data.shape, generator=generator)
        return (model(data + noise, torch.rand(8, generator=generator)) - data).pow(2).mean()

    return loss_of_batch


def train(precision, steps=8, poisoned_steps=()):
    model = tiny_dit()
    loss_of_batch = regression_loss(model)
    step = iter(range(10**6))

    def maybe_poisoned(generator):
        loss = loss_of_batch(generator)
        return loss * float("inf") if next(step) in poisoned_steps else loss

    ema, losses = train_loop(model, maybe_poisoned, steps, 3e-3, 0.0, seed=0, progress=False, precision=precision)
    return model, losses


def relative_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    first = torch.cat([p.detach().flatten() for p in a.parameters()])
    second = torch.cat([p.detach().flatten() for p in b.parameters()])
    return float((first - second).norm() / second.norm())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_tracks_float32(precision):
    reference, reference_losses = train("fp32")
    model, losses = train(precision)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float32 master weights
    assert losses != reference_losses  # autocast did run in 16 bits
    assert max(abs(a - b) / b for a, b in zip(losses, reference_losses)) < 0.03, (losses, reference_losses)
    # the 16-bit run ends far closer to the float32 run than training moved the weights
    assert relative_difference(model, reference) < 0.1 * relative_difference(tiny_dit(), reference)


def test_autocast_keeps_softmax_and_norms_in_float32():
    model = tiny_dit()
    seen = {}
    model.blocks[0].norm1.register_forward_hook(lambda module, inputs, output: seen.update(norm=output.dtype))
    with MixedPrecision("bf16").autocast():
        out = model(torch.randn(2, 3, 1, 8, 8), torch.rand(2))
        linear = model.blocks[0].mlp[0](torch.randn(2, 32))
    assert seen["norm"] == torch.float32 and linear.dtype == torch.bfloat16 and out.dtype == torch.bfloat16


def backward_and_step(guard, loss, optimizer, parameters, step):
    """One optimizer step the way the training loop takes it; whether the weights were updated."""
    guard.backward(loss)
    return guard.step(optimizer, parameters, step, loss) is not None


def test_a_non_finite_gradient_skips_the_step_and_leaves_the_weights():
    model = tiny_dit()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    guard = MixedPrecision("fp32", max_skipped_in_a_row=3)
    loss_of_batch = regression_loss(model)
    assert backward_and_step(guard, loss_of_batch(torch.Generator().manual_seed(0)), optimizer, model.parameters(), 0)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad()
    with pytest.warns(RuntimeWarning, match="step 1 skipped: non-finite gradients"):
        stepped = backward_and_step(guard, loss_of_batch(torch.Generator()) * float("inf"), optimizer,
                                          model.parameters(), 1)
    assert not stepped
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(FloatingPointError, match="3 steps in a row had non-finite gradients"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in (2, 3):
                optimizer.zero_grad()
                backward_and_step(guard, loss_of_batch(torch.Generator()) * float("nan"), optimizer,
                                        model.parameters(), step)


def test_a_poisoned_step_inside_training_is_skipped_and_training_goes_on():
    reference, _ = train("fp32", steps=3)
    with pytest.warns(RuntimeWarning, match="step 3 skipped"):
        model, losses = train("fp32", steps=4, poisoned_steps=(3,))
    assert losses[3] == float("inf")
    # step 3 changed nothing: the weights are those after steps 0-2 of a clean run with a 4-step schedule
    clean, _ = train("fp32", steps=4)
    assert relative_difference(model, clean) > 0  # a clean 4th step would have moved them
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_float16_overflow_halves_the_loss_scale():
    model = tiny_dit()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    guard = MixedPrecision("fp16")
    scale = guard.scaler.get_scale()
    with pytest.warns(RuntimeWarning, match="float16 loss scale now"):
        backward_and_step(guard, regression_loss(model)(torch.Generator()) * 1e38, optimizer, model.parameters(), 0)
    assert guard.scaler.get_scale() == scale / 2


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of"):
        MixedPrecision("fp8")


def test_activation_checkpointing_changes_memory_not_gradients():
    gradients = {}
    for checkpointed in (False, True):
        model = tiny_dit(depth=3, checkpoint_activations=checkpointed)
        loss = regression_loss(model)(torch.Generator().manual_seed(0))
        loss.backward()
        gradients[checkpointed] = [p.grad for p in model.parameters()]
    for plain, recomputed in zip(gradients[False], gradients[True]):
        torch.testing.assert_close(recomputed, plain, rtol=1e-6, atol=1e-7)
    plain_peak = measure_peak_memory(prepare_dit_step, False)
    checkpointed_peak = measure_peak_memory(prepare_dit_step, True)
    assert checkpointed_peak < 0.5 * plain_peak, (checkpointed_peak, plain_peak)


def prepare_dit_step(checkpointed: bool):
    """For measure_peak_memory: one forward + backward of an 8-block DiT on 1024 tokens, warmed up first."""
    model = DiT(DiTConfig(input_size=64, in_channels=4, hidden=64, depth=8, heads=4, patch_size=2, num_classes=0,
                          learn_sigma=False, checkpoint_activations=checkpointed))
    x, noise_label = torch.randn(4, 4, 1, 64, 64), torch.rand(4)
    model(x[:1], noise_label[:1]).square().mean().backward()  # warm-up on one sample
    return lambda: model(x, noise_label).square().mean().backward()
