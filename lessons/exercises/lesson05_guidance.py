"""Lesson 05 exercises: classifier-free guidance (Ho & Salimans 2022). Check with `pytest -m lesson05 --impl=exercises`."""
from typing import Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.guidance",)


def classifier_free_guidance(denoised_conditional: torch.Tensor, denoised_unconditional: torch.Tensor,
                             scale: float) -> torch.Tensor:
    """Lesson 05, Eq. 6 (in x_0 form): D(x | null) + w (D(x | c) - D(x | null))."""
    raise NotImplementedError("Lesson 05: the guided denoiser, Eq. 6 of Ho & Salimans 2022")


def drop_condition(labels: torch.Tensor, probability: float, null_label: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 05, Algorithm 1: replace each label by null_label with the given probability (draw with torch.rand)."""
    raise NotImplementedError("Lesson 05: condition dropout for training, Algorithm 1 of Ho & Salimans 2022")
