"""The README's strips: one trained model prompted every way, on held-out clips and captions, written as one GIF a
task under docs/tasks/ (each a row of clips, given frames outlined by nothing: they come back as given).

    python benchmarks/task_strips.py --checkpoint runs/sora/model.pt [--out docs/tasks] [--count 4]

Tasks: text to video, text to image, image to video, extension forward and backward, interpolation, a loop, a
video four windows long, and SDEdit (the clip redrawn in another colour at strength 0.6).
"""
import argparse
from pathlib import Path

import torch

from minisora.data.video_io import tile_videos, write_gif
from minisora.evaluation import held_out_truth, other_caption, task_mask
from minisora.generate import sample_latents, sample_long, sample_loop
from minisora.trained_model import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/sora/model.pt")
    parser.add_argument("--out", default="docs/tasks")
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    config, tokenizer, data_shape, denoiser, _ = load_model(args.checkpoint)
    window, count = data_shape[1], args.count
    videos, captions, _ = held_out_truth(config, window, count)
    ids = tokenizer.encode(captions, config.caption_length)
    settings = dict(sampler=config.sampler, steps=config.sampling_steps, guidance=config.guidance, seed=config.seed + 1,
                    guidance_min_sigma=config.guidance_min_sigma)
    strips = {"text_to_video": sample_latents(denoiser, ids, data_shape, **settings)}
    _, stills, _ = held_out_truth(config, 1, count)  # the same objects as one-frame clips, captioned without motion
    images = sample_latents(denoiser, tokenizer.encode(stills, config.caption_length), (3, 1, *data_shape[2:]),
                            **settings)
    strips["text_to_image"] = images.expand(-1, -1, window, -1, -1)  # held still for as long as a clip plays
    for task in ("image_to_video", "extend_forward", "extend_backward", "interpolate"):
        strips[task] = sample_latents(denoiser, ids, data_shape, given=videos,
                                      given_mask=task_mask(task, count, window), **settings)
    strips["loop"] = sample_loop(denoiser, ids, (3, window - 1, *data_shape[2:]), **settings)
    long_videos, _, _ = held_out_truth(config, 4 * window, count)
    given = torch.zeros(count, 4 * window, dtype=torch.bool)
    given[:, :window // 2] = True
    strips["long_video"] = sample_long(denoiser, ids, (3, 4 * window, *data_shape[2:]), window, config.sampler,
                                       config.sampling_steps, config.guidance, config.seed + 1,
                                       config.guidance_min_sigma, given=long_videos, given_mask=given)
    edited = [other_caption(caption, config.dataset) for caption in captions]
    strips["sdedit"] = torch.cat([videos, sample_latents(denoiser, tokenizer.encode(edited, config.caption_length),
                                                         data_shape, start=videos, strength=0.6, **settings)])
    out = Path(args.out)
    for name, clips in strips.items():
        write_gif(out / f"{name}.gif", tile_videos(clips.clamp(-1, 1), columns=count, gap=2), scale=2)
    (out / "captions.txt").write_text("\n".join(captions) + "\n" + "edited to: " + "; ".join(edited) + "\n")
    print(f"wrote {', '.join(f'{name}.gif' for name in strips)} to {out}")


if __name__ == "__main__":
    main()
