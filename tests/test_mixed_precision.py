"""Mixed precision, the non-finite step guard, and activation checkpointing (lesson 11)."""
import warnings

import pytest
import torch

from minisora.memory import measure_peak_memory
from minisora.models.dit import DiT, DiTConfig
from minisora.train.loop import train_loop
from minisora.train.precision import MixedPrecision, dynamic_loss_scale_step


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
    scale = guard.scale
    with pytest.warns(RuntimeWarning, match=f"float16 loss scale now {scale / 2:g}"):
        backward_and_step(guard, regression_loss(model)(torch.Generator()) * 1e38, optimizer, model.parameters(), 0)
    assert guard.scale == scale / 2


def test_dynamic_loss_scaling_matches_torch_grad_scaler():
    """dynamic_loss_scale_step against torch.amp.GradScaler, an independent implementation of section 3.2: the same
    scaled gradients, some of them overflowing, give the same weights and the same scales, step after step."""
    torch.manual_seed(0)
    true_gradients = [torch.randn(3, 5) * 1e-6 for _ in range(12)]
    overflowing = {2, 3, 9}
    ours = torch.nn.Parameter(torch.randn(3, 5))
    theirs = torch.nn.Parameter(ours.detach().clone())
    our_optimizer, their_optimizer = torch.optim.SGD([ours], lr=1e4), torch.optim.SGD([theirs], lr=1e4)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    scale, good_steps, weights = 2.0 ** 10, 0, ours.detach().double().clone()
    for step, gradient in enumerate(true_gradients):
        poison = float("inf") if step in overflowing else 1.0
        our_optimizer.zero_grad(), their_optimizer.zero_grad()
        ((ours * gradient).sum() * poison * scale).backward()  # a loss whose true gradient is `gradient`
        scaler.scale((theirs * gradient).sum() * poison).backward()
        norm, scale, good_steps = dynamic_loss_scale_step([ours], our_optimizer, scale, good_steps, growth_interval=3)
        scaler.step(their_optimizer)
        scaler.update()
        assert (norm is None) == (step in overflowing)
        if norm is not None:  # plain SGD on the true gradient, in float64
            weights -= 1e4 * gradient.double()
            assert norm == pytest.approx(gradient.norm().item(), rel=1e-6)
        assert scale == scaler.get_scale(), step
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=0, atol=0)
        torch.testing.assert_close(ours.detach().double(), weights, rtol=1e-6, atol=1e-6)
    assert scale == 2.0 ** 10 / 2 ** 3 * 2  # three halvings; one doubling, after the good steps 4, 5 and 6


def test_dynamic_loss_scaling_refuses_a_scale_that_is_not_positive():
    parameter = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="positive loss scale"):
        dynamic_loss_scale_step([parameter], torch.optim.SGD([parameter], lr=1.0), 0.0, 0)


def test_a_checkpoint_with_grad_scaler_state_resumes_its_scale():
    scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    guard = MixedPrecision("fp16")
    guard.load_state_dict({"scaler": scaler.state_dict(), "skipped_in_a_row": 0})
    assert guard.scale == 512.0 and guard.good_steps == 0
    fresh = MixedPrecision("fp16")
    fresh.load_state_dict(guard.state_dict())
    assert fresh.state_dict() == guard.state_dict()


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
