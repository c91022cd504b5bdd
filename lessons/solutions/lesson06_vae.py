"""Lesson 06 worked solutions: video data and the causal video VAE (latent diffusion, Rombach et al. 2022; MAGVIT-v2;
Kingma & Welling 2014). Try the exercises in lessons/exercises/lesson06_vae.py first; these pass the same checks:
`pytest -m lesson06 --impl=solutions`.

Notation: q(z | x) = N(mu, diag sigma^2) the encoder's posterior, given as mu and log sigma^2; p(z) = N(0, I) the
prior; D(z) the decoder; N the number of pixel values in a batch.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch

from minisora.models.vae import VideoVAE

REFERENCE_MODULES = ("minisora.models.vae", "minisora.data.video_io", "minisora.data.folder", "tiny_datasets.videos")


def bounce_between_walls(position: float, velocity: float, low: float, high: float) -> Tuple[float, float]:
    """Lesson 06, exercise 1 (section 2: the tiny datasets' motion).

    Move one step (position + velocity) and reflect off the walls at `low` and `high` as often as needed: a
    reflection mirrors the position in the wall it crossed and flips the velocity. A step longer than the room
    crosses a wall more than once. Return the new (position, velocity)."""
    position = position + velocity
    # A position beyond a wall is mirrored in it: `high + d` becomes `high - d`, i.e. 2 high - position, and the
    # motion turns round. The mirrored position may now lie beyond the other wall (a step longer than the room), so
    # keep reflecting until it is inside; each reflection moves it back by at least the room's width.
    while position < low or position > high:
        if position > high:
            position, velocity = 2 * high - position, -velocity
        else:
            position, velocity = 2 * low - position, -velocity
    return position, velocity


def frame_indices(start: int, num_frames: int, step: float) -> List[int]:
    """Lesson 06, exercise 2 (section 3: reading clips from video files).

    The indices of `num_frames` source frames from `start`, `step` source frames apart, each rounded to the nearest
    integer with Python's round. A fractional step (source fps / wanted fps) resamples the frame rate: below 1 it
    repeats frames, above 1 it skips some."""
    # frame k of the clip sits k * step source frames after the start; round each position on its own (adding a
    # rounded step each time would let the rounding errors add up, and drift off the wanted rate)
    return [start + round(k * step) for k in range(num_frames)]


def psnr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Lesson 06, exercise 3 (section 3: how close a decoded video is).

    The peak signal-to-noise ratio in dB of `estimate` against `reference`, two videos in [-1, 1] (so the peak-to-peak
    range is 2), over all their values, computed in float64; infinite when they are equal."""
    # MSE over every value, in float64 so that small errors on large videos do not round away
    mean_squared_error = (reference.double() - estimate.double()).pow(2).mean().item()
    if mean_squared_error == 0:
        return math.inf
    # PSNR = 10 log10(peak^2 / MSE) with peak = 1 - (-1) = 2
    peak = 2.0
    return 10 * math.log10(peak**2 / mean_squared_error)


def causal_time_padding(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Lesson 06, exercise 4 (section 5; MAGVIT-v2's causal convolution).

    Return the video x (B, C, T, H, W) with `frames` copies of its first frame put before it (B, C, frames + T, H, W),
    so that a convolution over time without padding of its own sees, for each output frame, only that frame and
    earlier ones."""
    # A kernel of k frames over the padded clip makes output t from padded frames t .. t + k - 1, which are input
    # frames t - (k - 1) .. t once k - 1 frames are put in front: the past only. Copies of the first frame (rather
    # than zeros) make a still image look like a still video to the first layers.
    first = x[:, :, :1]  # (B, C, 1, H, W)
    copies = first.expand(-1, -1, frames, -1, -1)  # (B, C, frames, H, W), a view: no memory copied yet
    return torch.cat([copies, x], dim=2)  # (B, C, frames + T, H, W)


def reparameterize(mean: torch.Tensor, log_variance: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lesson 06, exercise 5 (section 4.3; Kingma & Welling 2014, Section 2.4).

    A sample of N(mean, exp(log_variance)) element by element, made from `noise`, standard normal numbers that
    broadcast against the mean, as a differentiable function of the mean and the log-variance (so that gradients
    reach both)."""
    # If eps ~ N(0, 1) then mu + sigma eps ~ N(mu, sigma^2): the randomness is in eps alone, and the sample is a
    # smooth function of mu and sigma, so dz/dmu = 1 and dz/d(log sigma^2) = sigma eps / 2.
    # sigma = sqrt(exp(log sigma^2)) = exp(log sigma^2 / 2): always positive, whatever the encoder outputs
    standard_deviation = torch.exp(0.5 * log_variance)
    return mean + standard_deviation * noise


def gaussian_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Lesson 06, exercise 6 (section 4.2; Kingma & Welling 2014, Appendix B).

    KL(N(mean, exp(log_variance)) || N(0, 1)) element by element, in nats, in closed form (no sampling): the
    result is shaped like the mean, and it is 0 exactly where the mean is 0 and the log-variance 0."""
    # KL = E_q[log q(z) - log p(z)] with log q(z) = -1/2 log(2 pi sigma^2) - (z - mu)^2 / (2 sigma^2) and
    # log p(z) = -1/2 log(2 pi) - z^2 / 2. Under q, E[(z - mu)^2] = sigma^2 and E[z^2] = mu^2 + sigma^2, so
    # KL = -1/2 log sigma^2 - 1/2 + (mu^2 + sigma^2) / 2 = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2).
    variance = log_variance.exp()
    return 0.5 * (mean.pow(2) + variance - 1.0 - log_variance)


def vae_loss(vae: VideoVAE, video: torch.Tensor, kl_weight: float, reconstruction: str = "l1",
             generator: Optional[torch.Generator] = None, *,
             noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Lesson 06, exercise 7 (section 6: the VAE's training loss, the beta-weighted surrogate of section 4.4).

    For a batch `video` (B, 3, T, H, W): encode it (`vae.encode(video)` gives the posterior, with `.mean` and
    `.log_variance`, each (B, z, t, h, w)), draw one latent sample per value with your `reparameterize` (its noise:
    `noise` when given, else standard normal numbers drawn with torch.randn(shape, generator=generator, dtype=...)),
    decode it (`vae.decode`), and return (loss, terms):

    - the reconstruction error: the mean over all pixel values of the absolute error ("l1") or the squared error
      ("l2"); any other `reconstruction` is a ValueError naming it;
    - the KL term: your `gaussian_kl` of the posterior summed over every latent value, divided by the number of pixel
      values of the batch (so that both terms are per pixel value);
    - loss = the reconstruction error + kl_weight * the KL term, a tensor that backpropagates to the VAE's weights;
    - terms = {"reconstruction": ..., "kl": ...}, the two terms as Python floats.
    """
    if reconstruction not in ("l1", "l2"):
        raise ValueError(f"reconstruction must be 'l1' or 'l2', got {reconstruction!r}")
    # the encoder's posterior q(z | x) = N(mu, diag sigma^2), one Gaussian per latent value (B, z, t, h, w)
    posterior = vae.encode(video)
    if noise is None:
        noise = torch.randn(posterior.mean.shape, generator=generator, dtype=posterior.mean.dtype)
    # one sample z ~ q(z | x) per clip, reparameterised so that the loss's gradient reaches mu and sigma: the
    # one-sample Monte Carlo estimate of E_q[log p(x | z)] (section 4.3)
    z = reparameterize(posterior.mean, posterior.log_variance, noise.to(posterior.mean.device))
    decoded = vae.decode(z)  # (B, 3, T, H, W)

    # -log p(x | z) per pixel value, less its constant and its scale: a Laplace decoder gives |x - D(z)|, a Gaussian
    # one (x - D(z))^2 (section 4.4)
    error = decoded - video
    reconstruction_error = error.abs().mean() if reconstruction == "l1" else error.pow(2).mean()
    # KL(q(z | x) || N(0, I)) in closed form, summed over every latent value of the batch, then shared out per pixel
    # value so that the weight means the same whatever the clip's size
    pixel_values = video.numel()
    kl_per_pixel_value = gaussian_kl(posterior.mean, posterior.log_variance).sum() / pixel_values
    # the beta-weighted surrogate: for "l1" it is (beta / N) (-ELBO) - beta log(2 beta) of a Laplace decoder of scale
    # beta (section 4.4)
    loss = reconstruction_error + kl_weight * kl_per_pixel_value
    return loss, {"reconstruction": reconstruction_error.item(), "kl": kl_per_pixel_value.item()}
