"""The command line:
  python -m minisora train --preset tiny|sora|shapes64|ball64|toy2d|images|vae [--key=value ...]   train from a preset
  torchrun --standalone --nproc_per_node=N -m minisora train --preset tiny|sora|...   the same run on N processes
  python -m minisora sample --checkpoint runs/tiny/model.pt --prompt "a small red circle moving right slowly"
        [--frames N] [--size HxW] [--first-frame IMAGE] [--last-frame IMAGE] [--extend VIDEO] [--extend-backward VIDEO]
        [--loop] [--edit VIDEO --strength S]
  python -m minisora data [--key=value ...]         write a tiny video dataset to disk (.mp4 files + captions.jsonl)
  python -m minisora memory --preset 256px|480p|720p10s|tiny [--key=value ...]   will it fit the GPU (or each of N)?
  python -m minisora download [DiT-XL-2-256x256 sd-vae-ft-ema ...] [--folder weights]   fetch released weights
  python -m minisora demo --checkpoint runs/sora/model.pt [--port 7860]   a web page to prompt it every way (Gradio)
  python -m minisora sample-imagenet --class 207 --class 360 [--dit weights/DiT-XL-2-256x256.pt]
        [--vae weights/sd-vae-ft-ema] [--steps 25] [--cfg 4] [--sampler dpmpp_2m] [--device auto] [--precision fp32]
        the DiT paper's released weights in minisora's DiT (the paper's own sampling: --sampler ddpm_learned_variance
        --steps 250 --guided-channels 3)
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .config import apply_overrides

VIDEO_PRESETS = ("tiny", "sora", "shapes64", "ball64")
# what bad input raises anywhere below a command (settings, files, folders, a run that diverges; run_or_exit adds
# unreadable videos): each reaches the user as one line, "error: ...", with exit status 2; anything else is a bug and
# keeps its traceback
BAD_INPUT = (ValueError, OSError, FloatingPointError, ImportError)
PRESETS = VIDEO_PRESETS + ("toy2d", "images", "vae")


def run_or_exit(parser: argparse.ArgumentParser, function, *arguments) -> int:
    """Run a command's work; bad input anywhere below it (BAD_INPUT, or an unreadable video: PyAV's decoding error is
    a RuntimeError) ends it with one line, "error: ...", and exit status 2. Returns 0 when it ran."""
    from .data.video_io import VideoReadError

    try:
        function(*arguments)
    except BAD_INPUT + (VideoReadError,) as error:
        parser.exit(2, f"error: {error}\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minisora", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model from a preset; override any field as --key=value")
    train.add_argument("--preset", default="tiny", choices=PRESETS, help="which configuration to start from")
    sample = commands.add_parser("sample", help="generate videos from a trained text-to-video model")
    sample.add_argument("--checkpoint", default="runs/tiny/model.pt", help="model.pt of a text-to-video run")
    sample.add_argument("--prompt", action="append", required=True, help="a caption (repeat for several)")
    sample.add_argument("--sampler", default="heun", help="any name in minisora.diffusion.SAMPLERS")
    sample.add_argument("--steps", type=int, default=30, help="sampler steps")
    sample.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (1 = none)")
    sample.add_argument("--cfg-min-sigma", type=float, default=None,
                        help="guide only above this noise level (default: the model's guidance_min_sigma)")
    sample.add_argument("--num", type=int, default=4, help="videos per prompt")
    sample.add_argument("--seed", type=int, default=0, help="the same seed gives the same videos")
    sample.add_argument("--out", default="samples", help="folder for the videos")
    sample.add_argument("--frames", type=int, help="frames per video (default: the model's; 1 writes PNG images; "
                                                   "longer than the model's are made chunk by chunk)")
    sample.add_argument("--size", help="HxW of the output, e.g. 32x48 (default: the model's)")
    sample.add_argument("--first-frame", metavar="IMAGE", help="start from this image (image-to-video)")
    sample.add_argument("--last-frame", metavar="IMAGE", help="end on this image (with --first-frame: connect two)")
    sample.add_argument("--extend", metavar="VIDEO", help="continue this clip: the output starts with its frames")
    sample.add_argument("--extend-backward", metavar="VIDEO", help="lead into this clip: the output ends with it")
    sample.add_argument("--loop", action="store_true", help="the last frame leads back into the first")
    sample.add_argument("--edit", metavar="VIDEO", help="redraw this clip under the prompt (SDEdit; with --strength)")
    sample.add_argument("--strength", type=float, help="how much --edit redraws, in (0, 1]: 0.3 keeps most of it")
    sample.add_argument("--overwrite", action="store_true", help="replace the samples of an earlier run in --out "
                                                                 "(otherwise an error)")
    sample.add_argument("--device", default="auto", help="cpu, cuda, mps (auto: a CUDA GPU, else Apple's MPS, else "
                                                         "the CPU); a seed gives the same videos on one device")
    imagenet = commands.add_parser("sample-imagenet", help="sample ImageNet classes with the DiT paper's released "
                                   "weights, decoded by Stable Diffusion's VAE, all in minisora's modules")
    imagenet.add_argument("--dit", default="weights/DiT-XL-2-256x256.pt",
                          help="a checkpoint of the paper's code (default: where `download` puts DiT-XL/2 at 256)")
    imagenet.add_argument("--vae", default="weights/sd-vae-ft-ema", help="Stable Diffusion's VAE: a diffusers folder "
                          "(default: where `download` puts sd-vae-ft-ema) or latent diffusion's .ckpt")
    imagenet.add_argument("--class", dest="classes", type=int, action="append", required=True,
                          help="an ImageNet class index, 0-999 (repeat for several: one image each)")
    imagenet.add_argument("--steps", type=int, default=25, help="sampler steps (DDPM's 1000 timesteps respaced)")
    imagenet.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (1 = none)")
    imagenet.add_argument("--sampler", default="dpmpp_2m", help="any name in minisora.diffusion.SAMPLERS, or the "
                          "paper's: ddpm_learned_variance (with --steps 250 --guided-channels 3)")
    imagenet.add_argument("--guided-channels", type=int, default=None,
                          help="guide only the first N latent channels (the paper's sampling code guides 3 of 4)")
    imagenet.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps (auto: a CUDA GPU, else Apple's "
                          "MPS, else the CPU)")
    imagenet.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                          help="the DiT's matrix products under autocast (bf16 on a GPU is faster)")
    imagenet.add_argument("--seed", type=int, default=0, help="the same seed gives the same images")
    imagenet.add_argument("--out", default="samples/imagenet.png", help="the PNG grid to write")
    imagenet.add_argument("--overwrite", action="store_true", help="replace --out if it exists (otherwise an error)")
    fetch = commands.add_parser("download", help="fetch released weights (the DiT paper's, Stable Diffusion's VAE) "
                                "into weights/; the only command that uses the network")
    fetch.add_argument("names", nargs="*", default=["DiT-XL-2-256x256", "sd-vae-ft-ema"],
                       help="DiT-XL-2-256x256, DiT-XL-2-512x512, sd-vae-ft-ema, sd-vae-ft-mse (default: the first "
                            "and the third)")
    fetch.add_argument("--folder", default="weights", help="where the files go")
    demo = commands.add_parser("demo", help="a local web page (Gradio) to prompt a trained model every way")
    demo.add_argument("--checkpoint", default="runs/sora/model.pt", help="model.pt of a text-to-video run, or a "
                                                                          "folder written by save_pretrained")
    demo.add_argument("--port", type=int, default=7860, help="the page is http://127.0.0.1:PORT")
    demo.add_argument("--device", default="auto", help="cpu, cuda, mps (auto: a CUDA GPU, else MPS, else the CPU)")
    demo.add_argument("--open", action="store_true", help="open the page in the browser")
    commands.add_parser("data", help="write a tiny video dataset (.mp4 files + captions.jsonl); override --key=value")
    memory = commands.add_parser("memory", help="plan a training step's GPU memory; override any field as --key=value")
    memory.add_argument("--preset", default="256px", choices=("256px", "480p", "720p10s", "tiny"),
                        help="configuration to plan")
    arguments, overrides = parser.parse_known_args(argv)
    if arguments.command == "sample":
        if overrides:
            parser.error(f"sample takes no {' '.join(overrides)}; see python -m minisora sample --help")
        from .diffusion.samplers import check_sampler
        try:
            check_sampler(arguments.sampler)  # what the trainers' models can use: no learned variance
        except ValueError as error:
            parser.error(str(error))
        from .generate import Prompting, run_sample
        prompting = Prompting(arguments.frames, arguments.size, arguments.first_frame, arguments.last_frame,
                              arguments.extend, arguments.extend_backward, arguments.loop, arguments.edit,
                              arguments.strength)
        return run_or_exit(parser, run_sample, arguments.checkpoint, arguments.prompt, arguments.sampler,
                           arguments.steps, arguments.cfg, arguments.num, arguments.seed, arguments.out,
                           arguments.cfg_min_sigma, prompting, arguments.overwrite, arguments.device)
    if arguments.command == "sample-imagenet":
        if overrides:
            parser.error(f"sample-imagenet takes no {' '.join(overrides)}; see its --help")
        from .diffusion import get_sampler
        try:
            get_sampler(arguments.sampler)  # any, the learned-variance one included: DiT has it
        except ValueError as error:
            parser.error(str(error))
        if arguments.steps < 1:
            parser.error(f"--steps must be at least 1, got {arguments.steps}")
        if arguments.guided_channels is not None and arguments.guided_channels < 1:
            parser.error(f"--guided-channels must be at least 1, got {arguments.guided_channels}")
        if Path(arguments.out).exists() and not arguments.overwrite:
            parser.error(f"{arguments.out} exists; pass --overwrite to replace it, or --out ANOTHER.png")
        from .config import check_device, resolve_device
        try:
            device = check_device(resolve_device(arguments.device))
        except ValueError as error:
            parser.error(str(error))
        print(f"sampling on {device}")
        from .pretrained import run_sample_imagenet
        return run_or_exit(parser, run_sample_imagenet, arguments.dit, arguments.vae, arguments.classes,
                           arguments.steps, arguments.cfg, arguments.sampler, arguments.seed, arguments.out,
                           arguments.guided_channels, device, arguments.precision)
    if arguments.command == "demo":
        if overrides:
            parser.error(f"demo takes no {' '.join(overrides)}; see its --help")
        from .demo import run_demo
        return run_or_exit(parser, run_demo, arguments.checkpoint, arguments.port, arguments.device, arguments.open)
    if arguments.command == "download":
        if overrides:
            parser.error(f"download takes no {' '.join(overrides)}; see its --help")
        from .download import download
        def fetch_all():
            for path in download(arguments.names, arguments.folder):
                print(f"ready: {path}")

        return run_or_exit(parser, fetch_all)
    if arguments.command == "data":
        from .data.tiny import TinyDataConfig as Config, write_tiny_dataset as run
    elif arguments.command == "memory":
        from .memory import MEMORY_PRESETS, run_memory as run

        def Config():
            return replace(MEMORY_PRESETS[arguments.preset])
    elif arguments.preset in VIDEO_PRESETS:
        from .train.video import run_video as run
        from .video_config import VIDEO_PRESETS as presets

        def Config():
            return replace(presets[arguments.preset])
    elif arguments.preset == "toy2d":
        from .train.toy2d import Toy2DConfig as Config, run_toy2d as run
    elif arguments.preset == "images":
        from .train.images import ImagesConfig as Config, run_images as run
    else:
        from .train.vae import VAEConfig as Config, run_vae as run
    try:
        config = apply_overrides(Config(), overrides)
    except ValueError as error:
        parser.error(str(error))
    from .parallel.data_parallel import world_size_from_environment
    processes = world_size_from_environment()
    if processes > 1 and arguments.command != "train":
        parser.error(f"{arguments.command} runs on one process; under torchrun (WORLD_SIZE={processes}) only train "
                     f"does: start it without torchrun")
    return run_or_exit(parser, run, config)  # bad settings or data: say so, no traceback


if __name__ == "__main__":
    sys.exit(main())
