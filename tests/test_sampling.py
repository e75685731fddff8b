"""Training-patch samplers: the released code's per-variant choice, torchio's queue, the grids."""

from collections import Counter
from pathlib import Path

import pytest
import torch

from spockmip.data import BatchLoading, grid_positions, load_subject
from spockmip.sampling import EpochBatches, QueuePatches
from spockmip.settings import resolve_sampling


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
