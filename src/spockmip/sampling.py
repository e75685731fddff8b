"""Which training patches an epoch draws: the released code's two samplers, or one sampler for all.

The released code samples differently by variant, a confound the paper does not mention: with the MIP
loss, patches come from the grid of its MIP data set, drawn with replacement; without it, from torchio's
``Queue`` of uniformly placed patches. ``sampling`` names the choice:

* ``released``: per variant, as the released code does: ``released_grid`` with a MIP term, ``queue``
  without (the paper configuration);
* ``released_grid``: the released MIP data set's grid (:func:`spockmip.data.released_grid_starts`,
  overhanging far-edge patches centre-padded), ``patches_per_epoch`` drawn with replacement;
* ``queue``: torchio's ``Queue`` with a ``UniformSampler``, ``patches_per_epoch // n_volumes`` patches per
  volume, queue length twice that, subjects and patches shuffled;
* ``grid``: the project's grid (the last patch of each axis flush with the far edge), drawn with
  replacement: one sampler for every variant (the corrected comparison);
* ``uniform``: uniformly placed patches from uniformly chosen volumes, ``patches_per_epoch`` of them.

Every sampler is a pure function of the epoch's seed, so a resumed run draws the patches an uninterrupted
one would. torchio draws from torch's global generator; :class:`QueuePatches` lends it a generator state
of its own for each draw, so nothing else that runs meanwhile can change the queue's patches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
import torchio as tio

from spockmip.axes import VolumeAxis
from spockmip.data import (
    BatchLoading,
    PatchSpec,
    Subject,
    SubjectPatches,
    grid_plan,
    patch_item,
    uniform_plan,
)
from spockmip.volumes import DataError

Sampling = Literal["released", "released_grid", "queue", "grid", "uniform"]


class QueuePatches(torch.utils.data.Dataset):
    """torchio's patch queue, handing out samples in the format of :class:`spockmip.data.PatchDataset`.

    The subjects go to torchio as in-memory images in the voxel order training uses; torchio chooses
    where each patch lies and in which order patches come; the samples are then completed exactly as the
    other samplers' (normalised, network order, MIP crops). Like every torchio queue it must be read in
    order by a loader without worker processes. torchio's random draws run on a generator state seeded
    with ``seed`` and kept here, swapped in for each draw, so they depend on ``seed`` alone.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        patch_size: Sequence[int],
        patches_per_epoch: int,
        mip_axes: Sequence[VolumeAxis],
        seed: int,
        tube: bool = False,
    ) -> None:
        per_volume = patches_per_epoch // len(subjects)
        if per_volume < 1:
            raise DataError(
                f"sampling 'queue': {patches_per_epoch} patches per epoch is fewer than one per training "
                f"volume ({len(subjects)})"
            )
        self.subjects, self.patch_size, self.mip_axes = list(subjects), tuple(patch_size), tuple(mip_axes)
        self.tube = tube
        torchio_subjects = [
            tio.Subject(
                img=tio.ScalarImage(tensor=torch.from_numpy(s.image)[None], affine=s.affine),
                label=tio.LabelMap(tensor=torch.from_numpy(s.label)[None], affine=s.affine),
                index=index,
            )
            for index, s in enumerate(self.subjects)
        ]
        self.queue = tio.Queue(
            tio.SubjectsDataset(torchio_subjects),
            max_length=2 * per_volume,
            samples_per_volume=per_volume,
            sampler=tio.UniformSampler(self.patch_size),
            num_workers=0,
            shuffle_subjects=True,
            shuffle_patches=True,
            verbose=False,
        )
        self._rng_state = torch.Generator().manual_seed(seed).get_state()

    def __len__(self) -> int:
        return len(self.queue)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            patch = self.queue[index]
            self._rng_state = torch.get_rng_state()
        start = tuple(int(v) for v in patch[tio.LOCATION][:3])
        spec = PatchSpec(int(patch["index"]), start)  # type: ignore[arg-type]
        return patch_item(
            self.subjects[spec.subject],
            spec,
            patch["img"].data[0].numpy(),
            patch["label"].data[0].numpy(),
            self.patch_size,
            self.mip_axes,
            self.tube,
        )


def epoch_plan(
    subjects: Sequence[Subject],
    sampling: str,
    patch_size: Sequence[int],
    strides: Sequence[int],
    patches_per_epoch: int,
    rng: np.random.Generator,
) -> list[PatchSpec]:
    """The patches of one epoch for the plan-based samplers (all but ``queue``), drawn from ``rng``."""
    if sampling == "uniform":
        return uniform_plan(subjects, patch_size, patches_per_epoch, rng)
    layout = "released" if sampling == "released_grid" else "flush"
    grid = grid_plan(subjects, patch_size, strides, layout)
    return [grid[i] for i in rng.choice(len(grid), size=patches_per_epoch, replace=True)]


class EpochOrder(torch.utils.data.Sampler[PatchSpec]):
    """The current epoch's plan in the order the epoch's seed shuffles it; :meth:`start` sets both before
    each epoch. It runs in the training process, so a loader's persistent workers get each epoch's plan."""

    def __init__(self) -> None:
        self.plan: list[PatchSpec] = []
        self.seed = 0

    def start(self, plan: Sequence[PatchSpec], seed: int) -> None:
        self.plan, self.seed = list(plan), seed

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[PatchSpec]:
        generator = torch.Generator().manual_seed(self.seed)
        # A loader built each epoch on this generator would first draw its workers' base seed from it;
        # drawing that number too keeps that loader's order for every epoch, so runs (and saved states)
        # shuffled that way go on with exactly the patches they would have drawn.
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        for index in torch.randperm(len(self.plan), generator=generator).tolist():
            yield self.plan[index]


class EpochBatches:
    """Each epoch's training batches, a pure function of the epoch's seed whatever the loading.

    The plan samplers share one loader for the whole run: its dataset maps a :class:`PatchSpec` to a
    sample and each epoch's plan reaches it through :class:`EpochOrder`, so worker processes (with
    ``loading.num_workers``) start once and persist across epochs. torchio's queue is built from each
    epoch's seed and read in this process, as torchio requires. With ``tube`` every sample carries its
    label's skeleton tube (Skeleton Recall), made with the sample.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        sampling: str,
        patch_size: Sequence[int],
        strides: Sequence[int],
        patches_per_epoch: int,
        mip_axes: Sequence[VolumeAxis],
        loading: BatchLoading,
        tube: bool = False,
    ) -> None:
        self.subjects, self.sampling, self.loading = list(subjects), sampling, loading
        self.tube = tube
        self.patch_size, self.strides, self.mip_axes = tuple(patch_size), tuple(strides), tuple(mip_axes)
        self.patches_per_epoch = patches_per_epoch
        self.order = EpochOrder()
        self.shared = (
            None
            if sampling == "queue"
            else loading.loader(
                SubjectPatches(self.subjects, self.patch_size, self.mip_axes, tube), self.order
            )
        )

    def __call__(self, seed: int) -> torch.utils.data.DataLoader:
        """The loader of the epoch whose seed is ``seed``; iterate it once, before asking for the next."""
        if self.shared is None:
            queue = QueuePatches(
                self.subjects, self.patch_size, self.patches_per_epoch, self.mip_axes, seed, self.tube
            )
            return self.loading.loader(queue, in_process=True)
        plan = epoch_plan(
            self.subjects,
            self.sampling,
            self.patch_size,
            self.strides,
            self.patches_per_epoch,
            np.random.default_rng(seed),
        )
        self.order.start(plan, seed)
        return self.shared
