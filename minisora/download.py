"""Fetch the released weights that `sample-imagenet` and lesson 08 load, once, into weights/ (or a folder named).

    python -m minisora download                      DiT-XL-2-256x256 and sd-vae-ft-ema into weights/
    python -m minisora download sd-vae-ft-mse DiT-XL-2-512x512 --folder /data/weights

Only this command reaches the network; nothing else in minisora, its lessons or its tests downloads anything. A file
already in the folder is kept as it is; each file arrives as NAME.part and takes its name only once complete (its
length checked against the server's), so an interrupted download never leaves a file that looks whole.
"""
import importlib.util
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

DIT_MODELS = "https://dl.fbaipublicfiles.com/DiT/models/"  # the DiT repository's download.py fetches from here
HUB = "https://huggingface.co/stabilityai/{name}/resolve/main/"


def _vae_files(name: str) -> Tuple[Tuple[str, str], ...]:
    """A diffusers folder: its config.json and its weights (safetensors when that package is installed, the torch
    file otherwise; both are read without running code)."""
    weights = ("diffusion_pytorch_model.safetensors" if importlib.util.find_spec("safetensors")
               else "diffusion_pytorch_model.bin")
    return tuple((f"{name}/{file}", HUB.format(name=name) + file) for file in ("config.json", weights))


def published() -> Dict[str, Tuple[Tuple[str, str], ...]]:
    """Every name `download` knows -> its files, as (path in the folder, URL)."""
    return {
        "DiT-XL-2-256x256": (("DiT-XL-2-256x256.pt", DIT_MODELS + "DiT-XL-2-256x256.pt"),),
        "DiT-XL-2-512x512": (("DiT-XL-2-512x512.pt", DIT_MODELS + "DiT-XL-2-512x512.pt"),),
        "sd-vae-ft-ema": _vae_files("sd-vae-ft-ema"),
        "sd-vae-ft-mse": _vae_files("sd-vae-ft-mse"),
    }


def fetch(url: str, destination: Path, chunk_bytes: int = 1 << 20) -> None:
    """Copy `url` to `destination` through destination.part, renamed only when every byte the server announced
    has arrived."""
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            announced = int(response.headers.get("Content-Length") or 0)
            received = 0
            with tqdm(total=announced or None, unit="B", unit_scale=True, desc=destination.name) as progress:
                while chunk := response.read(chunk_bytes):
                    out.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        if announced and received != announced:
            raise OSError(f"the server announced {announced} bytes and sent {received}")
    except (OSError, urllib.error.URLError) as failure:
        partial.unlink(missing_ok=True)
        raise OSError(f"could not download {url} ({failure}); nothing was written to {destination}. Check the "
                      f"connection and run the command again, or fetch the file by hand into {destination}") from None
    os.replace(partial, destination)


def download(names: Sequence[str], folder: str = "weights",
             files: Optional[Dict[str, Tuple[Tuple[str, str], ...]]] = None) -> List[Path]:
    """Each named release's files in `folder` (fetched where missing); returns what `sample-imagenet` takes for each:
    the DiT's file, the autoencoder's folder. `files` maps names to (path, URL) pairs (default: `published()`)."""
    files = published() if files is None else files
    unknown = [name for name in names if name not in files]
    if unknown:
        raise ValueError(f"unknown release {unknown}; choose among {sorted(files)}")
    paths = []
    for name in names:
        for relative, url in files[name]:
            destination = Path(folder) / relative
            if destination.is_file():
                print(f"{destination} is already there: kept")
            else:
                fetch(url, destination)
        paths.append(Path(folder) / Path(files[name][0][0]).parts[0])
    return paths
