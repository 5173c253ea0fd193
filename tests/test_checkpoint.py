import pickle
from pathlib import Path

import pytest
import torch

import geounet
from geounet.model.checkpoint import checkpoint_dict, load_model, read_checkpoint, save_checkpoint
from geounet.config import ModelConfig, Preprocessing
from geounet.errors import CheckpointError
from geounet.model import build_model


def _ckpt(tmp_path, **kw):
    cfg = ModelConfig(in_channels=4, width=4, depth=2)
    prep = Preprocessing(bands=(3, 2, 1, 4), scale=4095.0, mean=(0.1, 0.2, 0.3, 0.4), std=(0.5, 0.5, 0.5, 0.6),
                         pixel_size_m=0.3, tile_size=64, dtype="uint16")
    torch.manual_seed(0)
    model = build_model(cfg)
    # Non-trivial BatchNorm statistics, so the round trip checks buffers too.
    with torch.no_grad():
        model.train()(torch.randn(2, 4, 32, 32) * 3 + 1)
    path = tmp_path / "m.pt"
    save_checkpoint(path, checkpoint_dict(model, cfg, prep, metrics={"val_iou": 0.5}, epoch=3, **kw))
    return path, model.eval(), cfg, prep


def test_round_trip_gives_identical_outputs(tmp_path):
    path, model, cfg, prep = _ckpt(tmp_path)
    loaded, info = geounet.load_model(path)
    assert not loaded.training
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert info.model == cfg
    assert info.preprocessing == prep
    assert info.metrics["val_iou"] == 0.5
    assert info.epoch == 3
    assert info.geounet_version == geounet.__version__


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch EVIL_RAN",))


def test_loading_never_executes_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    torch.save({"format": "geounet-checkpoint", "x": _Evil()}, bad)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_model(bad)
    assert not (tmp_path / "EVIL_RAN").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", pickle.dumps({"a": 1})])
def test_corrupt_files_raise_checkpoint_error(tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt"):
        read_checkpoint(bad)


def test_foreign_torch_file_is_refused(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="not a geounet checkpoint"):
        load_model(other)


def test_weights_that_do_not_fit_the_config(tmp_path):
    path, *_ = _ckpt(tmp_path)
    ckpt = read_checkpoint(path)
    ckpt["model"]["width"] = 8
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_bundled_models_by_name(tmp_path, monkeypatch):
    from geounet.model.checkpoint import bundled_models, load_model, model_path

    assert {"default", "fine-0.14m", "multiscale"} <= set(bundled_models())
    _, info = load_model(None)
    assert info.preprocessing.pixel_size_range_m == (0.2, 0.5)  # trained across drone to satellite pixels
    _, info = load_model("fine-0.14m")
    assert info.preprocessing.pixel_size_range_m is None and info.preprocessing.pixel_size_m < 0.15
    assert model_path("fine-0.14m").name == "fine-0.14m.pt"
    assert model_path("multiscale") == model_path(None)  # the old name of the default's recipe
    monkeypatch.chdir(tmp_path)
    (tmp_path / "multiscale").write_bytes(b"not a model")  # a file of that name here wins
    assert model_path("multiscale") == Path("multiscale")
    assert model_path("nonexistent-name") == Path("nonexistent-name")
