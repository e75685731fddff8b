"""Training-patch samplers: the released code's per-variant choice, torchio's queue, the grids."""

from collections import Counter
from pathlib import Path

import pytest
import torch
import torchio as tio

from spockmip.data.sampling import EpochBatches, QueuePatches
from spockmip.data.subjects import BatchLoading, grid_positions, load_subject
from spockmip.settings.rules import resolve_sampling


@pytest.fixture(scope="module")
def subjects(phantom_dir: Path):
    return [
        load_subject(
            phantom_dir / "images" / f"{n}.nii.gz", phantom_dir / "labels" / f"{n}.nii.gz", mip_axes=("z",)
        )
        for n in ("phantom000", "phantom001", "phantom002")
    ]


def test_released_sampling_depends_on_the_mip_term() -> None:
    assert resolve_sampling("released", has_mip_term=True) == "released_grid"
    assert resolve_sampling("released", has_mip_term=False) == "queue"
    assert resolve_sampling("grid", has_mip_term=False) == "grid"
    with pytest.raises(ValueError, match="sampling"):
        resolve_sampling("random", has_mip_term=False)


def test_queue_draws_patches_per_epoch_over_volumes_from_each_volume(subjects) -> None:
    batches = EpochBatches(subjects, "queue", (16, 16, 16), (8, 8, 8), 20, ("z",), BatchLoading(4))
    dataset = batches(seed=3).dataset
    assert isinstance(dataset, QueuePatches)
    assert len(dataset) == 18  # 20 // 3 = 6 per volume (the released 8000 // n_volumes rule)
    assert dataset.queue.max_length == 12 and dataset.queue.samples_per_volume == 6
    items = [dataset[i] for i in range(len(dataset))]
    assert Counter(int(item["subject"]) for item in items) == {0: 6, 1: 6, 2: 6}
    for item in items:
        start, subject = item["start"].tolist(), subjects[int(item["subject"])]
        assert all(0 <= s <= n - 16 for s, n in zip(start, subject.image.shape, strict=True))
        # The sample is the block torchio cut at its location, completed like every other sampler's.
        block = torch.from_numpy(subject.label[tuple(slice(s, s + 16) for s in start)].astype("float32"))
        assert torch.equal(item["label"][0], block.permute(2, 0, 1))
        assert item["mip_z"].shape == (1, 16, 16)
    again, other = batches(seed=3).dataset, batches(seed=4).dataset
    starts = [item["start"].tolist() for item in items]
    assert [again[i]["start"].tolist() for i in range(18)] == starts
    assert [other[i]["start"].tolist() for i in range(18)] != starts


def test_grid_samplers_draw_patches_per_epoch_from_their_grids(subjects) -> None:
    shape = subjects[0].image.shape
    for sampling, layout in (("released_grid", "released"), ("grid", "flush")):
        batches = EpochBatches(subjects, sampling, (32, 32, 32), (16, 16, 16), 40, (), BatchLoading(4))
        assert len(batches(seed=1)) == 10 and len(batches.order) == 40
        allowed = set(grid_positions(shape, (32, 32, 32), (16, 16, 16), layout))
        assert {spec.start for spec in batches.order.plan} <= allowed
    released = set(grid_positions(shape, (32, 32, 32), (16, 16, 16), "released"))
    assert released != set(grid_positions(shape, (32, 32, 32), (16, 16, 16), "flush"))


def test_queue_needs_one_patch_per_volume_at_least(subjects) -> None:
    with pytest.raises(ValueError, match="fewer than one per training volume"):
        EpochBatches(subjects, "queue", (16, 16, 16), (8, 8, 8), 2, (), BatchLoading(4))(seed=0)


def _starts(loader: torch.utils.data.DataLoader) -> list[list[list[int]]]:
    return [batch["start"].tolist() for batch in loader]


def test_one_loader_serves_every_epoch_and_workers_change_nothing(subjects) -> None:
    """The plan samplers' loader (and so its worker processes) lives for the whole run; each epoch's
    batches depend on the epoch's seed alone, not on how many workers make them."""
    arguments = (subjects, "grid", (16, 16, 16), (8, 8, 8), 10, ("z",))
    in_process = EpochBatches(*arguments, BatchLoading(3))
    with_workers = EpochBatches(*arguments, BatchLoading(3, num_workers=2))
    epochs = [_starts(in_process(seed)) for seed in (5, 6)]
    assert epochs[0] != epochs[1] and [len(batch) for batch in epochs[0]] == [3, 3, 3, 1]
    assert with_workers(5) is with_workers(6)
    assert [_starts(with_workers(seed)) for seed in (5, 6)] == epochs
    workers = with_workers.shared._iterator._workers  # started by the first epoch, kept by the second
    assert _starts(with_workers(5)) == epochs[0] and with_workers.shared._iterator._workers is workers


def _drawn(patches: list[tio.Subject]) -> list[tuple[int, list[int]]]:
    """Which volume, and where, each torchio patch was cut."""
    return [(int(patch["index"]), patch[tio.LOCATION][:3].tolist()) for patch in patches]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [1, 3])
def test_queue_workers_draw_what_a_loader_with_worker_processes_draws(subjects, workers: int) -> None:
    """The released code reads torchio's queue through a DataLoader with worker processes (shuffled
    indices, which the queue ignores); each worker pops its own copy. The emulation in one process draws
    the same patches in the same order, from the loader's generator seed alone."""
    arguments = (subjects, (16, 16, 16), 60, ())  # 20 patches per volume, queue length 40
    emulated = QueuePatches(*arguments, seed=9, workers=workers, batch_size=4)
    drawn = _drawn([emulated.draw(i) for i in range(len(emulated))])
    released = torch.utils.data.DataLoader(
        QueuePatches(*arguments, seed=0).queue,  # a fresh queue, as the released code builds it
        batch_size=4,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(9),
        collate_fn=_drawn,
        multiprocessing_context="fork",
    )
    assert drawn == [patch for batch in released for patch in batch]
    assert len(drawn) == 60
    # The samples: those places, cut from the volumes as every sampler cuts them.
    again = QueuePatches(subjects, (16, 16, 16), 60, ("z",), seed=9, workers=workers, batch_size=4)
    for i, (index, start) in enumerate(drawn[:12]):
        item = again[i]
        assert (int(item["subject"]), item["start"].tolist()) == (index, start)
        block = subjects[index].label[tuple(slice(s, s + 16) for s in start)].astype("float32")
        assert torch.equal(item["label"][0], torch.from_numpy(block).permute(2, 0, 1))
        assert item["mip_z"].shape == (1, 16, 16)
    if workers == 3:
        # Each worker fills its copy from its own shuffle of the volumes: the counts are uneven.
        assert Counter(index for index, _ in drawn) != {0: 20, 1: 20, 2: 20}


def test_no_queue_workers_is_the_single_queue_read_in_order(subjects) -> None:
    arguments = (subjects, "queue", (16, 16, 16), (8, 8, 8), 20, ("z",), BatchLoading(4))
    single = [batch["start"].tolist() for batch in EpochBatches(*arguments)(seed=3)]
    for workers in (None, 0):
        batches = EpochBatches(*arguments, queue_workers=workers)(seed=3)
        assert [batch["start"].tolist() for batch in batches] == single
    emulated = EpochBatches(*arguments, queue_workers=2)(seed=3)
    assert len(emulated.dataset.queues) == 2
    assert [batch["start"].tolist() for batch in emulated] != single
    assert sum(len(batch["start"]) for batch in emulated) == 18
