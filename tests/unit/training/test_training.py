"""Training: every variant runs, learns, and a resumed run ends with the uninterrupted run's weights."""

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spockmip.axes import to_network
from spockmip.data.sampling import epoch_plan
from spockmip.data.subjects import extract, load_subject
from spockmip.networks.unet import build_model
from spockmip.networks.weights import load_weights
from spockmip.objective.batch import validation_losses
from spockmip.objective.deformation import DeformationConfig
from spockmip.objective.losses import LossConfig, LossTerms, focal_tversky, segmentation_loss
from spockmip.objective.mip import crop_mip, pad_centred
from spockmip.runtime.devices import GPU_LOADER_WORKERS, loader_workers, resolve_threads
from spockmip.settings.rules import describe_computation
from spockmip.training.checkpoints import HISTORY_FIELDS, with_fused, write_history
from spockmip.training.trainer import TrainingConfig, TrainingPaths, train, validation_plan

SMALL = TrainingConfig(
    model="unetmss",
    init_features=2,
    patch_size=(32, 32, 32),
    strides=(16, 16, 16),
    batch_size=4,
    epochs=2,
    patches_per_epoch=8,
    seed=11,
)


def _subjects(phantom_dir: Path, names: list[str], axes=("x", "y", "z")):
    return [
        load_subject(
            phantom_dir / "images" / f"{n}.nii.gz", phantom_dir / "labels" / f"{n}.nii.gz", mip_axes=axes
        )
        for n in names
    ]


def _paths(folder: Path) -> TrainingPaths:
    return TrainingPaths(best=folder / "best.pt", history=folder / "history.csv", state_dir=folder / "state")


def _stopped_after_one_epoch(
    subjects: list, validation: list, config: TrainingConfig, resumed_as: TrainingConfig, folder: Path
) -> Path:
    """Train one epoch of ``config`` into ``folder`` and leave its state as a run of ``resumed_as`` killed
    then would have: a different epoch count changes the fingerprint, so the original one is written back.
    Returns the state file."""
    train(subjects, validation, replace(config, epochs=1), _paths(folder), threads=1, progress=False)
    state_path = folder / "state" / "checkpoint.pt"
    state = torch.load(state_path, weights_only=True)
    state["fingerprint"] = resumed_as.fingerprint()
    torch.save(state, state_path)
    return state_path


@pytest.mark.parametrize(
    ("model", "mip_axis", "mip_target", "deform"),
    [("unet", "none", "volume", False), ("unetmss", "multi", "volume", True), ("unet", "z", "patch", False)],
)
def test_variants_train_and_write_loadable_best_weights(
    phantom_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    model: str,
    mip_axis: str,
    mip_target: str,
    deform: bool,
) -> None:
    config = replace(
        SMALL, model=model, deform=deform, loss=LossConfig(mip_axis=mip_axis, mip_target=mip_target)
    )
    with caplog.at_level(logging.INFO, logger="spockmip.training.trainer"):
        history = train(
            _subjects(phantom_dir, ["phantom000", "phantom001"]),
            _subjects(phantom_dir, ["phantom002"]),
            config,
            _paths(tmp_path),
            threads=1,
            progress=False,
        )
    # The start of training says what the run computes as the workflow's report does, then how it loads.
    assert f"computation: {describe_computation(config.settings())}; 0 loader worker(s)" in caplog.text
    assert ("deformation released" in caplog.text) == deform
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in history)
    assert (history[0]["train_mip"] > 0) == (mip_axis != "none")
    assert history[0]["train_continuity"] == 0.0  # no continuity term selected
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[0]["validation_ftl"]) > 0
    best = load_weights(tmp_path / "best.pt")
    assert type(best).__name__ == ("UNetMSS3D" if model == "unetmss" else "UNet3D")
    checkpoint = torch.load(tmp_path / "state" / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "scaler", "history", "best", "torch_rng", "fingerprint"} <= set(checkpoint)


def test_the_history_has_a_column_per_loss_term_and_leaves_unmeasured_values_empty(tmp_path: Path) -> None:
    """The epoch means of LossTerms fill the training columns in order; a row without a column's value
    (as recorded before that column existed) gets an empty cell there, not a 0 it never measured."""
    training = tuple("train_" + ("loss" if name == "total" else name) for name in LossTerms._fields)
    assert HISTORY_FIELDS[1 : 1 + len(training)] == training
    old = {"epoch": 1, "train_loss": 0.5, "train_segmentation": 0.5, "train_mip": 0.0,
           "validation_ftl": 0.9, "validation_ds_ftl": 1.2, "best": True}  # fmt: skip
    new = {**old, "epoch": 2, "train_continuity": 0.25, "best": False}
    write_history(tmp_path / "history.csv", [old, new])
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [row["train_continuity"] for row in rows] == ["", "0.25"]
    assert list(rows[0]) == list(HISTORY_FIELDS)


@pytest.mark.parametrize(
    ("deform", "mip_axis", "deformation", "resumed_workers"),
    [
        # released grid sampler, released DS6 field; resumed with loader workers the first epoch lacked
        (True, "multi", DeformationConfig(), 2),
        (True, "none", DeformationConfig(field="smooth", label_mode="nearest"), 0),  # torchio queue sampler
    ],
)
def test_resuming_after_an_epoch_matches_an_uninterrupted_run(
    phantom_dir: Path,
    tmp_path: Path,
    deform: bool,
    mip_axis: str,
    deformation: DeformationConfig,
    resumed_workers: int,
) -> None:
    config = replace(
        SMALL, epochs=3, deform=deform, deformation=deformation, loss=LossConfig(mip_axis=mip_axis)
    )
    resumed = replace(config, num_workers=resumed_workers)
    train_subjects = _subjects(phantom_dir, ["phantom000", "phantom001"])
    validation = _subjects(phantom_dir, ["phantom002"])
    train(train_subjects, validation, config, _paths(tmp_path / "straight"), threads=1, progress=False)
    state_path = _stopped_after_one_epoch(train_subjects, validation, config, config, tmp_path / "split")
    history = train(
        train_subjects, validation, resumed, _paths(tmp_path / "split"), threads=1, progress=False
    )
    assert [row["epoch"] for row in history] == [1, 2, 3]
    straight = torch.load(tmp_path / "straight" / "state" / "checkpoint.pt", weights_only=True)["model"]
    resumed = torch.load(state_path, weights_only=True)["model"]
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name
    assert (tmp_path / "split" / "final.pt").read_bytes() == (tmp_path / "straight" / "final.pt").read_bytes()
    # The records say how each run got there: the resumed job trained two epochs after one it resumed.
    records = {
        name: json.loads((tmp_path / name / "provenance.json").read_text()) for name in ("split", "straight")
    }
    assert [records["split"]["run"][f"epochs_{k}"] for k in ("trained", "resumed")] == [2, 1]
    assert [records["straight"]["run"][f"epochs_{k}"] for k in ("trained", "resumed")] == [3, 0]
    assert records["split"]["execution"]["num_workers"] == resumed_workers
    assert records["split"]["identity"] == records["straight"]["identity"]


def test_final_weights_are_the_last_epochs_and_differ_from_the_best_when_it_came_earlier(
    phantom_dir: Path, tmp_path: Path
) -> None:
    """A learning rate this high makes the validation loss rise after the first epoch: best.pt keeps epoch
    1, final.pt holds the third epoch's weights (those the resume state ends with), in the same format. A
    finished run started again publishes the same final.pt from its state, training no epoch."""
    config = replace(SMALL, epochs=3, learning_rate=0.1)
    subjects = _subjects(phantom_dir, ["phantom000", "phantom001"]), _subjects(phantom_dir, ["phantom002"])
    history = train(*subjects, config, _paths(tmp_path), threads=1, progress=False)
    assert [row["best"] for row in history] == [True, False, False], "the best epoch must come first here"
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    final = torch.load(tmp_path / "final.pt", weights_only=True)
    assert (best["epoch"], best["selection"], final["epoch"], final["selection"]) == (1, "best", 3, "final")
    assert final.keys() == best.keys() and final["model_spec"] == best["model_spec"]
    assert (final["validation_ftl"], final["validation_ds_ftl"]) == (
        history[-1]["validation_ftl"],
        history[-1]["validation_ds_ftl"],
    )
    last = torch.load(tmp_path / "state" / "checkpoint.pt", weights_only=True)["model"]
    assert final["state_dict"].keys() == last.keys()
    assert all(torch.equal(value, last[name]) for name, value in final["state_dict"].items())
    assert not all(torch.equal(value, best["state_dict"][name]) for name, value in last.items())
    assert type(load_weights(tmp_path / "final.pt")) is type(load_weights(tmp_path / "best.pt"))

    published = (tmp_path / "final.pt").read_bytes()
    (tmp_path / "final.pt").unlink()
    again = train(*subjects, config, _paths(tmp_path), threads=1, progress=False)
    assert again == history
    assert (tmp_path / "final.pt").read_bytes() == published


def test_thread_count_comes_from_the_request_or_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads(None) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert resolve_threads(None) == 5


def test_loader_workers_default_to_none_on_a_cpu_and_to_spare_cores_on_a_gpu() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert loader_workers(None, cpu, 16) == 0 and loader_workers(3, cpu, 16) == 3
    assert [loader_workers(None, gpu, threads) for threads in (1, 2, 4, 16)] == [0, 1, 3, GPU_LOADER_WORKERS]
    assert loader_workers(0, gpu, 16) == 0


def test_an_optimizer_state_steps_with_the_kernels_of_the_device_that_resumes_it() -> None:
    """A state saved by fused Adam (on a GPU) resumes with plain Adam (on a CPU), and the other way round;
    whether the step is fused comes from the resuming device, never from the file. A plain state resumed
    as fused keeping ``fused: False`` would make a GPU's AMP scaler hand its inf check to a step that
    ignores it."""
    torch.manual_seed(0)
    model = build_model("unet", 2)

    def stepped(optimizer: torch.optim.Adam) -> torch.optim.Adam:
        optimizer.zero_grad()
        model(torch.rand(2, 1, 16, 16, 16))[0].mean().backward()
        optimizer.step()
        return optimizer

    for saved_fused, resumed_fused in ((True, False), (False, True)):
        saved = stepped(torch.optim.Adam(model.parameters(), lr=1e-3, fused=saved_fused)).state_dict()
        resumed = torch.optim.Adam(model.parameters(), lr=1e-3, fused=resumed_fused)
        resumed.load_state_dict(with_fused(saved, resumed_fused))
        assert [group["fused"] for group in resumed.param_groups] == [resumed_fused]
        assert all(state["step"] == 1 for state in resumed.state.values())
        stepped(resumed)
        assert all(state["step"] == 2 for state in resumed.state.values())


def test_bad_training_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="sampling"):
        TrainingConfig(sampling="random")
    with pytest.raises(ValueError, match="batch_size: 0 is less than the minimum of 1"):
        TrainingConfig(batch_size=0)
    with pytest.raises(ValueError, match="num_workers: -1 is less than the minimum of 0"):
        TrainingConfig(num_workers=-1)


def _reference_training(subjects, config: TrainingConfig) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Plan-sampler training written out plainly, as the training loop computed it before it ran on a GPU:
    a fresh shuffling ``DataLoader`` per epoch, each patch divided by its own maximum on the host in numpy,
    one clipped Adam step per batch, the epoch's mean loss summed in float64. Returns the weights and the
    per-epoch mean losses."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.init_features, config.activation)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    patch, losses = config.patch_size, []
    for epoch in range(config.epochs):
        seed = int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0])
        plan = epoch_plan(
            subjects,
            config.sampler,
            patch,
            config.strides,
            config.patches_per_epoch,
            np.random.default_rng(seed),
        )
        order = torch.utils.data.DataLoader(
            range(len(plan)), config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        total, batches = 0.0, 0
        for indices in order:
            specs = [plan[int(i)] for i in indices]
            images, labels = [], []
            for spec in specs:
                subject = subjects[spec.subject]
                image = pad_centred(extract(subject.image, spec.start, patch), patch)
                image = image / image.max() if image.max() > 0 else np.zeros_like(image)
                label = pad_centred(extract(subject.label, spec.start, patch).astype(np.float32), patch)
                images.append(to_network(torch.from_numpy(image.astype(np.float32))[None]))
                labels.append(to_network(torch.from_numpy(label)[None]))
            targets = {
                axis: torch.stack(
                    [
                        torch.from_numpy(
                            crop_mip(subjects[s.subject].label_mips[axis], axis, s.start, patch)
                        )[None]
                        for s in specs
                    ]
                )
                for axis in config.loss.volume_target_axes
            }
            optimizer.zero_grad(set_to_none=True)
            terms = segmentation_loss(model(torch.stack(images)), torch.stack(labels), config.loss, targets)
            terms.total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
            optimizer.step()
            total += float(terms.total.detach())
            batches += 1
        losses.append(total / batches)
    return model.state_dict(), losses


@pytest.mark.parametrize("num_workers", [0, 2])
def test_cpu_training_is_bit_identical_to_the_plain_loop(
    phantom_dir: Path, tmp_path: Path, num_workers: int
) -> None:
    """Whatever the input pipeline does (workers, where patches are normalised, where losses are summed),
    a CPU run computes exactly the plain loop's numbers: the same weights and losses, bit for bit."""
    config = replace(SMALL, batch_size=3, num_workers=num_workers, loss=LossConfig(mip_axis="multi"))
    subjects = _subjects(phantom_dir, ["phantom000", "phantom001"])
    history = train(
        subjects, _subjects(phantom_dir, ["phantom002"]), config, _paths(tmp_path), threads=1, progress=False
    )
    weights, losses = _reference_training(subjects, config)
    assert [row["train_loss"] for row in history] == losses
    trained = torch.load(tmp_path / "state" / "checkpoint.pt", weights_only=True)["model"]
    assert trained.keys() == weights.keys()
    for name, value in weights.items():
        assert torch.equal(trained[name], value), name


def test_compile_and_workers_change_how_a_run_executes_not_which_run_it_is() -> None:
    assert TrainingConfig().fingerprint() == TrainingConfig(compile=True).fingerprint()
    assert TrainingConfig().fingerprint() == TrainingConfig(num_workers=3).fingerprint()
    assert TrainingConfig(epochs=3).fingerprint() != TrainingConfig().fingerprint()
    # Which patches the queue sampler draws: what the run computes.
    assert TrainingConfig(queue_workers=0).fingerprint() != TrainingConfig().fingerprint()
    deformation = DeformationConfig(consistency_weight=0.1)
    assert TrainingConfig(deformation=deformation).fingerprint() != TrainingConfig().fingerprint()


def test_compiled_training_saves_the_plain_networks_weights_and_says_when_a_resume_switches_compile(
    phantom_dir: Path,
    tmp_path: Path,
    compile_without_codegen: list[torch.nn.Module],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = replace(SMALL, compile=True)
    subjects, validation = (
        _subjects(phantom_dir, ["phantom000", "phantom001"]),
        _subjects(phantom_dir, ["phantom002"]),
    )
    compiled = train(subjects, validation, config, _paths(tmp_path / "compiled"), threads=1, progress=False)
    assert len(compile_without_codegen) == 1
    plain = train(subjects, validation, SMALL, _paths(tmp_path / "plain"), threads=1, progress=False)
    assert compiled == plain  # dynamo's eager backend runs the plain kernels: the same numbers
    state = torch.load(tmp_path / "compiled" / "state" / "checkpoint.pt", weights_only=True)
    assert state["compile"] is True
    assert state["model"].keys() == load_weights(tmp_path / "compiled" / "best.pt").state_dict().keys()

    # Resume the uncompiled run's first epoch with compile on: it goes on, and the log says so.
    _stopped_after_one_epoch(subjects, validation, SMALL, config, tmp_path / "switched")
    with caplog.at_level(logging.WARNING, logger="spockmip.training.trainer"):
        history = train(
            subjects, validation, config, _paths(tmp_path / "switched"), threads=1, progress=False
        )
    assert [row["epoch"] for row in history] == [1, 2]
    assert "saved with compile False, this run has compile True" in caplog.text


def test_validation_reports_level_zero_and_the_deep_supervision_sum() -> None:
    """``level0`` is the full-resolution output's FTL; ``released`` weighs every level's FTL (side outputs
    upsampled to the patch) by the level weights, as the released validation does; with one output (unet)
    the two are the same number."""
    label = (torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    outputs = [torch.full((2, 1, 16, 16, 16), 2.0), torch.full((2, 1, 8, 8, 8), -1.0)]
    batch = {"image": torch.ones(2, 1, 16, 16, 16), "label": label}
    model = torch.nn.Module()
    model.forward = lambda image: outputs  # type: ignore[method-assign]
    config = SimpleNamespace(loss=LossConfig())
    losses = validation_losses(model, [batch], config, torch.device("cpu"))  # type: ignore[arg-type]
    full = focal_tversky(torch.sigmoid(outputs[0]), label)
    side = focal_tversky(torch.full_like(label, float(torch.sigmoid(torch.tensor(-1.0)))), label)
    assert losses["level0"] == pytest.approx(float(full))
    assert losses["released"] == pytest.approx(float(full + 0.66 * side))
    model.forward = lambda image: outputs[:1]  # type: ignore[method-assign]
    single = validation_losses(model, [batch], config, torch.device("cpu"))  # type: ignore[arg-type]
    assert single["level0"] == single["released"]


@pytest.mark.parametrize(("criterion", "kept"), [("level0", 1), ("released", 2)])
def test_the_validation_criterion_decides_which_epoch_is_kept(
    phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, criterion: str, kept: int
) -> None:
    """Epoch 1 is better at full resolution, epoch 2 over all levels: the released criterion keeps epoch
    2, the level-0 one epoch 1, and the history records both values of every epoch either way."""
    values = iter([{"level0": 0.5, "released": 0.9}, {"level0": 0.6, "released": 0.8}])
    monkeypatch.setattr("spockmip.training.trainer.validation_losses", lambda *args: next(values))
    history = train(
        _subjects(phantom_dir, ["phantom000", "phantom001"]),
        _subjects(phantom_dir, ["phantom002"]),
        replace(SMALL, validation_criterion=criterion),
        _paths(tmp_path),
        threads=1,
        progress=False,
    )
    assert [(row["validation_ftl"], row["validation_ds_ftl"]) for row in history] == [(0.5, 0.9), (0.6, 0.8)]
    assert [row["best"] for row in history] == [True, kept == 2]
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert (best["epoch"], best["validation_criterion"]) == (kept, criterion)
    assert (best["validation_ftl"], best["validation_ds_ftl"]) == ((0.5, 0.9) if kept == 1 else (0.6, 0.8))


def test_mip_variants_validate_on_their_training_grid_under_the_released_setting() -> None:
    """On a 48 x 40 x 32 volume with 32-voxel patches and strides of 16, the released MIP data set's grid
    adds a start a stride beyond the last fitting one along X and Y (neither a multiple of the patch;
    those patches overhang and are padded), while the flush grid ends its last patch on the far edge."""
    subject = SimpleNamespace(image=np.zeros((48, 40, 32), dtype=np.float32))
    geometry = {"patch_size": (32, 32, 32), "strides": (16, 16, 16)}
    released_grid = {(x, y, 0) for x in (0, 16, 32) for y in (0, 16)}
    flush_grid = {(x, y, 0) for x in (0, 16) for y in (0, 8)}
    cases = [("z", "released", released_grid), ("z", "flush", flush_grid), ("none", "released", flush_grid)]
    for mip_axis, grid, expected in cases:
        config = TrainingConfig(**geometry, validation_grid=grid, loss=LossConfig(mip_axis=mip_axis))
        plan = validation_plan([subject], config)  # type: ignore[list-item]
        assert {spec.start for spec in plan} == expected and len(plan) == len(expected), (mip_axis, grid)


def test_validation_settings_are_part_of_the_fingerprint() -> None:
    assert TrainingConfig(validation_criterion="level0").fingerprint() != TrainingConfig().fingerprint()
    assert TrainingConfig(validation_grid="flush").fingerprint() != TrainingConfig().fingerprint()
    with pytest.raises(ValueError, match="validation_criterion"):
        TrainingConfig(validation_criterion="dice")  # type: ignore[arg-type]
