"""`python -m minisora download` without the network: releases served from file:// URLs arrive whole in the folder,
files already there are kept, and a failed or short transfer leaves nothing that looks like a file."""
import io

import pytest

from minisora.download import download, fetch, published


@pytest.fixture
def releases(tmp_path):
    """Two releases of the two shapes `download` knows (one file; a folder of two), served from file:// URLs."""
    served = tmp_path / "served"
    served.mkdir()
    for name, content in (("tiny.pt", b"weights" * 1000), ("config.json", b"{}"), ("model.bin", b"\x00\x01" * 50)):
        (served / name).write_bytes(content)
    return {"tiny-dit": (("tiny.pt", (served / "tiny.pt").as_uri()),),
            "tiny-vae": (("tiny-vae/config.json", (served / "config.json").as_uri()),
                         ("tiny-vae/diffusion_pytorch_model.bin", (served / "model.bin").as_uri()))}


def test_releases_arrive_whole_and_what_is_there_is_kept(tmp_path, releases):
    folder = tmp_path / "weights"
    paths = download(["tiny-dit", "tiny-vae"], str(folder), releases)
    assert paths == [folder / "tiny.pt", folder / "tiny-vae"]
    assert (folder / "tiny.pt").read_bytes() == b"weights" * 1000
    assert (folder / "tiny-vae" / "diffusion_pytorch_model.bin").read_bytes() == b"\x00\x01" * 50
    assert not list(folder.rglob("*.part"))
    (folder / "tiny.pt").write_bytes(b"the user's own")  # a file already there is never replaced
    download(["tiny-dit"], str(folder), releases)
    assert (folder / "tiny.pt").read_bytes() == b"the user's own"


def test_a_failed_or_short_download_leaves_nothing(tmp_path, releases, monkeypatch):
    destination = tmp_path / "weights" / "gone.pt"
    with pytest.raises(OSError, match="could not download .*nothing was written"):
        fetch((tmp_path / "not-served.pt").as_uri(), destination)

    class Short(io.BytesIO):  # a server that announces 100 bytes and sends 10
        headers = {"Content-Length": "100"}

        def __enter__(self):
            return self

    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: Short(b"0123456789"))
    with pytest.raises(OSError, match="announced 100 bytes and sent 10"):
        fetch("https://example.invalid/short.pt", destination)
    assert not destination.exists() and not list(destination.parent.iterdir())
    with pytest.raises(ValueError, match="unknown release \\['DiT-XL-9'\\]; choose among"):
        download(["DiT-XL-9"], str(tmp_path), releases)


def test_the_published_releases_are_what_sample_imagenet_looks_for(monkeypatch, capsys):
    """The default download puts the files where `sample-imagenet` looks by default; without the safetensors
    package the VAE's torch file is fetched instead."""
    from minisora.__main__ import main

    releases = published()
    assert releases["DiT-XL-2-256x256"] == (("DiT-XL-2-256x256.pt",
                                              "https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt"),)
    assert [path for path, _ in releases["sd-vae-ft-ema"]][0] == "sd-vae-ft-ema/config.json"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert published()["sd-vae-ft-mse"][1][0] == "sd-vae-ft-mse/diffusion_pytorch_model.bin"
    with pytest.raises(SystemExit) as exit_code:
        main(["sample-imagenet", "--class", "207", "--dit", "nowhere/DiT-XL-2-256x256.pt", "--out", "nowhere/x.png"])
    assert exit_code.value.code == 2 and "`python -m minisora download` fetches" in capsys.readouterr().err
