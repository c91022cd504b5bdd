"""The speedrun of the main job: `python -m minisora train --preset sora` into a fresh folder, timed phase by phase,
normalised by the machine's float32 matmul rate, and held to the floors every task's score must keep.

    python benchmarks/speedrun.py                       # the README's main command, seed 0
    python benchmarks/speedrun.py --seeds 0 1           # two seeds: the floors hold on their mean
    python benchmarks/speedrun.py --seeds 0 1 --record "what changed"   # and append the row to benchmarks/SPEEDRUN.md
    python benchmarks/speedrun.py --preset tiny -- --steps=800          # any preset, any field overridden

These 2-core machines differ by 2x from day to day, so a run's time is judged normalised: wall time x the matmul rate
measured in the same run (1024^3 torch.mm, median of 5, before and after the run, averaged) / 175 GFLOP/s, the rate
they showed on a good day. A run that misses a floor is not a record, whatever its time (benchmarks/SPEEDRUN.md).
"""
import argparse
import datetime
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "SPEEDRUN.md"
GOOD_DAY_GFLOPS = 175.0  # the float32 matmul rate of these machines on a good day (issue 30)
PHASES = ("data", "train", "expert", "evaluation", "writing")

# (name, where in metrics.json, the comparison, the floor): each a mean over the seeds run
FLOORS = (
    ("text to video, trained sizes", "text_trained", ">=", 0.88),
    ("text to video, unseen size", "text_unseen", ">=", 0.88),
    ("text to image", "text_to_image", ">=", 0.88),
    ("image to video track (px)", "image_to_video", "<=", 1.5),
    ("extend forward track (px)", "extend_forward", "<=", 1.5),
    ("extend backward track (px)", "extend_backward", "<=", 2.0),
    ("interpolate track (px)", "interpolate", "<=", 1.5),
    ("identity kept", "identity", ">=", 0.85),
    ("loops seamless", "loops", ">=", 0.90),
)


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """The machine's float32 matmul rate now: the median of `repeats` timed size^3 products, in GFLOP/s."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(seconds) / 1e9


def normalised_minutes(wall_seconds: float, gflops: float) -> float:
    """Wall time as it would be on a good day's machine: wall x measured rate / 175 GFLOP/s, in minutes."""
    return wall_seconds * gflops / GOOD_DAY_GFLOPS / 60


def scores_of(metrics: dict) -> dict:
    """Each floor's score read from one run's metrics.json (NaN where the run did not measure it): text to video is
    the lowest adherence over the trained video sizes; identity the lowest over the given-frame tasks."""
    sizes = metrics.get("sizes", {})
    trained_videos = [metrics["trained"]["adherence"]] + [row["adherence"] for name, row in sizes.items()
                                                          if name.endswith("(trained)") and not name.startswith("1x")]
    unseen = [row["adherence"] for name, row in sizes.items() if name.endswith("(never trained on)")]
    images = [row["adherence"] for name, row in sizes.items() if name.startswith("1x")]
    tasks = metrics.get("tasks", {}).get("trained", {})
    nan = float("nan")
    scores = {"text_trained": min(trained_videos), "text_unseen": min(unseen) if unseen else nan,
              "text_to_image": min(images) if images else nan}
    for task in ("image_to_video", "extend_forward", "extend_backward", "interpolate"):
        scores[task] = tasks[task]["track_error_px"] if task in tasks else nan
    scores["identity"] = min(row["identity"] for row in tasks.values()) if tasks else nan
    scores["loops"] = metrics.get("tasks", {}).get("loops", {}).get("seamless", nan)
    return scores


def mean_scores(runs: list) -> dict:
    """The mean over runs of each floor's score."""
    return {key: statistics.fmean(scores_of(metrics)[key] for metrics in runs) for _, key, _, _ in FLOORS}


def missed_floors(scores: dict) -> list:
    """The floors these (mean) scores miss, each as a line; a score the run did not measure misses its floor."""
    missed = []
    for name, key, comparison, floor in FLOORS:
        value = scores[key]
        held = not math.isnan(value) and (value >= floor if comparison == ">=" else value <= floor)
        if not held:
            shown = "not measured" if math.isnan(value) else f"{value:.3g}"
            missed.append(f"{name}: {shown}, floor {comparison} {floor:g}")
    return missed


def run_once(preset: str, seed: int, out_dir: Path, overrides: list) -> dict:
    """One run of the main command in a fresh process, as a newcomer starts it: its wall time, the matmul rate before
    and after, and its metrics.json."""
    if out_dir.exists():
        raise SystemExit(f"{out_dir} exists; the speedrun trains into a fresh folder: pass --out ANOTHER or remove it")
    before = matmul_gflops()
    command = [sys.executable, "-m", "minisora", "train", "--preset", preset, f"--seed={seed}",
               f"--out_dir={out_dir}", *overrides]
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    after = matmul_gflops()
    metrics = json.loads((out_dir / "metrics.json").read_text())
    return {"seed": seed, "wall_seconds": wall, "gflops_before": before, "gflops_after": after, "metrics": metrics}


def report(runs: list) -> str:
    """The table: each run's phases, rate, raw and normalised minutes and scores; the mean; the floors' verdict."""
    lines = ["| seed | " + " | ".join(f"{phase} s" for phase in PHASES) + " | wall min | GFLOP/s (before, after) | "
             "normalised min | " + " | ".join(key for _, key, _, _ in FLOORS) + " |",
             "| " + " | ".join(["---"] * (len(PHASES) + 5 + len(FLOORS))) + " |"]
    for run in runs:
        phases = run["metrics"].get("phase_seconds", {})
        rate = (run["gflops_before"] + run["gflops_after"]) / 2
        scores = scores_of(run["metrics"])
        lines.append(f"| {run['seed']} | " + " | ".join(f"{phases.get(phase, 0.0):.0f}" for phase in PHASES)
                     + f" | {run['wall_seconds'] / 60:.1f} | {run['gflops_before']:.0f}, {run['gflops_after']:.0f} | "
                     f"{normalised_minutes(run['wall_seconds'], rate):.1f} | "
                     + " | ".join(f"{scores[key]:.3g}" for _, key, _, _ in FLOORS) + " |")
    mean = mean_scores([run["metrics"] for run in runs])
    minutes = statistics.fmean(normalised_minutes(run["wall_seconds"], (run["gflops_before"] + run["gflops_after"]) / 2)
                               for run in runs)
    lines.append(f"\nmean over {len(runs)} seed(s): {minutes:.1f} normalised minutes; "
                 + ", ".join(f"{key} {mean[key]:.3g}" for _, key, _, _ in FLOORS))
    missed = missed_floors(mean)
    lines.append("every floor held" if not missed else "floors missed (not a record):\n  " + "\n  ".join(missed))
    return "\n".join(lines)


def record_row(runs: list, change: str) -> str:
    """One row of benchmarks/SPEEDRUN.md's table for these runs."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
                            ).stdout.strip() or "?"
    rates = [(run["gflops_before"] + run["gflops_after"]) / 2 for run in runs]
    raw = statistics.fmean(run["wall_seconds"] for run in runs) / 60
    normalised = statistics.fmean(normalised_minutes(run["wall_seconds"], rate) for run, rate in zip(runs, rates))
    mean = mean_scores([run["metrics"] for run in runs])
    seeds = ", ".join(str(run["seed"]) for run in runs)
    return (f"| {datetime.date.today().isoformat()} | {commit} | {change} | {raw:.1f} | {normalised:.1f} | "
            f"{statistics.fmean(rates):.0f} | {seeds} | "
            + " | ".join(f"{mean[key]:.3g}" for _, key, _, _ in FLOORS) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="sora")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/speedrun", help="a fresh folder; each seed trains in OUT/seedN")
    parser.add_argument("--record", metavar="CHANGE", help="append the row to benchmarks/SPEEDRUN.md (only when "
                                                           "every floor holds)")
    parser.add_argument("overrides", nargs="*", help="--key=value fields of the preset, after --")
    arguments = parser.parse_args(argv)
    out = Path(arguments.out)
    runs = [run_once(arguments.preset, seed, out / f"seed{seed}", arguments.overrides) for seed in arguments.seeds]
    table = report(runs)
    print(table)
    (out / "speedrun.md").write_text(table + "\n")
    if arguments.record:
        missed = missed_floors(mean_scores([run["metrics"] for run in runs]))
        if missed:
            print("not recorded: " + "; ".join(missed))
            return 1
        with RECORDS.open("a") as file:
            file.write(record_row(runs, arguments.record) + "\n")
        print(f"recorded in {RECORDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
