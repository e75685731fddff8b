"""Training-patch samplers: the released code's per-variant choice, torchio's queue, the grids."""

from collections import Counter
from pathlib import Path

import pytest
import torch

from spockmip.data import grid_positions, load_subject
from spockmip.sampling import QueuePatches, epoch_dataset, resolve_sampling


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
    dataset = epoch_dataset(subjects, "queue", (16, 16, 16), (8, 8, 8), 20, ("z",), seed=3)
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
    again = epoch_dataset(subjects, "queue", (16, 16, 16), (8, 8, 8), 20, ("z",), seed=3)
    other = epoch_dataset(subjects, "queue", (16, 16, 16), (8, 8, 8), 20, ("z",), seed=4)
    starts = [item["start"].tolist() for item in items]
    assert [again[i]["start"].tolist() for i in range(18)] == starts
    assert [other[i]["start"].tolist() for i in range(18)] != starts


def test_grid_samplers_draw_patches_per_epoch_from_their_grids(subjects) -> None:
    shape = subjects[0].image.shape
    for sampling, layout in (("released_grid", "released"), ("grid", "flush")):
        dataset = epoch_dataset(subjects, sampling, (32, 32, 32), (16, 16, 16), 40, (), seed=1)
        assert len(dataset) == 40
        allowed = set(grid_positions(shape, (32, 32, 32), (16, 16, 16), layout))
        assert {spec.start for spec in dataset.plan} <= allowed
    released = set(grid_positions(shape, (32, 32, 32), (16, 16, 16), "released"))
    assert released != set(grid_positions(shape, (32, 32, 32), (16, 16, 16), "flush"))


def test_queue_needs_one_patch_per_volume_at_least(subjects) -> None:
    with pytest.raises(ValueError, match="fewer than one per training volume"):
        epoch_dataset(subjects, "queue", (16, 16, 16), (8, 8, 8), 2, (), seed=0)
