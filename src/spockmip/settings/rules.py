"""The rules that tie settings together, which no single entry's bounds can express; each error names its
setting as its user wrote it (the ``spell`` argument)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from spockmip.errors import SettingsError
from spockmip.settings.catalogue import (
    PHANTOM_VOXEL_BUDGET,
    SAMPLINGS,
    SKELETON_LOSS_SETTINGS,
    VALIDATION_GRIDS,
    VARIANT,
)
from spockmip.settings.lookup import training_settings
from spockmip.settings.setting import PATCH_MULTIPLE


def resolve_sampling(sampling: str, has_mip_term: bool) -> str:
    """The sampler a variant actually uses: ``released`` depends on whether it has a MIP term."""
    if sampling not in SAMPLINGS:
        raise SettingsError(f"sampling: {sampling!r} is not one of {', '.join(SAMPLINGS)}")
    if sampling == "released":
        return "released_grid" if has_mip_term else "queue"
    return sampling


def resolve_validation_grid(grid: str, has_mip_term: bool) -> str:
    """The grid layout a variant validates on (:data:`spockmip.data.subjects.GridLayout`): ``released`` puts
    the
    variants with a MIP term on the released MIP data set's grid, which the released code validated them on,
    and every other variant on the flush grid."""
    if grid not in VALIDATION_GRIDS:
        raise SettingsError(f"validation_grid: {grid!r} is not one of {', '.join(VALIDATION_GRIDS)}")
    return "released" if grid == "released" and has_mip_term else "flush"


def describe_computation(settings: Mapping[str, Any]) -> str:
    """What one run computes where the released code and the papers differ, and its continuity term, in
    one line; ``settings`` are the run's flat, complete training settings
    (:func:`spockmip.settings.lookup.complete_training`).

    The workflow says it for every variant before any job runs and the trainer at the start of each
    training, both through this function, so the two never disagree. A setting without effect on the run
    is left out (the MIP pairing without a MIP term, the baseline scale with one, DS6's settings without
    DS6), and a resolved choice (the sampler, the validation grid) follows the value written.
    """
    has_mip_term = settings["mip_axis"] != "none"
    sampler = resolve_sampling(settings["sampling"], has_mip_term)
    grid = resolve_validation_grid(settings["validation_grid"], has_mip_term)
    loss = "mip_pairing" if has_mip_term else "baseline_scale"
    parts = [
        f"sampling {settings['sampling']} ({sampler})",
        f"queue_workers {settings['queue_workers']}" if sampler == "queue" else "",
        f"validation_grid {settings['validation_grid']} ({grid})",
        f"validation_criterion {settings['validation_criterion']}",
        f"{loss} {settings[loss]}",
    ]
    if settings["deform"]:
        parts += [
            f"deformation {settings['deformation']}",
            f"labels {settings['deformation_label_mode']}",
            f"consistency {settings['consistency_target']} x {settings['consistency_weight']:g}",
        ]
    if settings["skeleton_loss"] == "cldice":
        parts.append(f"clDice x {settings['cldice_weight']:g} ({settings['cldice_iterations']} iterations)")
    if settings["skeleton_loss"] == "skeleton_recall":
        parts.append(f"Skeleton Recall x {settings['skeleton_recall_weight']:g}")
    return ", ".join(part for part in parts if part)


def check_window(patch: Sequence[int], strides: Sequence[int], spell: Callable[[str], str]) -> None:
    """Strides larger than the window would leave voxels that no window covers."""
    if any(s > p for s, p in zip(strides, patch, strict=True)):
        raise SettingsError(
            f"{spell('strides')}: {list(strides)} exceed the patch {spell('patch_size')} {list(patch)}, "
            "which would leave voxels that no patch covers"
        )


def check_phantom_voxels(shape: Sequence[int], key: str) -> None:
    """A phantom's voxels within :data:`~spockmip.settings.catalogue.PHANTOM_VOXEL_BUDGET`, judged on the
    shape alone, before the generator allocates anything (it would compute for minutes, then run out of
    memory)."""
    voxels = math.prod(shape)
    if voxels > PHANTOM_VOXEL_BUDGET:
        raise SettingsError(
            f"{key}: {list(shape)} is {voxels:,} voxels, more than the phantom budget of "
            f"{PHANTOM_VOXEL_BUDGET:,} (2**28)"
        )


def check_training(
    settings: Mapping[str, Any], spell: Callable[[str], str], given: Collection[str] = ()
) -> None:
    """The rules between one run's settings (``settings`` complete, by flat name), each error naming its
    setting as ``spell`` writes it (a config key, or a command-line option). ``given`` names the settings
    the user wrote, as opposed to those at their defaults (:func:`check_skeleton_loss`)."""
    known = training_settings()
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise SettingsError(f"{spell(unknown[0])}: unknown training setting")
    for name, value in settings.items():
        known[name].check(value, spell(name))
    check_window(settings["patch_size"], settings["strides"], spell)
    released_pairing = settings["mip_axis"] != "none" and settings["mip_pairing"] == "released"
    if released_pairing and len(set(settings["patch_size"])) != 1:
        raise SettingsError(
            f"{spell('mip_pairing')}: released needs a cubic {spell('patch_size')}, got "
            f"{list(settings['patch_size'])}; use consistent (the released pairing compares projections "
            "of different axes element by element)"
        )
    check_trainable_batch(settings, spell)
    check_skeleton_loss(settings, spell, given)


def check_trainable_batch(settings: Mapping[str, Any], spell: Callable[[str], str]) -> None:
    """Batch normalisation needs more than one value per channel: at the U-Net's bottleneck (each side
    divided by :data:`~spockmip.settings.setting.PATCH_MULTIPLE`) the smallest batch an epoch draws (the
    last one is partial when the patches per epoch do not divide into batches) must hold more than one."""
    batch, per_epoch = settings["batch_size"], settings["patches_per_epoch"]
    smallest = min(batch, per_epoch % batch or batch)
    bottleneck = math.prod(side // PATCH_MULTIPLE for side in settings["patch_size"])
    if smallest * bottleneck < 2:
        raise SettingsError(
            f"{spell('batch_size')}: a batch of {smallest} patch(es) of {list(settings['patch_size'])} "
            f"({spell('patch_size')}; {spell('patches_per_epoch')} {per_epoch}) leaves the U-Net's "
            "bottleneck one value per channel, which batch normalisation cannot train on: use two or more "
            "patches per batch or a larger patch"
        )


def check_skeleton_loss(
    settings: Mapping[str, Any], spell: Callable[[str], str], given: Collection[str]
) -> None:
    """A continuity term's settings (:data:`SKELETON_LOSS_SETTINGS`) written while ``skeleton_loss`` selects
    another term, or none, would change nothing: refused, naming both keys. Only what the user wrote
    (``given``) is judged, since every setting has a value once the defaults are filled in."""
    for loss, names in SKELETON_LOSS_SETTINGS.items():
        if settings["skeleton_loss"] == loss:
            continue
        for name in names:
            if name in given:
                key, selector = spell(name), spell("skeleton_loss")
                raise SettingsError(
                    f"{key}: has no effect unless {_after_shared_prefix(key, selector)} is {loss}"
                )


def _after_shared_prefix(first: str, second: str) -> str:
    """``second`` without the words it shares with ``first`` (``config ``, a file name): "config
    variants.a.x: ... unless variants.a.y is ..." rather than "... unless config variants.a.y is ..."."""
    shared = next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )
    return second[second.rfind(" ", 0, shared) + 1 :]


def check_radius_edges(edges: Sequence[float] | None, key: str) -> None:
    """The radius-bin edges separate the three bins only as two values, the second above the first."""
    if edges is not None and (len(edges) != 2 or not edges[0] < edges[1]):
        raise SettingsError(
            f"{key}: {list(edges)} must be two increasing distances in mm (thin up to the first, thick "
            "beyond the second)"
        )


def check_replicates(given: Mapping[str, Any], where: str = "config") -> None:
    """The ``training`` section as its user wrote it (before the schema filled in defaults): one seed or
    a list of distinct seeds, not both. ``where`` names the config in the message."""
    seeds = given.get("seeds")
    if seeds is None:
        return
    if "seed" in given:
        raise SettingsError(
            f"{where} training.seeds: give training.seed or training.seeds, not both (seeds lists every "
            "replicate's seed)"
        )
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise SettingsError(
            f"{where} training.seeds: {repeated[0]} is listed twice (a replicate is one seed)"
        )


def config_key(variant: str, own: Collection[str], where: str = "config") -> Callable[[str], str]:
    """How a workflow config spells a training setting of ``variant`` whose own keys are ``own``: the
    variant's key where it sets one or where only a variant can (:data:`VARIANT`), else the shared
    ``training`` key; ``where`` names the config ("config", or a settings file)."""

    def spell(name: str) -> str:
        under_variant = name in own or name in VARIANT
        return f"{where} variants.{variant}.{name}" if under_variant else f"{where} training.{name}"

    return spell
