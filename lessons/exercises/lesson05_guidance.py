"""Lesson 05 exercises: classifier-free guidance (Ho & Salimans 2022; Kynkäänniemi et al. 2024). Check with
`pytest -m lesson05 --impl=exercises` (one exercise: add `-k NAME`). Hints: lessons/hints/lesson05.md; worked
solutions: lessons/solutions/lesson05_guidance.py.

A denoiser is called as denoiser(x, sigma, **cond) -> an estimate of x_0 shaped like x, with x (B, ...), sigma (B,) one
noise level per item, and each condition a tensor whose first dimension is B (e.g. label=tensor of B class indices).
The guidance scale w is the lesson's: w = 0 is the unconditional model, w = 1 the conditional one (Ho & Salimans
write the same scale as 1 + w).
"""
import math
from typing import Callable, Optional, Tuple

import torch

REFERENCE_MODULES = ("minisora.diffusion.guidance",)


def classifier_free_guidance(denoised_conditional: torch.Tensor, denoised_unconditional: torch.Tensor,
                             scale: float) -> torch.Tensor:
    """Lesson 05, exercise 1 (section 1; Ho & Salimans 2022, Eq. 6, written for x_0 instead of eps).

    Given the conditional denoiser's output D(x, sigma | c) and the unconditional one's D(x, sigma | null) at the same
    (x, sigma), both shaped (B, ...), return the guided estimate at guidance scale w = `scale`, shaped like them: the
    x_0 estimate whose implied score (x_0 - x) / sigma^2 is the score of p_sigma(x | c)^w p_sigma(x)^(1 - w), the
    density section 1 derives. w = 1 returns the conditional output, w = 0 the unconditional one, w > 1 extrapolates
    beyond the conditional one. `scale` may also be a tensor that broadcasts against the outputs (one w per item).
    """
    raise NotImplementedError("Lesson 05: the guided denoiser output, Eq. 6 of Ho & Salimans 2022 in x_0 form")


def guided_denoise(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, scale: float, null_cond: dict,
                   interval: Tuple[float, float] = (0.0, math.inf), **cond) -> torch.Tensor:
    """Lesson 05, exercise 2 (section 2; Ho & Salimans 2022, Algorithm 2, line 3; Kynkäänniemi et al. 2024).

    The guided denoiser at (x, sigma): x (B, ...), sigma (B,). `cond` holds the conditions (e.g. label=(B,) labels);
    `null_cond` names the ones to guide and their null value (e.g. {"label": 8}: label 8 means "no label"). Return
    the guided x_0 estimate at scale w (your classifier_free_guidance of the conditional and the unconditional
    output), shaped like x, for the items whose sigma lies in `interval` = (low, high] (low excluded, high included);
    the items outside it get the conditional denoiser's output alone.

    Call the denoiser once, on a batch of 2B items: x twice, sigma twice, each condition of null_cond as the given
    values followed by B copies of its null value, and any other condition (one not in null_cond) repeated unchanged
    in both halves. When no item is guided, the conditional call on the B items is enough.
    """
    raise NotImplementedError("Lesson 05: the guided denoiser, Algorithm 2 of Ho & Salimans 2022, in an interval")


def drop_condition(labels: torch.Tensor, probability: float, null_label: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 05, exercise 3 (section 6; Ho & Salimans 2022, Algorithm 1, p_uncond).

    Condition dropout for training one network as both the conditional and the unconditional model: return a copy of
    `labels` (B,) or of conditions of several tokens (B, M) such as captions, in which each item is replaced as a whole
    by `null_label` with the given probability, independently, and kept unchanged otherwise. Draw one uniform number
    per item with torch.rand(B, generator=generator) and drop the items whose number is below `probability`. A
    probability outside [0, 1] is a ValueError.
    """
    raise NotImplementedError("Lesson 05: condition dropout for training, Algorithm 1 of Ho & Salimans 2022")
