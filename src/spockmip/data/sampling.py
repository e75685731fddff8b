"""Which training patches an epoch draws: the released code's two samplers, or one sampler for all.

The released code samples differently by variant, a confound the paper does not mention: with the MIP
loss, patches come from the grid of its MIP data set, drawn with replacement; without it, from torchio's
``Queue`` of uniformly placed patches. ``sampling`` names the choice:

* ``released``: per variant, as the released code does: ``released_grid`` with a MIP term, ``queue``
  without (the paper configuration);
* ``released_grid``: the released MIP data set's grid (:func:`spockmip.data.subjects.released_grid_starts`,
  overhanging far-edge patches centre-padded), ``patches_per_epoch`` drawn with replacement;
* ``queue``: torchio's ``Queue`` with a ``UniformSampler``, ``patches_per_epoch // n_volumes`` patches per
  volume, queue length twice that, subjects and patches shuffled; with ``queue_workers`` W, read as the
  released code reads it, through a loader with W worker processes, each popping its own copy of the
  queue (emulated in this process, see :class:`QueuePatches`);
* ``grid``: the project's grid (the last patch of each axis flush with the far edge), drawn with
  replacement: one sampler for every variant (the corrected comparison);
* ``uniform``: uniformly placed patches from uniformly chosen volumes, ``patches_per_epoch`` of them.

Every sampler is a pure function of the epoch's seed, so a resumed run draws the patches an uninterrupted
one would. torchio draws from torch's global generator; :class:`QueuePatches` lends it a generator state
of its own for each draw, so nothing else that runs meanwhile can change the queue's patches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torchio as tio

from spockmip.axes import VolumeAxis
from spockmip.data.subjects import (
    BatchLoading,
    PatchSpec,
    Subject,
    SubjectPatches,
    grid_plan,
    patch_item,
    uniform_plan,
)
from spockmip.errors import DataError

Sampling = Literal["released", "released_grid", "queue", "grid", "uniform"]


class PlacingSampler(tio.UniformSampler):
    """torchio's ``UniformSampler`` whose patches keep only where they lie (the volume's ``index`` and
    torchio's location), not a copy of their voxels. Each patch is still cut by torchio and then dropped,
    so every random draw is torchio's own (a place is drawn, and torchio's crop transform draws too); a
    queue of them holds no image data, and the sample is cut again when the patch is popped."""

    def extract_patch(self, subject: tio.Subject, index_ini: Sequence[int]) -> dict[str, Any]:  # type: ignore[override]
        patch = super().extract_patch(subject, index_ini)  # type: ignore[arg-type]
        return {"index": subject["index"], tio.LOCATION: patch[tio.LOCATION]}


def torchio_queue(
    subjects: Sequence[tio.Subject], patch_size: Sequence[int], per_volume: int, *, placing: bool = False
) -> tio.Queue:
    """torchio's queue as the released code builds it for the variants without a MIP term: ``per_volume``
    uniformly placed patches per volume, room for twice that, subjects and patches shuffled, subjects
    loaded in the reading process. ``placing``: the same draws, patches reduced to their places
    (:class:`PlacingSampler`)."""
    sampler = PlacingSampler if placing else tio.UniformSampler
    return tio.Queue(
        tio.SubjectsDataset(list(subjects)),
        max_length=2 * per_volume,
        samples_per_volume=per_volume,
        sampler=sampler(tuple(patch_size)),
        num_workers=0,
        shuffle_subjects=True,
        shuffle_patches=True,
        verbose=False,
    )


def worker_base_seed(seed: int) -> int:
    """The base seed of the worker processes of a loader whose generator is seeded with ``seed``: torch's
    ``DataLoader`` draws it first from that generator, and seeds worker ``w``'s global generator with base
    seed + w (``torch/utils/data/_utils/worker.py``)."""
    generator = torch.Generator().manual_seed(seed)
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


class QueuePatches(torch.utils.data.Dataset):
    """torchio's patch queue, handing out samples in the format of
    :class:`spockmip.data.subjects.PatchDataset`.

    The subjects go to torchio as in-memory images in the voxel order training uses; torchio chooses
    where each patch lies and in which order patches come; the samples are then completed exactly as the
    other samplers' (normalised, network order, MIP crops). torchio's random draws run on generator states
    kept here and swapped in for each draw, so they depend on ``seed`` alone. The dataset must be read in
    order (index 0, 1, ...) by a loader without worker processes, in batches of ``batch_size``.

    ``workers`` W (None or 0: one queue) reproduces the released reading: a loader with W worker processes
    over the queue, batch ``i`` made by worker ``i mod W`` from its own copy of the queue, which it fills and
    pops on its own, its global generator seeded with base seed + w. Here the W copies live in this process,
    each with its own generator state, and the state of batch ``i``'s worker is swapped in for its draws; the
    base seed is the one a loader whose generator is seeded with ``seed`` would draw
    (:func:`worker_base_seed`). The patches are those of that loader, in its order (tested against a real
    one). torchio's queue draws from torch's global generator alone, so the workers' seeding of Python's and
    numpy's generators plays no part. The copies hold patches' places, not their voxels
    (:class:`PlacingSampler`), so W of them fit in one process; a popped patch is cut from the volume as the
    plan samplers cut theirs, the same voxels torchio cut.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        patch_size: Sequence[int],
        patches_per_epoch: int,
        mip_axes: Sequence[VolumeAxis],
        seed: int,
        tube: bool = False,
        *,
        workers: int | None = None,
        batch_size: int = 1,
    ) -> None:
        per_volume = patches_per_epoch // len(subjects)
        if per_volume < 1:
            raise DataError(
                f"sampling 'queue': {patches_per_epoch} patches per epoch is fewer than one per training "
                f"volume ({len(subjects)})"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.subjects, self.patch_size, self.mip_axes = list(subjects), tuple(patch_size), tuple(mip_axes)
        self.tube, self.batch_size = tube, batch_size
        self.places = SubjectPatches(self.subjects, self.patch_size, self.mip_axes, tube) if workers else None
        torchio_subjects = [
            tio.Subject(
                img=tio.ScalarImage(tensor=torch.from_numpy(s.image)[None], affine=s.affine),
                label=tio.LabelMap(tensor=torch.from_numpy(s.label)[None], affine=s.affine),
                index=index,
            )
            for index, s in enumerate(self.subjects)
        ]
        if not workers:
            self.queues = [torchio_queue(torchio_subjects, self.patch_size, per_volume)]
            self._rng_states = [torch.Generator().manual_seed(seed).get_state()]
        else:
            # Building a queue draws from the global generator; these copies leave it where it was.
            with torch.random.fork_rng(devices=[]):
                self.queues = [
                    torchio_queue(torchio_subjects, self.patch_size, per_volume, placing=True)
                    for _ in range(workers)
                ]
            base = worker_base_seed(seed)
            self._rng_states = [torch.Generator().manual_seed(base + w).get_state() for w in range(workers)]

    @property
    def queue(self) -> tio.Queue:
        """The first (with one worker or none, the only) copy of the queue."""
        return self.queues[0]

    def __len__(self) -> int:
        return len(self.queue)

    def draw(self, index: int) -> Mapping[str, Any]:
        """torchio's patch ``index`` of the epoch (indices read in order), from the copy of the queue that
        the worker of its batch holds."""
        worker = (index // self.batch_size) % len(self.queues)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_states[worker])
            patch = self.queues[worker][index]
            self._rng_states[worker] = torch.get_rng_state()
        return patch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        patch = self.draw(index)
        start = tuple(int(v) for v in patch[tio.LOCATION][:3])
        spec = PatchSpec(int(patch["index"]), start)  # type: ignore[arg-type]
        if self.places is not None:
            return self.places[spec]
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
    epoch's seed and read in this process, as torchio requires; with ``queue_workers`` W it is read as the
    released loader's W worker processes read their copies of it (:class:`QueuePatches`). With ``tube``
    every sample carries its label's skeleton tube (Skeleton Recall), made with the sample.
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
        queue_workers: int | None = None,
    ) -> None:
        self.subjects, self.sampling, self.loading = list(subjects), sampling, loading
        self.tube, self.queue_workers = tube, queue_workers
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
                self.subjects,
                self.patch_size,
                self.patches_per_epoch,
                self.mip_axes,
                seed,
                self.tube,
                workers=self.queue_workers,
                batch_size=self.loading.batch_size,
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
