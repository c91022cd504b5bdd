"""Shared fixtures, and the --impl switch that points the exercise checks at the learner's stubs."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton compiles for GPUs only; without one its interpreter runs the kernels on CPU tensors. It reads this when
    # a kernel is defined, so it is set here, before any test module imports minisora.kernels.triton_attention.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tiny_datasets.toy2d import skewed_mixture


def pytest_configure(config):
    """Under pytest-xdist each worker gets one thread: two workers with two threads each on two cores oversubscribe
    them, and torch's spinning threads then run many times slower."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the notebook kernels this worker starts


def pytest_addoption(parser):
    parser.addoption("--impl", choices=("reference", "exercises", "solutions"), default="reference",
                     help="run the lesson exercise checks against minisora (reference), lessons/exercises (yours) or "
                          "lessons/solutions (the worked solutions)")


@pytest.fixture
def impl_name(request):
    return request.config.getoption("--impl")


@pytest.fixture(scope="session")
def mixture():
    """Three unequal, correlated Gaussians: the data distribution with an exact denoiser."""
    return skewed_mixture()


def distribution_errors(samples: torch.Tensor, mixture, seed: int = 0) -> dict:
    """How far samples are from the mixture: error of the mean, of the covariance, and the sliced Wasserstein
    distance to a fresh draw of the same size (whose own floor, data against data, is about 0.02 at n = 10000)."""
    from minisora.metrics import sliced_wasserstein

    samples = samples.to(torch.float64)
    reference = mixture.sample(len(samples), torch.Generator().manual_seed(10_000 + seed)).double()
    return {
        "mean": float((samples.mean(0) - mixture.mean()).norm()),
        "covariance": float((samples.T.cov() - mixture.covariance()).norm()),
        "sliced_wasserstein": float(sliced_wasserstein(samples, reference, generator=torch.Generator().manual_seed(seed))),
    }


def _exercise_module(lesson: str, folder_name: str = "exercises"):
    """A lesson's exercise module: the learner's stubs, e.g. lessons/exercises/lesson01_ddpm.py for "lesson01", or
    with folder_name="solutions" the worked solutions in lessons/solutions/ (the same file name)."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "lessons" / folder_name
    matches = sorted(folder.glob(f"{lesson}_*.py"))
    if len(matches) != 1:
        raise FileNotFoundError(f"expected one file {folder}/{lesson}_*.py, found {[m.name for m in matches]}")
    spec = importlib.util.spec_from_file_location(f"{folder_name}_{lesson}", matches[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercise_functions(module) -> dict:
    """The exercise functions of a stub module: its public functions defined in the module itself."""
    import inspect

    return {name: value for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")}


def reference_namespace(module):
    """The minisora functions with the same names as a stub module's exercises (looked up in REFERENCE_MODULES)."""
    import importlib
    from types import SimpleNamespace

    references = [importlib.import_module(name) for name in module.REFERENCE_MODULES]
    found = {}
    for name in exercise_functions(module):
        owners = [reference for reference in references if hasattr(reference, name)]
        if not owners:
            raise AttributeError(f"exercise {name} of {module.__file__} has no reference in {module.REFERENCE_MODULES}")
        found[name] = getattr(owners[0], name)
    return SimpleNamespace(**found)


@pytest.fixture
def impl(request):
    """The implementation under test for an exercise check: minisora's, or with --impl=exercises the learner's."""
    lessons = [marker.name for marker in request.node.iter_markers() if marker.name.startswith("lesson")]
    if len(lessons) != 1:
        raise RuntimeError(f"an exercise test needs exactly one lessonNN marker, {request.node.name} has {lessons}")
    module = _exercise_module(lessons[0])
    choice = request.config.getoption("--impl")
    if choice == "exercises":
        return module
    if choice == "solutions":
        return _exercise_module(lessons[0], "solutions")
    return reference_namespace(module)


UNTRAINED_TOY = dict(num_frames=8, hidden=32, depth=1, heads=2, text_hidden=16, text_depth=1,
                     frame_marking="mask_channel", task_mix="text:1,first:1,head:1,tail:1,first_last:1", expert_steps=0)


@pytest.fixture(scope="session")
def untrained_toy(tmp_path_factory):
    """A folder with model.pt of an untrained text-to-video toy (random weights, the tiny world's words: built, not
    trained, for the plumbing of sampling, the pipeline and the demo), a clip of the world (clip.mp4) and its first
    frame (first.png)."""
    from minisora.data.video_io import write_image, write_video
    from minisora.models.text import CaptionTokenizer
    from minisora.trained_model import build_denoiser, save_model
    from minisora.video_config import VideoConfig
    from tiny_datasets.videos import video_dataset

    out = tmp_path_factory.mktemp("untrained_toy")
    config = VideoConfig(out_dir=str(out), **UNTRAINED_TOY)
    items = video_dataset("shapes", num_items=32, image_size=32, num_frames=8, seed=3)
    tokenizer = CaptionTokenizer.from_captions([item["caption"] for item in items])
    torch.manual_seed(0)
    save_model(out / "model.pt", config, tokenizer, (3, 8, 32, 32), build_denoiser(config, (3, 8, 32, 32),
                                                                                     len(tokenizer)), None)
    write_video(out / "clip.mp4", items[0]["video"])
    write_image(out / "first.png", items[0]["video"][:, :1])
    return out
