"""Checkpoints: a resumed run continues exactly as an uninterrupted one, a crash while saving leaves the last
checkpoint whole, and a checkpoint from another configuration or a damaged file is a clear error."""
import pytest
import torch

from minisora import checkpoint as checkpoint_module
from minisora.checkpoint import load_checkpoint, save_checkpoint
from minisora.train.loop import Checkpointing, train_loop


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))


def loss_function(model):
    def loss_of_batch(generator):
        x = torch.randn(32, 3, generator=generator)
        return (model(x).squeeze(1) - x.sum(1).sin()).pow(2).mean()  # dropout draws from torch's global generator
    return loss_of_batch


def run(folder, steps):
    model = make_model()
    plan = Checkpointing(folder / "checkpoint.pt", {"lr": 0.01}, every=5)
    ema, losses = train_loop(model, loss_function(model), steps, 0.01, 0.9, seed=3, progress=False, checkpointing=plan)
    return model, ema, losses


class Interrupted(Exception):
    pass


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    straight_model, straight_ema, straight_losses = run(tmp_path / "straight", 20)
    # the same run, killed after step 12 (its last checkpoint is step 10), then resumed
    model = make_model()
    loss_of_batch = loss_function(model)
    calls = []

    def dying(generator):
        if len(calls) == 12:
            raise Interrupted
        calls.append(1)
        return loss_of_batch(generator)

    plan = Checkpointing(tmp_path / "resumed" / "checkpoint.pt", {"lr": 0.01}, every=5, resume=True)
    with pytest.raises(Interrupted):
        train_loop(model, dying, 20, 0.01, 0.9, seed=3, progress=False, checkpointing=plan)
    assert torch.load(plan.path, weights_only=True)["step"] == 10
    resumed_model = make_model()
    resumed_ema, resumed_losses = train_loop(resumed_model, loss_function(resumed_model), 20, 0.01, 0.9, seed=3,
                                             progress=False, checkpointing=plan)
    assert resumed_losses == straight_losses
    for ours, theirs in zip(resumed_model.state_dict().values(), straight_model.state_dict().values()):
        assert torch.equal(ours, theirs)
    for ours, theirs in zip(resumed_ema.state_dict().values(), straight_ema.state_dict().values()):
        assert torch.equal(ours, theirs)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"config": {"a": 1}, "step": 1, "weights": torch.ones(3)})

    def dies_halfway(state, file):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"config": {"a": 1}, "step": 2, "weights": torch.zeros(3)})
    monkeypatch.undo()
    state = load_checkpoint(path, {"a": 1})
    assert state["step"] == 1 and torch.equal(state["weights"], torch.ones(3))


def test_another_configuration_or_a_damaged_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"config": {"lr": 0.01, "width": 8}})
    with pytest.raises(ValueError, match="width: checkpoint 8, now 16"):
        load_checkpoint(path, {"lr": 0.01, "width": 16})
    assert load_checkpoint(path, {"lr": 0.01, "width": 16}, may_differ=("width",))["config"]["width"] == 8
    (tmp_path / "damaged.pt").write_bytes(path.read_bytes()[:40])
    with pytest.raises(RuntimeError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "damaged.pt", {})
    with pytest.raises(FileNotFoundError, match="without --resume"):
        load_checkpoint(tmp_path / "absent.pt", {})
