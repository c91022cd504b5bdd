"""What the benchmarks that time minisora against a peer library share: their two command-line options, and the
timing of training steps taken in turn, so that drifts of a noisy machine hit every model alike."""
import argparse
import statistics
import time
from typing import Callable, Dict

import torch


def peer_arguments(description: str) -> argparse.Namespace:
    """--repeats and --threads parsed; torch's CPU threads set to --threads."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model and case")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    return arguments


def median_seconds_in_turn(steps: Dict[str, Callable[[], None]], repeats: int, warm_up: int = 2) -> Dict[str, float]:
    """Each step run `warm_up` + `repeats` times, the steps in turn; the median seconds of the timed runs, by name."""
    times = {name: [] for name in steps}
    for repeat in range(warm_up + repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if repeat >= warm_up:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}
