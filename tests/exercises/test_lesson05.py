"""Lesson 05 checks (classifier-free guidance), against minisora by default and your stubs with --impl=exercises."""
import pytest
import torch

pytestmark = pytest.mark.lesson05


def test_guidance_interpolates_and_extrapolates(impl):
    conditional, unconditional = torch.randn(4, 2), torch.randn(4, 2)
    torch.testing.assert_close(impl.classifier_free_guidance(conditional, unconditional, 1.0), conditional)
    torch.testing.assert_close(impl.classifier_free_guidance(conditional, unconditional, 0.0), unconditional)
    torch.testing.assert_close(impl.classifier_free_guidance(conditional, unconditional, 3.0),
                               3 * conditional - 2 * unconditional)


def test_drop_condition_replaces_about_the_asked_fraction(impl):
    labels = torch.randint(0, 10, (100_000,), generator=torch.Generator().manual_seed(0))
    dropped = impl.drop_condition(labels, 0.2, 10, torch.Generator().manual_seed(1))
    replaced = dropped == 10
    assert abs(replaced.float().mean().item() - 0.2) < 0.01
    assert torch.equal(dropped[~replaced], labels[~replaced])
    assert torch.equal(impl.drop_condition(labels, 0.0, 10), labels)
    assert bool((impl.drop_condition(labels, 1.0, 10) == 10).all())
