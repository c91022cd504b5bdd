"""How to tell the network which frames are given: designs and task mixes, each trained from scratch on the tiny
preset and scored on every task against the world's truth (minisora.evaluation), in one table.

    python benchmarks/given_frames_designs.py [--only NAME ...] [--set key=value ...] [--out runs/designs]

The designs (models/video_dit.py, `frame_marking`): a mask channel through a zero-initialised linear (Open-Sora 2.0,
CogVideoX), or each fully given token's own noise level 0 in adaLN (Open-Sora 1.2, Diffusion Forcing); "none" only
puts the clean frames in place, unmarked. On 2 CPU cores each variant takes about as long as the tiny preset (10 to
14 minutes); pick with --only. One run per variant: a few points or a tenth of a pixel is within the noise.
"""
from minisora.evaluation import GIVEN_FRAME_TASKS
from video_variants import run_variants

GIVEN_TASKS = "first:2,last:1,first_last:1,head:1,tail:1,random:1"  # weights summing to 7
MIX = f"text:4,{GIVEN_TASKS}"  # a third text alone, the rest given frames


def given_share(share: float) -> str:
    """The mix in which `share` of the samples are given frames (in GIVEN_TASKS' proportions), the rest text alone."""
    return f"text:{7 * (1 - share) / share:g},{GIVEN_TASKS}"


VARIANTS = {  # name: changes to the tiny preset
    "mask channel": dict(frame_marking="mask_channel", task_mix=MIX),
    "noise level 0 for given tokens": dict(frame_marking="noise_level", task_mix=MIX),
    "unmarked (clean frames put in place)": dict(frame_marking="none", task_mix=MIX),
    "mask channel, 15 frames (frame 0 alone in its patch)": dict(frame_marking="mask_channel", task_mix=MIX,
                                                                 num_frames=15),
    "noise level, 15 frames (frame 0 alone in its patch)": dict(frame_marking="noise_level", task_mix=MIX,
                                                                num_frames=15),
    "mask channel, two thirds text alone": dict(frame_marking="mask_channel",
                                                task_mix="text:12,first:2,last:1,first_last:1,head:1,tail:1"),
    # Open-Sora (report 02): too little masking never teaches conditioning; it raised 10% to 25% from scratch
    "mask channel, a tenth given": dict(frame_marking="mask_channel", task_mix=given_share(0.1)),
    "mask channel, a quarter given": dict(frame_marking="mask_channel", task_mix=given_share(0.25)),
}


def print_table(rows):
    print("| variant | train s | t2v adherence | " + " | ".join(
        f"{task}: error px, within 2 px, identity, moving" for task in GIVEN_FRAME_TASKS) + " |")
    print("| --- " * (3 + len(GIVEN_FRAME_TASKS)) + "|")
    for name, _, metrics in rows:
        tasks = metrics["tasks"]["trained"]
        cells = [f"{tasks[task]['track_error_px']:.2f}, {tasks[task]['track_within_2px']:.0%}, "
                 f"{tasks[task]['identity']:.0%}, {tasks[task]['moving']:.0%}" for task in GIVEN_FRAME_TASKS]
        print(f"| {name} | {metrics['train_seconds']:.0f} | {metrics['trained']['adherence']:.0%} | "
              + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    run_variants(__doc__, VARIANTS, "runs/designs", print_table)
