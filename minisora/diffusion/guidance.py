"""Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance").

One network learns both p(x | c) and p(x), by replacing the condition with a null condition at random during
training (`drop_condition`). At sampling, the two denoisers are extrapolated (`classifier_free_guidance`), both run
as one batch (`guided_denoise`, and `GuidedDenoiser`, the denoiser object the samplers and pipelines take).
"""
import math
from typing import Callable, Optional, Sequence, Tuple

import torch

from ..randomness import rand


def drop_condition(labels: torch.Tensor, probability: float, null_label: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Replace each item's condition by `null_label` with the given probability (Ho & Salimans 2022, Algorithm 1,
    p_uncond): labels (B,), or conditions of several tokens (B, M) such as captions, dropped whole."""
    if not 0 <= probability <= 1:
        raise ValueError(f"drop probability must be in [0, 1], got {probability}")
    dropped = rand(labels.shape[:1], generator, labels.device) < probability  # one draw per item (B,)
    dropped = dropped.view(-1, *[1] * (labels.dim() - 1))
    return torch.where(dropped, torch.full_like(labels, null_label), labels)


def classifier_free_guidance(denoised_conditional: torch.Tensor, denoised_unconditional: torch.Tensor,
                             scale: float) -> torch.Tensor:
    """Ho & Salimans 2022, Eq. 6, written for x_0 instead of eps (the same, since both are affine in x):
    D_w = D(x | null) + w (D(x | c) - D(x | null)); w = 1 is the conditional model, w = 0 the unconditional."""
    return denoised_unconditional + scale * (denoised_conditional - denoised_unconditional)


def guided_denoise(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, scale: float, null_cond: dict,
                   interval: Tuple[float, float] = (0.0, math.inf), **cond) -> torch.Tensor:
    """The classifier-free guided x_0 estimate (Ho & Salimans 2022, Algorithm 2, line 3, in x_0 form), guided only at
    noise levels sigma in `interval` = (low, high] (Kynkäänniemi et al. 2024) and the conditional denoiser elsewhere.
    The conditional and null-condition branches run as one call of the denoiser on a batch of 2B, conditional half
    first; conditions not named in `null_cond` go to both halves unchanged. One call on B items, unguided, when no
    item is guided."""
    missing = set(null_cond) - set(cond)
    if missing:
        raise ValueError(f"guided_denoise needs a value for each condition of null_cond, missing {sorted(missing)}")
    low, high = interval
    guided = (sigma > low) & (sigma <= high)  # (B,)
    if scale == 1 or not bool(guided.any()):
        return denoiser(x, sigma, **cond)
    batch = x.shape[0]
    both = {}
    for name, value in cond.items():
        if name in null_cond:
            null = torch.as_tensor(null_cond[name], dtype=value.dtype, device=value.device)
            both[name] = torch.cat([value, null.expand_as(value)])
        else:  # a kept condition: the same in both branches
            both[name] = torch.cat([value, value])
    denoised = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), **both)  # (2B, ...)
    # w inside the interval, 1 (the conditional denoiser alone) outside it, one per item
    per_item = torch.where(guided, scale, 1.0).to(x.dtype).view(-1, *[1] * (x.dim() - 1))
    # Eq. 6 in x_0 form: D_w = D(x | null) + w (D(x | c) - D(x | null))
    return classifier_free_guidance(denoised[:batch], denoised[batch:], per_item)


class GuidedDenoiser:
    """A denoiser with classifier-free guidance at `scale`, running the conditional and the null condition as
    one batch of twice the size. `null_cond` holds the null value of every condition, e.g. {"label": 10}.
    Guidance applies at noise levels sigma in `interval` = (low, high]; elsewhere the conditional denoiser runs
    alone (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval Improves Sample and Distribution
    Quality in Diffusion Models": at high noise guidance costs variety, near the data it adds little; in the tiny
    text-to-video preset, guiding near the data also broke objects apart, benchmarks/RESULTS.md).
    Conditions named in `kept` go to both branches unchanged: with given frames kept, the unconditional branch
    still sees the frames and guidance pushes towards the caption alone (as CogVideoX guides image-to-video).
    With `channels` = k only the first k channels are guided, the rest are the conditional denoiser's: the DiT
    paper's sampling code guides 3 of its 4 latent channels by default (its `forward_with_cfg`, "for exact
    reproducibility" of its FIDs, guiding all being "the standard approach")."""

    def __init__(self, denoiser: Callable, scale: float, null_cond: dict,
                 interval: Tuple[float, float] = (0.0, math.inf), kept: Sequence[str] = (),
                 channels: Optional[int] = None):
        if not null_cond:
            raise ValueError("classifier-free guidance needs a null condition, e.g. null_cond={'label': num_classes}; "
                             "an unconditional model cannot be guided: use it without GuidedDenoiser")
        if not 0 <= interval[0] < interval[1]:
            raise ValueError(f"guidance interval (low, high] needs 0 <= low < high, got {tuple(interval)}")
        if not math.isfinite(scale) or scale < 0:
            raise ValueError(f"guidance scale must be a finite number >= 0 (1 is no guidance, 4 a usual choice), got "
                             f"{scale}")
        if channels is not None and (not isinstance(channels, int) or channels < 1):
            raise ValueError(f"guided channels must be a positive number of leading channels (or None for all), got "
                             f"{channels!r}")
        self.denoiser, self.scale, self.null_cond, self.interval = denoiser, scale, null_cond, interval
        self.kept, self.channels = tuple(kept), channels

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        return self._guided(lambda *inputs, **both: (self.denoiser(*inputs, **both), None), x, sigma, cond)[0]

    def with_variance(self, x: torch.Tensor, sigma: torch.Tensor,
                      **cond) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(the guided D(x, sigma), the conditional branch's variance output), of a denoiser that has
        `with_variance` (`denoisers.VPDenoiser` with learned variance): the variance is not guided, as in the DiT
        paper's code, where each half of the batch keeps its own and the conditional half is the sample."""
        if not hasattr(self.denoiser, "with_variance"):
            raise TypeError(f"{type(self.denoiser).__name__} has no learned variance to guide with; wrap a "
                            "VPDenoiser(..., learned_variance=True)")
        return self._guided(self.denoiser.with_variance, x, sigma, cond)

    def _guided(self, denoise: Callable, x: torch.Tensor, sigma: torch.Tensor, cond: dict):
        """(guided x_0, conditional variance output or None) from `denoise` returning such a pair."""
        if set(cond) - set(self.kept) != set(self.null_cond):
            raise ValueError(f"guided denoiser got conditions {sorted(cond)} but its null condition names "
                             f"{sorted(self.null_cond)} (and it keeps {sorted(self.kept)}); pass a value for each "
                             "(a guidance scale needs a conditional model)")
        if self.channels is not None and self.channels > x.shape[1]:
            raise ValueError(f"cannot guide the first {self.channels} channels of x with {x.shape[1]}")
        batch, outputs = x.shape[0], {}

        def branches(inputs, levels, **conditions):  # the denoiser, keeping what channels and variance need
            outputs["denoised"], outputs["variance"] = denoise(inputs, levels, **conditions)
            return outputs["denoised"]

        result = guided_denoise(branches, x, sigma, self.scale, self.null_cond, self.interval, **cond)
        conditional = outputs["denoised"][:batch]  # the conditional half comes first (or alone, when unguided)
        if self.channels is not None:
            result = torch.cat([result[:, :self.channels], conditional[:, self.channels:]], dim=1)
        variance_output = outputs["variance"]
        return result, None if variance_output is None else variance_output[:batch]
