"""Data parallel training trains the model one process trains: the processes' share of each batch and their
losses (float64, against the whole batch's gradient), a few training steps under DDP and FSDP on 2 processes
(float64), and `torchrun --nproc_per_node=2 -m minisora train` on gloo against the same run on one process (the
weights in model.pt, the metrics process 0 alone writes, resuming across process counts, sequence parallelism)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minisora.diffusion.edm import edm_loss
from minisora.diffusion.flow import Path as FlowPath, flow_matching_loss
from minisora.parallel.batch import BatchShard
from minisora.parallel.checks import data_parallel_difference
from minisora.parallel.launch import run_on_processes
from minisora.train.video import run_video
from minisora.video_config import VideoConfig

ROOT = Path(__file__).resolve().parents[1]
# a run too small to learn anything, with given frames, buckets and accumulation: the plumbing of every path
TOY = dict(num_frames=8, hidden=32, depth=1, heads=2, text_hidden=16, text_depth=1, num_clips=32, held_out=4,
           batch_size=4, sampling_steps=2, steps=4, expert_steps=2, checkpoint_every=2, accumulation=2,
           task_mix="text:1,first:1,head:1", buckets="8x32x32:4:2,1x32x32:8:1")


class TinyNetwork(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(12, 12)

    def forward(self, x, t, caption=None):
        scale = 1 + t.view(-1, 1, 1) + (0 if caption is None else caption.view(-1, 1, 1))
        return self.layer(x.flatten(1)).view_as(x) * scale


@pytest.mark.parametrize("objective", ["flow", "edm"])
def test_the_processes_shares_average_to_the_whole_batchs_gradient(objective):
    torch.manual_seed(0)
    network = TinyNetwork().double()
    x0, caption = torch.randn(8, 3, 4, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    mask = torch.rand(8, 1, 4) > 0.4  # given frames left out, unevenly between the shares

    def gradients(shard):
        network.zero_grad()
        generator = torch.Generator().manual_seed(3)
        if objective == "flow":
            loss = flow_matching_loss(network, x0, FlowPath("linear"), "velocity", "logit_normal", 2.0, generator,
                                      loss_mask=mask, shard=shard, caption=caption)
        else:
            loss = edm_loss(lambda x, sigma, caption: network(x, sigma, caption), x0, generator=generator,
                            loss_mask=mask, shard=shard, caption=caption)
        loss.backward()
        return [parameter.grad.clone() for parameter in network.parameters()], loss.detach()

    whole, whole_loss = gradients(None)
    shares = [gradients(BatchShard(rank, 4)) for rank in range(4)]
    for index, gradient in enumerate(whole):
        torch.testing.assert_close(sum(share[0][index] for share in shares) / 4, gradient, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sum(share[1] for share in shares) / 4, whole_loss, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(shares[0][1], shares[1][1])  # the shares did see different rows


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_train_the_weights_one_process_trains_in_float64(mode):
    # Muon, clipping, given frames and accumulation: the same weights to float64 rounding (not float32's)
    for difference in run_on_processes(data_parallel_difference, 2, mode):
        assert difference < 1e-12, difference


def test_a_batch_the_processes_cannot_share_evenly_is_a_clear_error():
    with pytest.raises(ValueError, match="batch of 6 cannot be shared evenly by 4 processes"):
        BatchShard(1, 4).rows(6)


def torchrun(*arguments, processes: int = 2, timeout: float = 180) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=processes ARGUMENTS` on gloo, a thread a process, bounded in time:
    past `timeout` torchrun and every process it started are killed (they share a session) and the test fails."""
    environment = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *map(str, arguments)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=environment, start_new_session=True) as launched:
        try:
            stdout, stderr = launched.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(launched.pid, signal.SIGKILL)
            launched.communicate()
            pytest.fail(f"torchrun {' '.join(map(str, arguments))} ran past {timeout} s; its processes were killed")
    return subprocess.CompletedProcess(command, launched.returncode, stdout, stderr)


def overrides(config: dict) -> list:
    return [f"--{key}={value}" for key, value in config.items()]


def assert_same_weights(first: Path, second: Path) -> None:
    one, two = (torch.load(path, weights_only=True) for path in (first, second))
    for part in ("model", "expert"):
        assert one[part].keys() == two[part].keys()
        for name, weight in one[part].items():
            torch.testing.assert_close(two[part][name], weight, rtol=1e-4, atol=1e-5, msg=f"{part} {name}")


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_torchrun_with_two_processes_trains_the_model_one_process_trains(tmp_path, parallel):
    single = run_video(VideoConfig(out_dir=str(tmp_path / "single"), **TOY), progress=False)
    result = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'two'}",
                      f"--parallel={parallel}", *overrides(TOY))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(tmp_path / "single" / "model.pt", tmp_path / "two" / "model.pt")
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 0 and single["config"]["steps"] == 4  # 4 steps: no line of 10 yet, and not one per process
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["config"]["accumulation"] == 2
    assert result.stdout.count("trained 4 steps") == 1  # process 0 alone reports


def test_a_latent_run_on_two_processes_trains_its_vae_and_dit_as_one_process(tmp_path):
    """In latent space the processes first train the VAE together (process 0 writes vae.pt, all read it), then
    the DiT on its latents."""
    config = {**{key: value for key, value in TOY.items() if key != "buckets"}, "space": "latent", "num_frames": 9,
              "patch_size": 2, "temporal_patch": 1, "vae_steps": 2}
    run_video(VideoConfig(out_dir=str(tmp_path / "single"), **config), progress=False)
    result = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'two'}",
                      *overrides(config))
    assert result.returncode == 0, result.stderr[-3000:]
    vaes = [torch.load(tmp_path / name / "vae" / "vae.pt", weights_only=True)["model"] for name in ("single", "two")]
    for name, weight in vaes[0].items():  # biases before a group norm: see OTHER_PRESETS
        torch.testing.assert_close(vaes[1][name], weight, rtol=1e-4, atol=1e-4, msg=name)
    assert_same_weights(tmp_path / "single" / "model.pt", tmp_path / "two" / "model.pt")


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_a_two_process_run_whose_process_dies_resumes_on_one_and_the_reverse(tmp_path, parallel):
    config = VideoConfig(out_dir=str(tmp_path / "straight"), **TOY)
    run_video(config, progress=False)
    toy = {**TOY, "parallel": parallel}
    # two processes; process 1 dies at step 3: the run stops, saying which process failed, its checkpoint of step 2
    # intact; one process resumes it
    died = torchrun("tests/distributed_worker.py", 1, 2, f"--out_dir={tmp_path / 'two_then_one'}", *overrides(toy))
    assert died.returncode != 0 and "process 1 died at step 3" in died.stderr
    checkpoint = tmp_path / "two_then_one" / "checkpoint.pt"
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    run_video(VideoConfig(out_dir=str(tmp_path / "two_then_one"), resume=True, **toy), progress=False)
    assert_same_weights(tmp_path / "straight" / "model.pt", tmp_path / "two_then_one" / "model.pt")
    # one process (a torchrun of one) dies at step 3; two processes resume it
    died = torchrun("tests/distributed_worker.py", 0, 2, f"--out_dir={tmp_path / 'one_then_two'}", *overrides(toy),
                    processes=1)
    assert died.returncode != 0 and "process 0 died at step 3" in died.stderr
    resumed = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'one_then_two'}",
                       "--resume", *overrides(toy))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(tmp_path / "straight" / "model.pt", tmp_path / "one_then_two" / "model.pt")


# the other presets, each a run too small to learn anything; the file that holds its trained weights; how close
OTHER_PRESETS = {
    "toy2d": (dict(steps=30, batch_size=64, num_samples=200, sampling_steps=4), "model.pt", 1e-5),
    "images": (dict(num_images=600, hidden=32, depth=2, heads=2, steps=4, batch_size=8, samples_per_class=1,
                    sampling_steps=2), "model.pt", 1e-5),
    # the VAE's biases just before a group norm have no gradient in exact arithmetic (about 1e-9 in float32), and
    # AdamW turns that rounding noise into steps: those agree to 1e-4 (the others to float32 rounding)
    "vae": (dict(image_size=16, num_frames=5, channels=8, latent_channels=4, steps=4, batch_size=4, held_out=4,
                 checkpoint_every=2), "vae.pt", 1e-4),
}


@pytest.mark.parametrize("preset, changes, parallel", [
    ("toy2d", {}, "ddp"), ("toy2d", {"objective": "ddpm"}, "fsdp"), ("images", {}, "fsdp"), ("vae", {}, "ddp"),
    ("vae", {}, "fsdp")])
def test_every_other_preset_trains_on_two_processes_what_one_process_trains(tmp_path, preset, changes, parallel):
    """The 2D toy (EDM, and DDPM's loss), the class-conditional DiT and the video VAE: 2 processes (each the whole
    batch's random numbers, its own rows) write the weights one process writes, to float32 rounding."""
    config, weights, tolerance = OTHER_PRESETS[preset]
    arguments = ["train", "--preset", preset, *overrides({**config, **changes, "parallel": parallel})]
    single = subprocess.run([sys.executable, "-m", "minisora", *arguments, f"--out_dir={tmp_path / 'one'}"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=180)
    assert single.returncode == 0, single.stderr[-3000:]
    result = torchrun("-m", "minisora", *arguments, f"--out_dir={tmp_path / 'two'}")
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = (torch.load(tmp_path / name / weights, weights_only=True)["model"] for name in ("one", "two"))
    assert one.keys() == two.keys()
    for name, weight in one.items():
        torch.testing.assert_close(two[name], weight, rtol=1e-4, atol=tolerance, msg=name)
    assert result.stdout.count("wrote") == 1  # process 0 alone reports


# sequence parallelism: 8 frames in 4 token frames of 16 positions, so 2 processes can share a clip's tokens
SEQUENCE_TOY = {**{key: value for key, value in TOY.items() if key != "buckets"}, "depth": 2,
                "frame_marking": "mask_channel"}


@pytest.mark.parametrize("layout, method", [("spacetime", "ulysses"), ("spacetime", "ring"),
                                            ("latte_interleaved", "ulysses")])
def test_two_processes_sharing_each_clips_tokens_train_the_model_one_process_trains(tmp_path, layout, method):
    config = {**SEQUENCE_TOY, "layout": layout}
    run_video(VideoConfig(out_dir=str(tmp_path / "single"), **config), progress=False)
    result = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'two'}",
                      "--sequence_parallel=2", f"--sequence_method={method}", *overrides(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(tmp_path / "single" / "model.pt", tmp_path / "two" / "model.pt")


@pytest.mark.parametrize("processes, parallel", [(4, "ddp"), (2, "fsdp")])
def test_sequence_parallelism_with_data_parallelism_trains_the_model_one_process_trains(tmp_path, processes,
                                                                                        parallel):
    """A 2D mesh: 4 processes in 2 groups of 2 that share each clip's tokens, the groups sharing the batch (DDP
    over all 4); and sequence parallelism under FSDP (weights sharded across the 2 processes that share tokens)."""
    run_video(VideoConfig(out_dir=str(tmp_path / "single"), **SEQUENCE_TOY), progress=False)
    result = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'shared'}",
                      "--sequence_parallel=2", f"--parallel={parallel}", *overrides(SEQUENCE_TOY),
                      processes=processes)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(tmp_path / "single" / "model.pt", tmp_path / "shared" / "model.pt")


def test_sequence_parallelism_that_cannot_share_the_tokens_is_a_clear_error(tmp_path):
    # the image bucket has one token frame: two processes cannot share it
    result = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'two'}",
                      "--sequence_parallel=2", *overrides(TOY))
    assert result.returncode != 0 and "1 token frames cannot be shared by 2 processes" in result.stderr
    result = torchrun("-m", "minisora", "train", "--preset", "tiny", f"--out_dir={tmp_path / 'three'}",
                      "--sequence_parallel=3", *overrides(SEQUENCE_TOY))
    assert result.returncode != 0 and "start a multiple of it (torchrun --nproc_per_node=3 or 6, ...; now 2)" in \
        result.stderr
