"""Text-to-video end to end, the way Sora is described (Brooks et al. 2024): compress videos with a VAE, train a
diffusion transformer on spacetime patches of the latents conditioned on captions, sample latents for new captions,
decode them. Here on a tiny world, on a CPU, from nothing: `python -m minisora train --preset tiny` runs `run_video`.

  1. the data: clips of a tiny world (tiny_datasets/videos.py), rendered once; the held-out clips' captions are
     kept out of training altogether, so the samples show whether the model composes words it saw apart
  2. the VAE: reused from `vae_path` or OUT_DIR/vae/vae.pt, else trained there (`train.vae`); skipped in pixel space
  3. the latents: every training clip encoded once (posterior means times the latent scale), cached in OUT_DIR
  4. the video DiT (models/video_dit.py) with its caption encoder, trained by the shared loop with caption dropout;
     then a copy of it fine-tuned on the low noise levels alone, the clean-end expert (eDiff-I, diffusion/experts.py)
  5. samples for the held-out captions with classifier-free guidance, decoded, written as mp4, GIF and frame grid,
     and scored against the world's ground truth (scoring.py), beside an untrained model and the real clips

Everything the `sample` command needs is in OUT_DIR/model.pt: the configuration, the vocabulary, the EMA weights (the
model's and its expert's) and the VAE's weights (weights only: loading runs no code). The configuration and presets
are in video_config.py, the data in train/video_data.py, sampling in generate.py, the task scores in
evaluation.py.
"""
import copy
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from ..config import check_device
from ..evaluation import (GIVEN_FRAME_TASKS, describe_task_scores, draw_task_plots, sample_as_configured,
                          score_long_videos, score_loops, score_sdedit, score_tasks, score_text_at)
from ..generate import sample_latents
from ..data.buckets import pick_bucket, shift_for, unseen_buckets
from ..diffusion.conditioning import draw_given_masks, frames_axis, gives_frames, parse_task_mix
from ..diffusion.experts import NoiseLevelExperts
from ..diffusion.guidance import drop_condition
from ..models.text import PAD, CaptionTokenizer, split_words
from ..models.vae import VideoVAE
from ..parallel.batch import BatchShard
from ..parallel import data_parallel
from ..parallel.data_parallel import DataParallel, unsharded
from ..randomness import randn
from ..scoring import describe_scores, score_videos
from ..checkpoint import check_run_folder
from .loop import Checkpointing, Logging, learning_rates, train_loop
from ..video_config import VideoConfig
from .video_data import (FolderData, TrainingSet, held_out_clips, held_out_loss, training_buckets,
                         training_clips)
from ..diffusion.objectives import around, network_of, objective_loss
from .vae import VAEConfig, load_vae, run_vae
from ..pipeline import write_samples
from ..trained_model import build_denoiser, decode, encode, model_card, save_folder, save_model


def prepare_vae(config: VideoConfig, parallel: Optional[DataParallel] = None) -> Optional[VideoVAE]:
    """The VAE of a latent-space run: loaded from vae_path, or reused from OUT_DIR/vae, or trained there (by the
    run's processes together, when `parallel`)."""
    if config.space == "pixel":
        return None
    path = Path(config.vae_path) if config.vae_path else Path(config.out_dir) / "vae" / "vae.pt"
    if not path.is_file():
        if config.vae_path:
            raise FileNotFoundError(f"no VAE at vae_path={config.vae_path}; train one with `python -m minisora train "
                                    f"--preset vae`, or leave vae_path empty to train one here")
        run_vae(VAEConfig(dataset=config.dataset, image_size=config.image_size, num_frames=config.num_frames,
                          steps=config.vae_steps, checkpoint_every=config.vae_steps, seed=config.seed,
                          device=config.device, parallel=config.parallel,
                          out_dir=str(path.parent)), parallel)
        if parallel is not None:
            parallel.barrier()  # process 0 has written vae.pt
    vae = load_vae(path)
    if vae.config.in_channels != 3:
        raise ValueError(f"the VAE at {path} encodes {vae.config.in_channels} channels, not RGB video")
    return vae.to(config.device)


# fields a resumed run may change: they do not touch the weights trained so far
MAY_DIFFER_ON_RESUME = ("resume", "overwrite", "checkpoint_every", "out_dir", "device", "sampler", "sampling_steps",
                        "guidance", "guidance_min_sigma", "expert_sigma")


def batch_loss(config: VideoConfig, denoiser: torch.nn.Module, sets: Sequence[TrainingSet],
               shard: Optional[BatchShard] = None, **times):
    """loss_of_batch(generator) for the loop: a bucket drawn by weight, a random batch of its clips and captions, a
    tenth of the captions dropped for the null one, each clip given the frames of a task drawn from `task_mix`
    (slightly noised, left out of the loss), the objective's loss at times drawn as `times` (objective_loss's time
    arguments) say, a time_shift among them scaled to the bucket's size (`buckets.shift_for`). With a `shard`, the
    whole batch is drawn and this process's rows trained on (parallel/batch.py)."""
    device = torch.device(config.device)
    mix = parse_task_mix(config.task_mix)
    reference = sets[0][0]

    def loss_of_batch(generator):
        bucket, data, caption_ids = sets[pick_bucket([bucket for bucket, _, _ in sets], generator)]
        index = torch.randint(len(data), (bucket.batch_size,), generator=generator)
        ids = drop_condition(caption_ids[index], config.caption_dropout, PAD, generator)  # the null caption
        clips = data[index].to(device)
        frames = {}
        if gives_frames(mix) and clips.shape[2] > 1:
            given_mask = draw_given_masks(len(clips), clips.shape[2], mix, generator)  # (B, T)
            # sigma_given = given_noise * exp(0.5 n): a little noise, so that imperfect frames can be given later
            levels = config.given_noise * torch.exp(0.5 * torch.randn(len(clips), generator=generator))
            noisy = clips + levels.view(-1, 1, 1, 1, 1).to(device) * randn(clips.shape, generator, device)
            frames = dict(given=noisy, given_mask=given_mask.to(device),
                          loss_mask=frames_axis(~given_mask).to(device))
        shift = {"time_shift": shift_for(bucket, reference, times["time_shift"])} if "time_shift" in times else {}
        return objective_loss(denoiser, clips, config.objective, generator, data_min_sigma=config.data_min_sigma,
                              caption=ids.to(device), shard=shard, **frames, **{**times, **shift})
    return loss_of_batch


def training_view(denoiser: torch.nn.Module, parallel: Optional[DataParallel]
                  ) -> Tuple[dict, Optional[torch.nn.Module]]:
    """What batch_loss needs to train `denoiser` on this process (the denoiser around the network as the processes
    train it, and this process's share of each batch), and the EMA module train_loop needs (FSDP's: a copy made
    before sharding, sharded alike; else None, train_loop copies). The denoiser itself on one process."""
    if parallel is None:
        return dict(denoiser=denoiser), None
    trained, ema = parallel.view(denoiser, network_of, around)
    return dict(denoiser=trained, shard=parallel.shard), ema


def train_video(config: VideoConfig, sets: Sequence[TrainingSet], vocabulary_size: int, progress: bool = True,
                on_save=None, parallel: Optional[DataParallel] = None):
    """Train the video DiT on its training sets (a bucket, data (N, C, T, H, W) and caption ids (N, M) each), on
    this process or as one of the processes of `parallel`; returns (ema denoiser, losses)."""
    torch.manual_seed(config.seed)
    data_shape = sets[0][1].shape[1:]
    denoiser = build_denoiser(config, data_shape, vocabulary_size).to(config.device)
    view, ema = training_view(denoiser, parallel)
    loss_of_batch = batch_loss(config, sets=sets, time_distribution=config.time_distribution,
                               time_shift=config.time_shift, unshifted_share=config.unshifted_share, **view)
    out = Path(config.out_dir)
    checkpointing = Checkpointing(out / "checkpoint.pt", asdict(config), config.checkpoint_every, config.resume,
                                  may_differ=MAY_DIFFER_ON_RESUME, on_save=on_save)
    ema, losses = train_loop(denoiser, loss_of_batch, config.steps, config.learning_rate, config.ema_decay,
                             config.seed, f"train the video DiT on {config.dataset}", progress, checkpointing,
                             config.precision, config.warmup_steps, config.accumulation, config.clip_norm,
                             logging=Logging(out / "metrics.jsonl"), optimizer=config.optimizer, parallel=parallel,
                             ema=ema)
    return unsharded(ema, lambda: build_denoiser(config, data_shape, vocabulary_size).to(config.device)), losses


def train_expert(config: VideoConfig, denoiser: torch.nn.Module, sets: Sequence[TrainingSet],
                 progress: bool = True, parallel: Optional[DataParallel] = None) -> NoiseLevelExperts:
    """The trained denoiser with a clean-end expert beside it (Balaji et al. 2022): a copy fine-tuned for
    `expert_steps` on times uniform in (0, expert_max_time], sampled with below noise level `expert_sigma`.
    The main run's times, shifted towards noise, leave the clean end few draws (4% below t = 0.3); there the
    triangles' tips and the squares' corners are drawn."""
    expert = copy.deepcopy(denoiser).to(config.device).train().requires_grad_(True)
    view, ema = training_view(expert, parallel)
    loss_of_batch = batch_loss(config, sets=sets, time_distribution="uniform", max_time=config.expert_max_time, **view)
    out = Path(config.out_dir)
    checkpointing = Checkpointing(out / "expert_checkpoint.pt", asdict(config), config.checkpoint_every,
                                  config.resume, may_differ=MAY_DIFFER_ON_RESUME)
    # warm up over an eighth of the run: the optimizer's momentum and moments start from zero on trained weights
    warmup = config.expert_steps // 8
    expert, _ = train_loop(expert, loss_of_batch, config.expert_steps, config.expert_learning_rate,
                           config.expert_ema_decay, config.seed + 1, "train the clean-end expert", progress,
                           checkpointing, config.precision, warmup, config.accumulation, config.clip_norm,
                           logging=Logging(out / "expert_metrics.jsonl"), optimizer=config.optimizer,
                           parallel=parallel, ema=ema)
    return NoiseLevelExperts(denoiser, unsharded(expert, lambda: copy.deepcopy(denoiser)), config.expert_sigma)


def score_samples(denoiser, tokenizer, vae, captions, config: VideoConfig, data_shape) -> Tuple[dict, torch.Tensor]:
    """Guided samples for `captions`, decoded and scored against the world: (scores, videos)."""
    ids = tokenizer.encode(captions, config.caption_length)
    latents = sample_latents(denoiser, ids, data_shape, config.sampler, config.sampling_steps, config.guidance,
                             config.seed + 1, config.guidance_min_sigma)
    videos = decode(vae, latents)
    return score_videos(videos, captions, config.dataset), videos


def prepare_data(config: VideoConfig, progress: bool = True, parallel: Optional[DataParallel] = None):
    """What a run learns from and is scored on: (training sets, tokenizer, VAE or None, held-out clips (N, 3, T, H,
    W) or None, their captions, FolderData or None). From the tiny world, or from the folder `config.data`."""
    if config.data:
        folder = FolderData(config, progress)
        captions = folder.captions()
        longest = max(captions, key=lambda caption: len(split_words(caption)))
        if len(split_words(longest)) + 1 > config.caption_length:
            raise ValueError(f"the caption {longest!r} of {config.data} has {len(split_words(longest))} words; pass "
                             f"--caption_length={len(split_words(longest)) + 1} (or more) to fit every caption")
        tokenizer = CaptionTokenizer.from_captions(captions)
        held = folder.held_out.get(folder.sizes[0], [])[:config.held_out]
        held_out_videos = torch.stack([video for video, _ in held]) if held else None
        return (folder.sets(tokenizer, config.caption_length), tokenizer, None, held_out_videos,
                [caption for _, caption in held], folder)
    held_out_videos, held_out_captions = held_out_clips(config)
    rendered = [(bucket, *training_clips(config, held_out_captions, progress, bucket))
                for bucket in training_buckets(config)]
    vae = prepare_vae(config, parallel)
    tokenizer = CaptionTokenizer.from_captions([caption for _, _, captions in rendered for caption in captions])
    sets = [(bucket, encode(vae, videos, progress=progress), tokenizer.encode(captions, config.caption_length))
            for bucket, videos, captions in rendered]
    return sets, tokenizer, vae, held_out_videos, held_out_captions, None


class PhaseClock:
    """Wall seconds of a run's phases, each ended by name in turn (data, train, expert, evaluation, writing)."""

    def __init__(self):
        self.seconds, self.last = {}, time.time()

    def end(self, phase: str) -> None:
        now = time.time()
        self.seconds[phase] = now - self.last
        self.last = now

    def rounded(self) -> dict:
        return {phase: round(seconds, 1) for phase, seconds in self.seconds.items()}


LOOP_AND_EDIT_CLIPS = 32  # held-out clips the loops and SDEdit are scored on (at most config.held_out)


def evaluate(config: VideoConfig, denoiser, untrained_model, tokenizer, vae, held_out_videos: torch.Tensor,
             held_out_captions: List[str], data_shape, say=print) -> Tuple[dict, torch.Tensor]:
    """Every score of a trained tiny-world model against the world, as metrics.json holds them: text to video on
    the held-out captions (beside an untrained model and the real clips), each given-frame task, loops, long videos
    and SDEdit (for a model taught given frames), text at the other sizes; and the held-out samples. Sampled with
    config's sampler, steps and guidance (benchmarks/evaluation_levers.py varies them on a saved model)."""
    say(f"scoring against the world: text to video for {len(held_out_captions)} captions never trained on ...")
    scores, samples = score_samples(denoiser, tokenizer, vae, held_out_captions, config, data_shape)
    untrained, _ = score_samples(untrained_model, tokenizer, vae, held_out_captions, config, data_shape)
    reference = {"real clips": score_videos(held_out_videos, held_out_captions, config.dataset)}
    if vae is not None:
        reference["VAE reconstructions"] = score_videos(decode(vae, encode(vae, held_out_videos, progress=False)),
                                                        held_out_captions, config.dataset)
    tasks = {}
    if gives_frames(parse_task_mix(config.task_mix)) and config.space == "pixel":  # it was taught given frames
        say(f"scoring: {', '.join(GIVEN_FRAME_TASKS)}, loops, long videos and SDEdit ...")
        side_clips = min(LOOP_AND_EDIT_CLIPS, config.held_out)
        tasks = {"trained": score_tasks(denoiser, tokenizer, config, data_shape),
                 "real clips": score_tasks(None, tokenizer, config, data_shape),
                 "loops": score_loops(denoiser, tokenizer, config, data_shape, count=side_clips),
                 "long videos": score_long_videos(denoiser, tokenizer, config, data_shape, frames=4 * data_shape[1],
                                                  count=min(16, config.held_out)),
                 "sdedit": score_sdedit(denoiser, tokenizer, config, data_shape, count=side_clips)}
    sizes = {}
    if config.space == "pixel":  # text alone at the other sizes trained on, and at those never trained on
        other_sizes = [(bucket, "trained") for bucket in training_buckets(config)[1:]]
        other_sizes += [(bucket, "never trained on") for bucket in unseen_buckets(config.unseen_sizes)]
        if other_sizes:
            say(f"scoring: text at {', '.join(bucket.describe() for bucket, _ in other_sizes)} ...")
        sizes = {f"{bucket.describe()} ({kind})": score_text_at(denoiser, tokenizer, config, bucket.frames,
                                                                bucket.height, bucket.width)
                 for bucket, kind in other_sizes}
    return {"trained": scores, "untrained": untrained, **reference, "tasks": tasks, "sizes": sizes}, samples


def run_video(config: VideoConfig, progress: bool = True) -> dict:
    """Data, VAE, latents, DiT, samples and scores; writes everything to out_dir and returns the metrics. Launched
    by torchrun, every process prepares the data and trains (`config.parallel`); process 0 alone writes, samples
    and scores, and the others return {} when training ends."""
    from ..plotting import draw_loss_curve

    check_device(config.device)
    if progress:
        print(f"training on {config.device}")
    check_run_folder(config.out_dir, config.overwrite, config.resume)
    parallel = data_parallel.start(config.parallel, config.device, config.sequence_parallel, config.sequence_method)
    if parallel is not None:
        parallel.barrier()  # every process has checked the folder before process 0 writes in it
        progress = progress and parallel.is_main
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start_time = time.time()
    phases = PhaseClock()
    sets, tokenizer, vae, held_out_videos, held_out_captions, folder = prepare_data(config, progress, parallel)
    phases.end("data")
    data_shape = tuple(sets[0][1].shape[1:])
    denoiser, losses = train_video(config, sets, len(tokenizer), progress, parallel=parallel)
    phases.end("train")
    if config.expert_steps:
        denoiser = train_expert(config, denoiser, sets, progress, parallel)
        phases.end("expert")
    train_seconds = phases.seconds.get("train", 0.0) + phases.seconds.get("expert", 0.0)
    data_parallel.finish(parallel)  # the processes' last collective is behind them
    if parallel is not None and not parallel.is_main:
        return {}
    save_model(out / "model.pt", config, tokenizer, data_shape, denoiser, vae)
    torch.manual_seed(config.seed + 2)  # sampled and scored where it trained (config.device)
    untrained_model = build_denoiser(config, data_shape, len(tokenizer)).to(config.device)
    if folder is not None:
        return report_folder_run(config, folder, denoiser, untrained_model, tokenizer, held_out_videos,
                                 held_out_captions, data_shape, losses, train_seconds, start_time)
    say = print if progress else (lambda *_: None)
    scored, samples = evaluate(config, denoiser, untrained_model, tokenizer, vae, held_out_videos, held_out_captions,
                               data_shape, say)
    if scored["tasks"]:
        draw_task_plots(scored["tasks"]["long videos"], scored["tasks"]["sdedit"], out)
    phases.end("evaluation")
    write_samples(samples, out)
    (out / "captions.txt").write_text("\n".join(held_out_captions) + "\n")
    draw_loss_curve(losses, out / "loss.png", learning_rates(config.learning_rate, config.steps, config.warmup_steps
                                                              )[-len(losses):])
    phases.end("writing")
    metrics = {**scored, "data_shape": list(data_shape),
               "parameters": sum(p.numel() for p in untrained_model.parameters()),  # of one network (an expert's same)
               "prepare_seconds": round(phases.seconds["data"], 1), "phase_seconds": phases.rounded(),
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start_time, 1),
               "config": asdict(config)}
    save_folder(out / "model", config, tokenizer, data_shape, denoiser, vae, model_card(config, data_shape, metrics))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    expert = f" and {config.expert_steps} of the clean-end expert" if config.expert_steps else ""
    print(f"trained {config.steps} steps{expert} in {train_seconds:.0f} s ({time.time() - start_time:.0f} s in all); "
          f"{len(held_out_captions)} samples for captions never trained on, scored against the world:")
    tasks, sizes = metrics["tasks"], metrics["sizes"]
    for name in ("trained", "untrained", "real clips", *(["VAE reconstructions"] if vae is not None else [])):
        row = metrics[name]
        print(f"  {name:<20} {describe_scores(row)}")
    for name, row in sizes.items():
        print(f"  text at {name}: {describe_scores(row)}")
    for name in ("trained", "real clips") if tasks else ():
        print(f"given frames, {name}:")
        for task in GIVEN_FRAME_TASKS:
            print(f"  {describe_task_scores(task, tasks[name][task])}")
    if tasks:
        loops, long_videos = tasks["loops"], tasks["long videos"]
        print(f"loops: seam {loops['seam_px']:.1f} px against a step of {loops['step_px']:.1f} px, seamless "
              f"{loops['seamless']:.0%}")
        print(f"{long_videos['frames']} frames by chunks, track error per chunk: " + ", ".join(
            f"{chunk['track_error_px']:.1f}" for chunk in long_videos["chunks"]) + " px, identity kept: " + ", ".join(
            f"{chunk['identity']:.0%}" for chunk in long_videos["chunks"]) + " (long_videos.png)")
        print("SDEdit, strength: share edited / drift from the source: " + ", ".join(
            f"{point['strength']:g}: {point['changed']:.0%} / {point['track_error_px']:.1f} px"
            for point in tasks["sdedit"]) + " (sdedit.png)")
    print(f"wrote {out / 'samples.gif'} (.mp4, .png; captions in captions.txt), model.pt and model/ (to share: "
          f"TinySora.from_pretrained reads either), loss.png, metrics.jsonl and metrics.json")
    return metrics


def report_folder_run(config: VideoConfig, folder: FolderData, denoiser, untrained_model, tokenizer,
                      held_out_videos: Optional[torch.Tensor], held_out_captions: List[str], data_shape, losses,
                      train_seconds: float, start: float) -> dict:
    """A run on the user's folder: the loss on held-out clips (trained against untrained, at the same draws),
    samples for the held-out captions, and world scores when the folder came from a tiny world (it keeps the
    truth in captions.jsonl)."""
    from ..plotting import draw_loss_curve

    out = Path(config.out_dir)
    text_only = replace(config, task_mix="text:1", caption_dropout=0.0)
    held_sets = folder.held_out_sets(tokenizer, config.caption_length)
    held = {name: held_out_loss(batch_loss(text_only, model, held_sets, time_distribution="uniform"),
                                seed=config.seed + 3) if held_sets else None
            for name, model in (("trained", denoiser), ("untrained", untrained_model))}
    metrics = {"held_out_loss": held, "buckets": [asdict(bucket) for bucket in folder.buckets],
               "skipped_files": len(folder.skipped), "data_shape": list(data_shape),
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start, 1),
               "config": asdict(config)}
    if held_out_videos is not None:
        ids = tokenizer.encode(held_out_captions, config.caption_length)
        samples = sample_as_configured(denoiser, ids, config, data_shape)
        write_samples(samples, out)
        (out / "captions.txt").write_text("\n".join(held_out_captions) + "\n")
        if (Path(config.data) / "captions.jsonl").is_file() and '"truth"' in (
                Path(config.data) / "captions.jsonl").read_text():  # written from a tiny world: it can be scored
            metrics["trained"] = score_videos(samples, held_out_captions, config.dataset)
            metrics["real clips"] = score_videos(held_out_videos, held_out_captions, config.dataset)
    draw_loss_curve(losses, out / "loss.png",
                    learning_rates(config.learning_rate, config.steps, config.warmup_steps)[-len(losses):],
                    {f"{name} model, noise levels uniform": value for name, value in held.items() if value is not None})
    save_folder(out / "model", config, tokenizer, data_shape, denoiser, None, model_card(config, data_shape, metrics))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"trained {config.steps} steps on {config.data} in {train_seconds:.0f} s: {folder.describe()}")
    if held["trained"] is not None:
        print(f"  held-out loss {held['trained']:.4f} (untrained {held['untrained']:.4f})")
    for name in ("trained", "real clips"):
        if name in metrics:
            print(f"  {name:<20} {describe_scores(metrics[name], config.dataset)}")
    print(f"wrote model.pt, loss.png, metrics.json{' and samples' if held_out_videos is not None else ''} to {out}")
    return metrics
