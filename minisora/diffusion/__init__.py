"""The diffusion core: schedules, DDPM, DDIM, score SDEs, EDM, flow matching, guidance and the samplers."""
from .flow import sample_flow_euler, sample_flow_heun, sample_flow_sde
from .samplers import SAMPLERS, get_sampler
from .score_sde import sample_predictor_corrector, sample_probability_flow, sample_reverse_sde

__all__ = ["SAMPLERS", "get_sampler"]  # the registry of every sampler, complete once this package is imported

# The score-SDE and flow samplers build on samplers.py, so they join its registry here rather than there.
SAMPLERS.update({
    "reverse_sde": sample_reverse_sde,
    "predictor_corrector": sample_predictor_corrector,
    "probability_flow": sample_probability_flow,
    "flow_euler": sample_flow_euler,
    "flow_heun": sample_flow_heun,
    "flow_sde": sample_flow_sde,
})
