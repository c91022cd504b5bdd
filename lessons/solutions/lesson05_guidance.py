"""Lesson 05 worked solutions: classifier-free guidance (Ho & Salimans 2022; Kynkäänniemi et al. 2024). Try the
exercises in lessons/exercises/lesson05_guidance.py first; these pass the same checks:
`pytest -m lesson05 --impl=solutions`.

Notation: D(x, sigma | c) the conditional denoiser, D(x, sigma | null) the unconditional one (the same network told
"no condition"), w the lesson's guidance scale (Ho & Salimans' w is our w - 1).
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
    # Tweedie: D(x | c) = x + sigma^2 grad log p(x | c) and D(x | null) = x + sigma^2 grad log p(x). The score of
    # p(x | c)^w p(x)^(1 - w) is w grad log p(x | c) + (1 - w) grad log p(x); put it back into Tweedie's formula:
    # D_w = x + sigma^2 [w grad log p(x | c) + (1 - w) grad log p(x)] = w D(x | c) + (1 - w) D(x | null).
    # The x's cancel because the weights w and 1 - w add up to 1. Written as a step from the unconditional output
    # along the difference the condition makes (Eq. 6, with Ho & Salimans' 1 + w as our w):
    difference = denoised_conditional - denoised_unconditional  # what knowing c changes in the estimate
    return denoised_unconditional + scale * difference


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
    low, high = interval
    # which items are guided: sigma in (low, high]  (B,)
    in_interval = (sigma > low) & (sigma <= high)
    if not in_interval.any():
        # nothing to guide: the conditional model alone, one call on B items
        return denoiser(x, sigma, **cond)

    batch_size = x.shape[0]
    # the batch of 2B: first half conditional, second half unconditional
    x_both = torch.cat([x, x], dim=0)  # (2B, ...)
    sigma_both = torch.cat([sigma, sigma], dim=0)  # (2B,)
    cond_both = {}
    for name, given in cond.items():
        if name in null_cond:
            # Algorithm 2 runs the network twice, with c and with the null condition; here in one batch
            nothing = torch.full_like(given, null_cond[name])  # B copies of the null value, shaped like the given ones
            cond_both[name] = torch.cat([given, nothing], dim=0)
        else:
            # a condition that is not guided is seen by both halves
            cond_both[name] = torch.cat([given, given], dim=0)
    denoised_both = denoiser(x_both, sigma_both, **cond_both)
    denoised_conditional = denoised_both[:batch_size]
    denoised_unconditional = denoised_both[batch_size:]

    # Kynkäänniemi et al.: the scale is w inside the interval and 1 outside it, where w = 1 gives back the
    # conditional output; one scale per item, shaped (B, 1, ..., 1) to broadcast over the rest of x
    per_item_scale = torch.ones(batch_size, dtype=x.dtype, device=x.device)
    per_item_scale[in_interval] = scale
    per_item_scale = per_item_scale.reshape(batch_size, *([1] * (x.dim() - 1)))
    # Algorithm 2, line 3 in x_0 form: D_w = D(x | null) + w (D(x | c) - D(x | null))
    return classifier_free_guidance(denoised_conditional, denoised_unconditional, per_item_scale)


def drop_condition(labels: torch.Tensor, probability: float, null_label: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 05, exercise 3 (section 6; Ho & Salimans 2022, Algorithm 1, p_uncond).

    Condition dropout for training one network as both the conditional and the unconditional model: return a copy of
    `labels` (B,) or of conditions of several tokens (B, M) such as captions, in which each item is replaced as a whole
    by `null_label` with the given probability, independently, and kept unchanged otherwise. Draw one uniform number
    per item with torch.rand(B, generator=generator) and drop the items whose number is below `probability`. A
    probability outside [0, 1] is a ValueError.
    """
    if probability < 0 or probability > 1:
        raise ValueError(f"the drop probability p_uncond must lie in [0, 1], got {probability}")
    batch_size = labels.shape[0]
    # Algorithm 1, line 3: c <- null with probability p_uncond; a uniform number below p happens with probability p
    uniform = torch.rand(batch_size, generator=generator)
    drop = (uniform < probability).to(labels.device)  # (B,) True for the items trained unconditionally
    result = labels.clone()
    result[drop] = null_label  # a whole row: a caption (B, M) is dropped as a whole, never token by token
    return result
