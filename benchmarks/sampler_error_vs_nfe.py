"""Error against the data distribution versus network evaluations (NFE), for every sampler in minisora.

The "network" is the exact denoiser of a Gaussian mixture (tiny_datasets.toy2d.skewed_mixture), so the only error
left is the sampler's own, plus the sampling noise of a finite set of points. The error is the sliced Wasserstein
distance between the samples and the mixture itself: each projection's exact quantiles are compared with the
samples' (no second sample, so no noise from one). Errors are averaged over noise seeds shared by all samplers.

The floor is the same distance for exact samples of the mixture (mean +- std over 10 draws). DDPM-1000 (DDPM's
Algorithm 2 on its own 1000 noise levels) is the baseline; its error is that of exact samples, within the noise of
the measurement. So a sampler "reaches DDPM-1000" at the first budget whose error is within the floor's band:
at most floor mean + 2 std / sqrt(seeds). Results are also written to OUT/sampler_error_vs_nfe.json.

    python benchmarks/sampler_error_vs_nfe.py [--samples 50000] [--seeds 2] [--out benchmarks/out]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from minisora.diffusion import get_sampler
from minisora.diffusion.schedules import (alphas_cumprod, karras_sigmas, linear_betas, respace_timesteps,
                                          sigmas_from_timesteps)
from minisora.metrics import projected_quantiles, quantile_levels, random_directions, sliced_wasserstein_from_quantiles
from tiny_datasets.toy2d import skewed_mixture

BUDGETS = (5, 10, 20, 35, 50, 75, 100, 200, 1000)  # network evaluations
# evaluations per step for each sampler on Karras sigmas (the step into sigma = 0 of Heun-type samplers is Euler)
EVALUATIONS = {
    "euler": lambda steps: steps,
    "euler_ancestral": lambda steps: steps,
    "heun": lambda steps: 2 * steps - 1,
    "edm_stochastic": lambda steps: 2 * steps - 1,
    "dpmpp_2m": lambda steps: steps,
    "reverse_sde": lambda steps: steps,
    "predictor_corrector": lambda steps: 2 * steps - 1,
    "probability_flow": lambda steps: steps,
    "flow_euler": lambda steps: steps,
    "flow_heun": lambda steps: 2 * steps - 1,
    "flow_sde": lambda steps: steps,
}


def steps_for_budget(name: str, budget: int) -> int:
    """The largest step count whose evaluations fit in the budget."""
    steps = 1
    while EVALUATIONS[name](steps + 1) <= budget:
        steps += 1
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50000, help="points per sampler run")
    parser.add_argument("--seeds", type=int, default=2, help="noise seeds to average each error over")
    parser.add_argument("--out", default="benchmarks/out", help="folder for the plot")
    arguments = parser.parse_args()

    mixture = skewed_mixture()
    directions = random_directions(2, 64, torch.Generator().manual_seed(0))
    levels = quantile_levels(arguments.samples)
    exact_quantiles = mixture.projected_quantiles(directions, levels)
    seeds = range(1, arguments.seeds + 1)

    def error(points):
        return float(sliced_wasserstein_from_quantiles(projected_quantiles(points, directions, levels), exact_quantiles))

    def mean_error(name, sigmas):
        """The sampler's error from each seed's noise, averaged."""
        errors = []
        for seed in seeds:
            noise = torch.randn(arguments.samples, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            errors.append(error(get_sampler(name)(mixture.denoiser, noise * sigmas[0], sigmas,
                                                  generator=torch.Generator().manual_seed(1000 + seed))))
        return sum(errors) / len(errors)

    floor = torch.tensor([error(mixture.sample(arguments.samples, torch.Generator().manual_seed(100 + seed)))
                          for seed in range(10)])
    schedule = alphas_cumprod(linear_betas())
    ddpm_1000 = mean_error("euler_ancestral", sigmas_from_timesteps(schedule, torch.arange(999, -1, -1)))
    start = time.time()
    table = {}
    for name in EVALUATIONS:
        table[name] = {budget: mean_error(name, karras_sigmas(steps_for_budget(name, budget)).double())
                       for budget in BUDGETS}
    table["ddim (DDPM steps)"] = {budget: mean_error("euler", sigmas_from_timesteps(schedule, respace_timesteps(1000, budget)))
                                  for budget in BUDGETS}

    print(f"sliced Wasserstein distance to the data, {arguments.samples} samples, mean of {arguments.seeds} seeds; "
          f"exact samples give {floor.mean():.4f} +- {floor.std():.4f}, DDPM-1000 gives {ddpm_1000:.4f}; "
          f"{time.time() - start:.0f} s")
    threshold = floor.mean().item() + 2 * floor.std().item() / arguments.seeds**0.5
    print(f"{'sampler':<22}" + "".join(f"{budget:>8}" for budget in BUDGETS) + f"   NFE to reach DDPM-1000 (<= {threshold:.4f})")
    for name, row in table.items():
        reached = next((budget for budget in BUDGETS if row[budget] <= threshold), None)
        print(f"{name:<22}" + "".join(f"{row[budget]:>8.4f}" for budget in BUDGETS) + f"   {reached or '>1000'}")
    out = Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sampler_error_vs_nfe.json").write_text(json.dumps(
        {"samples": arguments.samples, "seeds": arguments.seeds, "floor_mean": floor.mean().item(),
         "floor_std": floor.std().item(), "ddpm_1000": ddpm_1000, "threshold": threshold, "table": table}, indent=2))
    floor = floor.mean().item()

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    plt.figure(figsize=(7, 4.5))
    for index, (name, row) in enumerate(table.items()):
        plt.loglog(list(row), list(row.values()), "o-", ms=3, color=plt.cm.tab20(index), label=name)
    plt.axhline(ddpm_1000, color="k", ls="--", lw=1, label="DDPM-1000")
    plt.axhline(floor, color="gray", ls=":", lw=1, label="exact samples")
    plt.xlabel("network evaluations"); plt.ylabel("sliced Wasserstein to data")
    plt.legend(fontsize=7); plt.tight_layout()
    plt.savefig(out / "sampler_error_vs_nfe.png", dpi=120)
    print(f"wrote {out / 'sampler_error_vs_nfe.png'}")


if __name__ == "__main__":
    main()
