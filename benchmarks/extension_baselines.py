"""What an extension would score without learning the world's physics: the held-out clips' true tracks continued by
rules, in pixels against the truth, beside which a model's extension errors (`evaluation.score_tasks`) can be read.

    python benchmarks/extension_baselines.py [--count 64] [--size 32]

Forward: the first 8 of 16 frames known, the last 8 predicted; backward: the last 8 known, the first 8 predicted.
Rules: standing still (the nearest known position held) and constant velocity (the two nearest known positions
extrapolated in a straight line). In the shapes world objects move in straight lines and bounce off the walls, so
constant velocity is exact until a bounce; the ball falls under gravity and bounces off the floor, so only a model
that learned the parabola and the bounce beats it. Positions are the world's exact centres, not read from frames.
"""
import argparse
from dataclasses import replace

import numpy as np

from minisora.evaluation import held_out_truth
from minisora.video_config import VIDEO_PRESETS

KNOWN = 8  # frames known of 16


def rule_errors(track: np.ndarray, rule: str, backward: bool) -> float:
    """Mean distance (px) of the rule's predicted positions from the true ones over the unknown frames."""
    if backward:
        track = track[::-1]
    known, unknown = track[:KNOWN], track[KNOWN:]
    steps = np.arange(1, len(unknown) + 1)[:, None]
    velocity = known[-1] - known[-2] if rule == "constant velocity" else 0 * known[-1]
    predicted = known[-1] + velocity * steps
    return float(np.linalg.norm(predicted - unknown, axis=1).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    print(f"{args.count} held-out clips of 16 frames at {args.size}x{args.size} per world (the sora preset's seed); "
          f"median error over clips (px), share within 2 px\n")
    print("| world | rule | extend forward | extend backward |")
    print("| --- | --- | --- | --- |")
    for world in ("shapes", "ball"):
        config = replace(VIDEO_PRESETS["sora"], dataset=world, image_size=args.size)
        _, _, truths = held_out_truth(config, 16, args.count)
        tracks = [np.array(truth) * args.size for truth in truths]
        for rule in ("standing still", "constant velocity"):
            cells = []
            for backward in (False, True):
                errors = np.array([rule_errors(track, rule, backward) for track in tracks])
                cells.append(f"{np.median(errors):.2f} px, {np.mean(errors <= 2):.0%}")
            print(f"| {world} | {rule} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
