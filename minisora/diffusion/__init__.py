"""The diffusion core: schedules, DDPM, DDIM, score SDEs, EDM, guidance and the samplers."""
from .samplers import SAMPLERS, get_sampler  # noqa: F401
from .score_sde import sample_predictor_corrector, sample_probability_flow, sample_reverse_sde

SAMPLERS.update({
    "reverse_sde": sample_reverse_sde,
    "predictor_corrector": sample_predictor_corrector,
    "probability_flow": sample_probability_flow,
})
