"""Where a training step's time goes: one preset's step (a batch drawn, forward, backward, clipping, the optimizer,
the EMA) timed phase by phase and op by op, against the FLOPs it computes and this machine's float32 matmul rate,
measured in the same run.

    python benchmarks/training_step_profile.py [--preset sora] [--repeats 10] [--threads 2] [--compile]
        [--against FIELD=VALUE ...] [--field=value ...]
    python benchmarks/training_step_profile.py --preset shapes64 --against optimizer=adamw   # a GPU preset, on CUDA

On a GPU (a preset with device="cuda") every phase ends with a synchronisation, the matmul rate is an 8192^3
product in the preset's precision, and the profile adds the GPU's side: how much of the step the GPU is busy
(the sum of its kernels' times), and the kernels that take it. A GPU far from busy is waiting for Python to launch
its kernels: small models on big GPUs are launch-bound.

The training data are random tensors of each bucket's shape (the step does not care what the clips show; rendering
is done once, before training). Phases are timed with perf_counter around the calls the training loop makes, in
the loop's order (median over repeats); the op table is torch.profiler's self time per op over the same steps,
grouped into matrix products (mm, addmm, bmm: the FLOPs), attention (SDPA's kernels), normalisation, elementwise
and the rest. FLOPs are counted by torch's FlopCounterMode over one forward + backward (multiply-adds x 2); the
optimizer's own products (Muon's Newton-Schulz iterations) are counted separately.
"""
import argparse
import statistics
import time
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

from minisora.config import apply_overrides
from minisora.train.ema import make_ema, update_ema
from minisora.train.optimizers import build_optimizer
from minisora.train.precision import MixedPrecision
from minisora.trained_model import build_denoiser
from minisora.train.video import batch_loss
from minisora.video_config import VIDEO_PRESETS
from minisora.train.video_data import training_buckets
from gpu_preset_run import latent_shape
from peer_timing import median_seconds_in_turn

VOCABULARY = 40  # about the shapes world's
CATEGORIES = [  # (category, words in an op's name that put it there), first match wins
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::baddbmm", "aten::linear")),
    ("attention", ("attention", "sdpa")),
    ("normalisation", ("layer_norm", "group_norm", "rms_norm")),
    ("copies and layout", ("copy_", "clone", "contiguous", "cat", "stack", "index", "pad", "expand", "permute",
                           "transpose", "view", "reshape", "select", "slice", "narrow", "unbind", "split", "chunk",
                           "as_strided", "empty", "zeros", "fill_", "where", "_to_copy", "to")),
    ("elementwise math", ("add", "mul", "sub", "div", "gelu", "silu", "exp", "sin", "cos", "neg", "pow", "sqrt",
                          "rsqrt", "sum", "mean", "lerp", "clamp", "sigmoid", "tanh", "log", "abs", "max", "min",
                          "foreach", "norm", "sign", "randn", "uniform", "normal", "random")),
]


class MatmulRate:
    """This machine's matmul rate, GFLOP/s of a size^3 product (float32 on the CPU; on a GPU 8192^3 in `dtype`):
    call it between steps, read `median`."""

    def __init__(self, device: str = "cpu", dtype: torch.dtype = torch.float32, repeats: int = 4):
        size = 8192 if device.startswith("cuda") else 1024
        self.a, self.b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
        self.repeats, self.rates, self.synchronize = repeats, [], synchronizer(device)

    def __call__(self):
        self.synchronize()
        start = time.perf_counter()
        for _ in range(self.repeats):
            self.a @ self.b
        self.synchronize()
        self.rates.append(2 * self.a.shape[0] ** 3 * self.repeats / (time.perf_counter() - start) / 1e9)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def synchronizer(device: str):
    """A call that waits for the device's queued work (nothing to wait for on the CPU)."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def category(name: str) -> str:
    for label, words in CATEGORIES:
        if any(word in name for word in words):
            return label
    return "other"


def random_sets(config, buckets, generator):
    """A set per bucket as the trainer builds it, of random clips (256 per bucket; in latent space, random latents
    of the VAE's shape) and caption ids."""
    sets = []
    for bucket in buckets:
        shape = latent_shape(config) if config.space == "latent" else (3, bucket.frames, bucket.height, bucket.width)
        data = torch.rand((256, *shape), generator=generator) * 2 - 1
        ids = torch.randint(3, VOCABULARY, (256, config.caption_length), generator=generator)
        sets.append((bucket, data, ids))
    return sets


class Stepper:
    """A preset's training step as the loop takes it (train/loop.py), on random clips of its buckets."""

    def __init__(self, config, main_bucket_only: bool = False, compile_network: bool = False):
        buckets = training_buckets(config)
        if main_bucket_only:
            buckets = buckets[:1]
        self.config, self.buckets = config, buckets
        self.generator = torch.Generator().manual_seed(0)
        self.sets = random_sets(config, buckets, self.generator)
        torch.manual_seed(0)
        self.denoiser = build_denoiser(config, self.sets[0][1].shape[1:], VOCABULARY).to(config.device)
        if compile_network:
            self.denoiser.model.compile()  # the network (flow_matching_loss calls it directly)
        self.loss_of_batch = self.loss_over(self.sets)
        self.optimizer = build_optimizer(self.denoiser, config.optimizer, config.learning_rate, 0.01)
        self.mixed_precision = MixedPrecision(config.precision, torch.device(config.device).type,
                                              learning_rate=config.learning_rate)
        self.ema = make_ema(self.denoiser)
        self.phases = defaultdict(list)
        self.synchronize = synchronizer(config.device)

    def loss_over(self, sets):
        config = self.config
        return batch_loss(config, self.denoiser, sets, time_distribution=config.time_distribution,
                          time_shift=config.time_shift, unshifted_share=config.unshifted_share)

    def __call__(self):
        self.synchronize()
        marks = [time.perf_counter()]
        self.optimizer.zero_grad(set_to_none=True)
        with self.mixed_precision.autocast():
            loss = self.loss_of_batch(self.generator)
        self.synchronize()
        marks.append(time.perf_counter())
        self.mixed_precision.backward(loss)
        self.synchronize()
        marks.append(time.perf_counter())
        self.mixed_precision.step(self.optimizer, self.denoiser.parameters(), 0, loss.detach(), self.config.clip_norm)
        self.synchronize()
        marks.append(time.perf_counter())
        update_ema(self.ema, self.denoiser, self.config.ema_decay)
        self.synchronize()
        marks.append(time.perf_counter())
        for name, start, end in zip(("batch + forward", "backward", "clip + optimizer", "EMA"), marks, marks[1:]):
            self.phases[name].append(end - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sora")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--main-bucket-only", action="store_true", help="every step on the first bucket")
    parser.add_argument("--compile", action="store_true", help="the network through torch.compile (inductor)")
    parser.add_argument("--against", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="variants of the preset (one override each) timed in turn with it")
    args, overrides = parser.parse_known_args()  # the rest: config overrides, --field=value
    torch.set_num_threads(args.threads)
    config = apply_overrides(VIDEO_PRESETS[args.preset], overrides)
    stepper = Stepper(config, args.main_bucket_only, args.compile)
    buckets, denoiser, optimizer, sets = stepper.buckets, stepper.denoiser, stepper.optimizer, stepper.sets
    step = stepper
    cuda = config.device.startswith("cuda")
    matmul = MatmulRate(config.device, (stepper.mixed_precision.dtype or torch.float32) if cuda else torch.float32)
    phases = stepper.phases
    for _ in range(2):  # warm-up
        step()
    phases.clear()
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(args.repeats):
            step()
    profiled = {name: statistics.median(times) for name, times in phases.items()}
    phases.clear()
    for _ in range(args.repeats):  # the step and the matmul in turn, so that the machine's drifts hit both
        step()
        matmul()
    rate = matmul.median
    device_name = torch.cuda.get_device_name() if cuda else f"{args.threads} threads"
    medians = {name: statistics.median(times) for name, times in phases.items()}
    total = sum(medians.values())

    # FLOPs of the main bucket's forward + backward, and of one optimizer step
    main_loss = stepper.loss_over(sets[:1])
    with FlopCounterMode(display=False) as counter:
        main_loss(torch.Generator().manual_seed(1)).backward()
    model_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        optimizer.step()
    optimizer_flops = counter.get_total_flops()

    print(f"preset {args.preset}: {sum(p.numel() for p in denoiser.parameters()) / 1e6:.2f} M parameters, buckets "
          f"{', '.join(bucket.describe() + f' (batch {bucket.batch_size})' for bucket in buckets)}; torch "
          f"{torch.__version__}, {device_name}, {args.repeats} steps (median); a {matmul.a.shape[0]}^3 "
          f"{str(matmul.a.dtype).replace('torch.', '')} matmul, timed between them, runs at {rate:.0f} GFLOP/s "
          f"(median)\n")
    print("| phase | s/step | share | s/step under the profiler |")
    print("| --- | --- | --- | --- |")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {seconds / total:.0%} | {profiled[name]:.3f} |")
    print(f"| step | {total:.3f} | 100% | {sum(profiled.values()):.3f} |\n")
    main_rate = model_flops / total / 1e9
    print(f"forward + backward of the main bucket: {model_flops / 1e9:.1f} GFLOP; the optimizer step: "
          f"{optimizer_flops / 1e9:.2f} GFLOP; at the step's time that is {main_rate:.0f} GFLOP/s, "
          f"{main_rate / rate:.0%} of the matmul rate\n")

    grouped, counts = defaultdict(float), defaultdict(int)
    rows = profiler.key_averages()
    for row in rows:
        grouped[category(row.key)] += row.self_cpu_time_total
        counts[category(row.key)] += row.count
    profiled_total = sum(grouped.values())
    print("| ops | self time per step (s) | share | calls per step |")
    print("| --- | --- | --- | --- |")
    for name, microseconds in sorted(grouped.items(), key=lambda item: -item[1]):
        print(f"| {name} | {microseconds / 1e6 / args.repeats:.3f} | {microseconds / profiled_total:.0%} | "
              f"{counts[name] / args.repeats:.0f} |")
    products = grouped["matrix products"] / 1e6 / args.repeats
    print(f"\nthe matrix products alone run at {model_flops / 1e9 / products:.0f} GFLOP/s "
          f"(optimizer's included in their time)\n")
    if cuda:  # the GPU's side: kernels (events on the device), their time against the step's
        on_cpu = {row.key for row in rows if row.device_type == torch.autograd.DeviceType.CPU}
        # a range the code marks (the optimizer's step) shows on the device too; it is not a kernel
        kernels = [row for row in rows if row.device_type == torch.autograd.DeviceType.CUDA and row.key not in on_cpu]
        busy = sum(row.self_device_time_total for row in kernels) / 1e6 / args.repeats
        launches = sum(row.count for row in kernels) / args.repeats
        profiled_step = sum(profiled.values())
        print(f"the GPU is busy {busy:.4f} s of the step's {profiled_step:.4f} s under the profiler "
              f"({busy / profiled_step:.0%}), in {launches:.0f} kernels a step; the 10 kernels of most time:\n")
        print("| kernel | device time per step (s) | launches per step |")
        print("| --- | --- | --- |")
        for row in sorted(kernels, key=lambda row: -row.self_device_time_total)[:10]:
            print(f"| {row.key[:90]} | {row.self_device_time_total / 1e6 / args.repeats:.4f} | "
                  f"{row.count / args.repeats:.0f} |")
        print()
    print("the 15 ops of most self time (on the CPU, launching):\n" if cuda else "the 15 ops of most self time:\n")
    print("| op | category | self time per step (s) | calls per step |")
    print("| --- | --- | --- | --- |")
    for row in sorted(rows, key=lambda row: -row.self_cpu_time_total)[:15]:
        print(f"| {row.key} | {category(row.key)} | {row.self_cpu_time_total / 1e6 / args.repeats:.4f} | "
              f"{row.count / args.repeats:.0f} |")

    if args.against:
        steppers = {"preset": step, **{variant: Stepper(apply_overrides(config, ["--" + variant]),
                                                        args.main_bucket_only) for variant in args.against}}
        seconds = median_seconds_in_turn(steppers, args.repeats)
        print(f"\nvariants, a step of each in turn ({args.repeats} each, median):\n")
        print("| variant | s/step | / preset's |")
        print("| --- | --- | --- |")
        for name, value in seconds.items():
            print(f"| {name} | {value:.3f} | {value / seconds['preset']:.2f} |")


if __name__ == "__main__":
    main()

