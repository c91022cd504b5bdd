"""The diffusion core: schedules, DDPM, DDIM, score SDEs, EDM, flow matching, guidance and the samplers."""
from .flow import sample_flow_euler, sample_flow_heun, sample_flow_sde
from .samplers import SAMPLERS, VARIANCE_SAMPLERS, get_sampler
from .score_sde import sample_predictor_corrector, sample_probability_flow, sample_reverse_sde

# the registry of every sampler that drives any denoiser, complete once this package is imported; and those that
# need a learned variance
__all__ = ["SAMPLERS", "VARIANCE_SAMPLERS", "get_sampler"]

# The score-SDE and flow samplers build on samplers.py, so they join its registry here rather than there.
SAMPLERS.update({
    "reverse_sde": sample_reverse_sde,
    "predictor_corrector": sample_predictor_corrector,
    "probability_flow": sample_probability_flow,
    "flow_euler": sample_flow_euler,
    "flow_heun": sample_flow_heun,
    "flow_sde": sample_flow_sde,
})
