"""Every setting of spockmip, in one place: name, type, default, allowed values, help and the rules that tie
settings together.

The workflow's schema (``workflow/schemas/config.schema.yaml``) is generated from :data:`SECTIONS`
(:mod:`spockmip.schema`), the command line derives its options from the same entries
(:mod:`spockmip.options`),
the library's config dataclasses take their defaults from them (:func:`default`), and the workflow reads
its config only through :class:`WorkflowSettings`. A setting therefore has one home: adding one is one
entry here (docs/architecture.md shows the diff).

Plain dataclasses rather than a validation library: the schema must stay JSON Schema (Snakemake validates
and fills defaults with it), the values are few and flat, and this module is imported by every process
that starts (the CLI's ``--help``, each Snakefile parse), so it imports neither torch nor anything heavy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from spockmip.errors import SettingsError

Kind = Literal["integer", "number", "string", "boolean", "triple", "patch", "integers", "numbers"]
# The U-Net halves every side four times, so each patch side must be a multiple of this.
PATCH_MULTIPLE = 16
SAMPLINGS: tuple[str, ...] = ("released", "released_grid", "queue", "grid", "uniform")
MIP_AXES: tuple[str, ...] = ("none", "x", "y", "z", "multi")
ORIENTATIONS: tuple[str, ...] = ("stored", "canonical")
VALIDATION_GRIDS: tuple[str, ...] = ("released", "flush")
# Each validation criterion and the history.csv column that records its value every epoch: both columns are
# written whichever criterion a run selects by, so the two selections can be compared after the fact.
VALIDATION_COLUMNS: dict[str, str] = {"level0": "validation_ftl", "released": "validation_ds_ftl"}
VALIDATION_CRITERIA: tuple[str, ...] = ("released", "level0")
# How summaries and figures name the loss each criterion keeps the best epoch by.
VALIDATION_LABELS: dict[str, str] = {"released": "FTL summed over levels", "level0": "level-0 FTL"}
MODELS: tuple[str, ...] = ("unet", "unetmss")
SKELETON_LOSSES: tuple[str, ...] = ("none", "cldice", "skeleton_recall")
ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu")
METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "cl_dice",
    "betti0_error",
    "betti1_error",
    "n_components_prediction",
    "hd95_mm",
    "assd_mm",
    "nsd",
)


@dataclass(frozen=True)
class Setting:
    """One setting: what a user may write, what it means, and what it is when not written.

    ``target`` names the field of the library's config object that receives the value (``loss.alpha``),
    where it differs from the setting's name. ``schema`` replaces the generated JSON Schema of settings
    whose values no single kind describes (a name or a number, say). ``flag`` is the command-line option,
    where one exists under another name than ``--<name>``.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    min_items: int | None = None
    max_items: int | None = None
    target: str | None = None
    schema: Mapping[str, Any] | None = None
    flag: str | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def json_schema(self) -> dict[str, Any]:
        """This setting's JSON Schema, default and description included."""
        if self.schema is not None:
            body = dict(self.schema)
        elif self.kind in ("triple", "patch", "integers", "numbers"):
            item: dict[str, Any] = {"type": "number" if self.kind == "numbers" else "integer"}
            item.update(self._bounds())
            if self.kind == "patch":
                item.update(minimum=PATCH_MULTIPLE, multipleOf=PATCH_MULTIPLE)
            body = {"type": "array", "items": item}
            fixed = 3 if self.kind in ("triple", "patch") else None
            if (self.min_items or fixed) is not None:
                body["minItems"] = self.min_items or fixed
            if (self.max_items or fixed) is not None:
                body["maxItems"] = self.max_items or fixed
        else:
            body = {"type": self.kind}
            if self.choices:
                body["enum"] = list(self.choices)
            body.update(self._bounds())
        if self.nullable:
            body["type"] = [body["type"], "null"] if "type" in body else None
            if "enum" in body:
                body["enum"] = [*body["enum"], None]
        body = {key: value for key, value in body.items() if value is not None}
        return {**body, "default": _plain(self.default), "description": self.help}

    def _bounds(self) -> dict[str, float]:
        bounds = {
            "minimum": self.minimum,
            "exclusiveMinimum": self.exclusive_minimum,
            "maximum": self.maximum,
        }
        return {key: value for key, value in bounds.items() if value is not None}

    def check(self, value: Any, key: str) -> None:
        """Refuse a value the schema would refuse, and any non-finite number (JSON Schema lets NaN pass
        every bound and infinity every lower one); ``key`` names the setting in the message."""
        if value is None:
            if self.nullable:
                return
            raise SettingsError(f"{key}: a value is required")
        sequence = self.kind in ("triple", "patch", "integers", "numbers")
        if sequence != isinstance(value, list | tuple) and self.schema is None:
            wanted = "a list" if sequence else f"a single {self.kind}"
            raise SettingsError(f"{key}: {value!r} is not {wanted}")
        values = value if isinstance(value, list | tuple) else [value]
        if self.kind in ("triple", "patch") and len(values) != 3:
            raise SettingsError(f"{key}: {list(values)} is not three values (X, Y, Z)")
        for item in values:
            self.check_item(item, key)

    def check_item(self, item: Any, key: str) -> None:
        """One value, or one element of a list setting: its type, choices and bounds."""
        self._check_type(item, key)
        if isinstance(item, float) and not math.isfinite(item):
            raise SettingsError(f"{key}: {item} is not a finite number")
        if self.choices and item not in self.choices and self.schema is None:
            raise SettingsError(f"{key}: {item!r} is not one of {', '.join(map(str, self.choices))}")
        if isinstance(item, int | float) and not isinstance(item, bool):
            self._check_bounds(item, key)
        if self.kind == "patch" and item % PATCH_MULTIPLE:
            raise SettingsError(
                f"{key}: {item} is not divisible by {PATCH_MULTIPLE} (the U-Net halves each side four times)"
            )

    def _check_type(self, item: Any, key: str) -> None:
        if self.schema is not None:
            return
        integral = self.kind in ("integer", "triple", "patch", "integers")
        if self.kind == "boolean":
            fits = isinstance(item, bool)
        elif integral:
            fits = isinstance(item, int) and not isinstance(item, bool)
        elif self.kind in ("number", "numbers"):
            fits = isinstance(item, int | float) and not isinstance(item, bool)
        else:
            fits = isinstance(item, str)
        if not fits:
            wanted = {"boolean": "true or false", "string": "a string"}.get(self.kind, "a number")
            raise SettingsError(f"{key}: {item!r} is not {'an integer' if integral else wanted}")

    def _check_bounds(self, item: float, key: str) -> None:
        if self.minimum is not None and item < self.minimum:
            raise SettingsError(f"{key}: {item} is less than the minimum of {self.minimum:g}")
        if self.exclusive_minimum is not None and item <= self.exclusive_minimum:
            raise SettingsError(f"{key}: {item} is not greater than {self.exclusive_minimum:g}")
        if self.maximum is not None and item > self.maximum:
            raise SettingsError(f"{key}: {item} is greater than the maximum of {self.maximum:g}")


def _plain(value: Any) -> Any:
    """Tuples as lists, as JSON and YAML write them."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _named(*settings: Setting) -> dict[str, Setting]:
    return {setting.name: setting for setting in settings}


SAMPLING_HELP = (
    "Training patches. released: as the released code, per variant: released_grid with a MIP term, queue "
    "without. released_grid: the released MIP data set's grid (far-edge patches overhang and are "
    "centre-padded), drawn with replacement. queue: torchio's Queue + UniformSampler, patches_per_epoch // "
    "n_volumes per volume. grid: the project's grid (last patch flush with the edge), drawn with "
    "replacement, the same for every variant. uniform: uniformly placed patches."
)

# The settings of one training run. Those a variant may set for itself are in VARIANT_TRAINING below.
TRAINING = _named(
    Setting(
        "init_features", "integer", 64, "U-Net width f (filters f·[1,2,4,8,16]; 64 = published).", minimum=1
    ),
    Setting(
        "activation",
        "string",
        None,
        "Activation; null takes the published model's (ReLU for unet, LeakyReLU for unetmss).",
        choices=ACTIVATIONS,
        nullable=True,
    ),
    Setting("patch_size", "patch", (64, 64, 64), "Training patch (X, Y, Z) in voxels; each divisible by 16."),
    Setting(
        "strides",
        "triple",
        (32, 32, 16),
        "Grid strides (X, Y, Z), each at most the patch; overlap = patch - stride. Also the validation grid.",
        minimum=1,
    ),
    Setting("sampling", "string", "released", SAMPLING_HELP, choices=SAMPLINGS),
    Setting("batch_size", "integer", 15, "Patches per batch.", minimum=1),
    Setting("epochs", "integer", 50, "Training epochs.", minimum=1),
    Setting("patches_per_epoch", "integer", 8000, "Patches drawn per epoch.", minimum=1),
    Setting("learning_rate", "number", 1.0e-4, "Adam learning rate (no scheduler).", exclusive_minimum=0),
    Setting("gradient_clip", "number", 1.0, "Gradient-norm clipping threshold.", exclusive_minimum=0),
    Setting("seed", "integer", 2020, "Seed of initialisation, sampling and deformations.", minimum=0),
    Setting(
        "validation_criterion",
        "string",
        "released",
        "Validation loss that picks the kept (best) epoch. released: the deep-supervision-weighted sum of "
        "the Focal Tversky loss over every output level (level_weights; side outputs upsampled to the "
        "patch), as the released code selects; level0: the full-resolution output's Focal Tversky alone. "
        "The same for unet (one output); history.csv records both every epoch.",
        choices=VALIDATION_CRITERIA,
    ),
    Setting(
        "validation_grid",
        "string",
        "released",
        "Validation patches. released: as the released code, variants with a MIP term on their training "
        "grid (released_grid: an extra start where an axis is not a multiple of the patch, overhanging "
        "patches centre-padded), the others on the flush grid (torchio's); flush: the flush grid (last "
        "patch flush with the far edge) for every variant.",
        choices=VALIDATION_GRIDS,
    ),
    Setting(
        "queue_workers",
        "integer",
        8,
        "Only for the queue sampler: the DataLoader worker processes the released code reads torchio's queue "
        "through (8, its default); each pops its own copy of the queue, so patches per volume are uneven "
        "and a volume may go undrawn in an epoch. Emulated in the training process, exactly; null or 0: one "
        "queue read in order, patches_per_epoch // n_volumes from every volume. Part of the run's "
        "fingerprint, unlike num_workers.",
        minimum=0,
        nullable=True,
    ),
    Setting(
        "num_workers",
        "integer",
        None,
        "DataLoader worker processes; they persist across epochs. null: none on a CPU (the job's cores "
        "compute the network), up to 4 on a GPU (one core fewer than the job's threads), so patches are cut "
        "while the GPU computes. Results do not depend on it, so it is not part of a run's fingerprint: a "
        "run resumes under another value (docs/performance.md).",
        minimum=0,
        nullable=True,
    ),
    Setting(
        "compile",
        "boolean",
        False,
        "torch.compile the network: faster steps on a GPU, after a start-up cost of compiling each new "
        "batch shape once (seconds to minutes). Results are not bit-identical to an uncompiled run and "
        "repeated runs are not guaranteed to be; not part of the run's fingerprint, so a run resumed with it "
        "changed goes on (and says so in its log). docs/performance.md.",
    ),
    Setting(
        "alpha",
        "number",
        0.7,
        "Focal Tversky weight of false negatives.",
        minimum=0,
        maximum=1,
        target="loss.alpha",
    ),
    Setting("gamma", "number", 0.75, "Focal Tversky exponent.", exclusive_minimum=0, target="loss.gamma"),
    Setting("smooth", "number", 1.0, "Focal Tversky smoothing constant.", minimum=0, target="loss.smooth"),
    Setting(
        "level_weights",
        "numbers",
        (1.0, 0.66, 0.34),
        "Deep-supervision weights of the full, 1/2 and 1/4 resolution outputs.",
        minimum=0,
        min_items=1,
        max_items=3,
        target="loss.level_weights",
    ),
    Setting(
        "deformation_spacings",
        "integers",
        (5, 6, 7),
        "DS6 B-spline control-point spacings (voxels) drawn from.",
        minimum=1,
        min_items=1,
        target="deformation.spacings",
    ),
    Setting(
        "deformation_max_displacements",
        "numbers",
        (0.01, 0.015, 0.02, 0.025, 0.03),
        "DS6 maximum displacements (normalised grid units) drawn from.",
        exclusive_minimum=0,
        min_items=1,
        target="deformation.max_displacements",
    ),
    Setting(
        "mip_pairing",
        "string",
        "released",
        "released: the prediction's MIP is taken over another axis than the target's (the released code's "
        "defect, which produced the paper's numbers: z target vs prediction over y, x vs z, y vs x); needs a "
        "cubic patch. consistent: both over the named axis (the described method).",
        choices=("released", "consistent"),
        target="loss.mip_pairing",
    ),
    Setting(
        "baseline_scale",
        "string",
        "released",
        "Loss scale of variants without a MIP term. released: floss_weight x floss (the released total is "
        "always 0.7 floss + 0.3 mip); unit: floss. Not neutral under gradient clipping.",
        choices=("released", "unit"),
        target="loss.baseline_scale",
    ),
    Setting(
        "deformation",
        "string",
        "released",
        "DS6 field. released: one airlab-style diffeomorphic cubic B-spline field per batch, control values "
        "bounded by the drawn maximum, borders locked along the first two axes only; smooth: an independent "
        "field per sample whose peak equals the drawn maximum, every face fixed.",
        choices=("released", "smooth"),
        target="deformation.field",
    ),
    Setting(
        "deformation_label_mode",
        "string",
        "bilinear",
        "How DS6 warps labels: bilinear (released: fractional labels), nearest, or bilinear then >= 0.5.",
        choices=("bilinear", "nearest", "rebinarise"),
        target="deformation.label_mode",
    ),
    Setting(
        "consistency_target",
        "string",
        "logits",
        "What DS6 warps into its consistency target: the original branch's level-0 logits (released) or its "
        "probabilities.",
        choices=("logits", "probabilities"),
        target="deformation.consistency_target",
    ),
    Setting(
        "consistency_weight",
        "number",
        1.0,
        "Weight of DS6's consistency term (DS6: 1). Against a soft target it favours predicting vessel "
        "everywhere; short trainings (the demo) need less than 1 to avoid that collapse.",
        minimum=0,
        target="deformation.consistency_weight",
    ),
)

# Settings of the training section that are not settings of one run: they decide which runs exist.
REPLICATES = _named(
    Setting(
        "seeds",
        "integers",
        None,
        "Training seeds, each a replicate: every (variant, fold) is trained once per seed, under "
        "fold{k}/seed{s}/ when there are several, and scores are averaged over seeds per subject before any "
        "summary or test. A seed changes the training only (not the split, the phantoms or the bootstrap). "
        "null: training.seed alone (paths without a seed level). Give training.seed or training.seeds, not "
        "both.",
        minimum=0,
        min_items=1,
        nullable=True,
    ),
)

# What makes a variant: keys only a variant sets (the model and its objective), and the comparison.
VARIANT = _named(
    Setting(
        "model", "string", "unetmss", "unet: UNet3D; unetmss: UNetMSS3D (deep supervision).", choices=MODELS
    ),
    Setting(
        "mip_axis",
        "string",
        "none",
        "MIP-loss projection axis (volume axes; z = slice axis; multi = all three); none = no MIP term.",
        choices=MIP_AXES,
        target="loss.mip_axis",
    ),
    Setting(
        "mip_target",
        "string",
        "volume",
        "MIP target: crop of the whole-volume label MIP (paper) or the MIP of the label patch.",
        choices=("volume", "patch"),
        target="loss.mip_target",
    ),
    Setting(
        "deform",
        "boolean",
        False,
        "DS6 deformation-aware learning.",
    ),
    Setting(
        "floss_weight",
        "number",
        0.7,
        "Weight of the segmentation loss when a MIP term is used.",
        minimum=0,
        target="loss.floss_weight",
    ),
    Setting("mip_weight", "number", 0.3, "Weight of the MIP loss.", minimum=0, target="loss.mip_weight"),
    Setting(
        "skeleton_loss",
        "string",
        "none",
        "Continuity term of the segmentation loss, on every deep-supervision level (docs/method.md, "
        "Continuity terms). none: the Focal Tversky loss (FTL) alone. cldice: soft-clDice (Shit et al. "
        "2021), (1 - w)·FTL + w·clDice; settings cldice_weight (w), cldice_iterations, cldice_smooth. "
        "skeleton_recall: Skeleton Recall (Kirchhoff et al. 2024), FTL + w·Skeleton Recall; settings "
        "skeleton_recall_weight (w), skeleton_recall_smooth; only then does the data pipeline make each "
        "patch's skeleton tube. A term's settings are refused unless it is selected (they would do nothing); "
        "a weight of 0 computes the term but lets it count for nothing (its cost alone).",
        choices=SKELETON_LOSSES,
        target="loss.skeleton_loss",
    ),
    Setting(
        "cldice_weight",
        "number",
        0.5,
        "With skeleton_loss cldice: weight w of soft-clDice in the segmentation term (1 - w)·FTL + "
        "w·clDice (the authors' value 0.5).",
        minimum=0,
        maximum=1,
        target="loss.cldice_weight",
    ),
    Setting(
        "cldice_iterations",
        "integer",
        10,
        "With skeleton_loss cldice: soft-skeleton iterations (the released soft_cldice always runs 10); "
        "about the radius in voxels of the thickest vessel. Each costs memory for the backward pass.",
        minimum=1,
        target="loss.cldice_iterations",
    ),
    Setting(
        "cldice_smooth",
        "number",
        1.0,
        "With skeleton_loss cldice: smoothing constant of clDice's topology precision and sensitivity "
        "(released: 1).",
        exclusive_minimum=0,
        target="loss.cldice_smooth",
    ),
    Setting(
        "skeleton_recall_weight",
        "number",
        1.0,
        "With skeleton_loss skeleton_recall: weight of Skeleton Recall added to the segmentation term (the "
        "authors' value 1).",
        minimum=0,
        target="loss.skeleton_recall_weight",
    ),
    Setting(
        "skeleton_recall_smooth",
        "number",
        1e-5,
        "With skeleton_loss skeleton_recall: smoothing constant of the per-sample soft recall (the released "
        "trainer's 1e-5).",
        exclusive_minimum=0,
        target="loss.skeleton_recall_smooth",
    ),
)
# The settings of each continuity term (skeleton_loss), which have an effect only when it is selected.
SKELETON_LOSS_SETTINGS: dict[str, tuple[str, ...]] = {
    "cldice": ("cldice_weight", "cldice_iterations", "cldice_smooth"),
    "skeleton_recall": ("skeleton_recall_weight", "skeleton_recall_smooth"),
}
# Workflow keys of a variant that describe the comparison, not the training run.
COMPARISON = _named(
    Setting(
        "baseline",
        "string",
        None,
        "Variant this one is tested against (paired Wilcoxon) in the summary table.",
        nullable=True,
    ),
)
# Training settings a variant may override for itself.
VARIANT_TRAINING = (
    "sampling",
    "mip_pairing",
    "baseline_scale",
    "deformation",
    "deformation_label_mode",
    "consistency_target",
    "consistency_weight",
    "validation_criterion",
    "validation_grid",
    "queue_workers",
    "init_features",
    "activation",
    "learning_rate",
    "epochs",
)
# Settings that choose how a run executes, not what it computes: not part of its fingerprint.
EXECUTION = ("compile", "num_workers")

SYNTHETIC = _named(
    Setting(
        "n_subjects",
        "integer",
        7,
        "Number of phantom subjects (the default 7 = 2 test subjects + one per default fold); the workflow "
        "needs at least split.folds + the test subjects.",
        minimum=1,
    ),
    Setting("seed", "integer", 2020, "Seed of the phantom data set.", minimum=0),
    Setting(
        "shape",
        "triple",
        (96, 96, 64),
        "Volume shape (X, Y, Z) in voxels; Z is the slice axis. At least the training and inference patch.",
        minimum=16,
    ),
    Setting(
        "spacing_mm",
        "number",
        0.3,
        "Isotropic voxel size in mm; at least 0.001 (a smaller voxel's affine reads as singular).",
        minimum=0.001,
        flag="--spacing",
    ),
    Setting(
        "trees",
        "integer",
        6,
        "Vessel trees per phantom, each entering through a face.",
        minimum=1,
    ),
)

DATASET = _named(
    Setting(
        "name",
        "string",
        "demo",
        "Folder name of this data set under results/ and resources/ (letters, digits, _ . -, not starting "
        "with a dot, so that it cannot escape those folders).",
        schema={"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"},
    ),
    Setting(
        "source",
        "string",
        "synthetic",
        "synthetic: built-in seeded phantoms; smile_uhura: the SMILE-UHURA release as downloaded (train/, "
        "train_label/, validate/, validate_label/); local: images/<id>.nii[.gz] and labels/<id>.nii[.gz].",
        choices=("synthetic", "smile_uhura", "local"),
    ),
    Setting(
        "path",
        "string",
        None,
        "For smile_uhura and local: the data folder; null reads the SPOCKMIP_DATA environment variable.",
        nullable=True,
    ),
    Setting(
        "download",
        "boolean",
        False,
        "For smile_uhura: fetch the release from Synapse (project syn47164761) into dataset.path (or "
        "SPOCKMIP_DATA, else resources/<name>/release) when it is not there yet, with the personal access "
        "token in the SYNAPSE_AUTH_TOKEN environment variable (needs pip install 'spockmip[synapse]').",
    ),
    Setting(
        "description",
        "string",
        "",
        "What the data are, in a sentence or two; the report's landing page shows it (for source synthetic "
        "it also says that the demo trains small networks on phantoms).",
    ),
    Setting(
        "subjects",
        "string",
        (),
        "For smile_uhura and local: the subject ids (listed so that a dry run works without the data).",
        schema={
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
            "uniqueItems": True,
        },
    ),
    Setting(
        "orientation",
        "string",
        "stored",
        "Voxel order the networks see, in training, prediction and evaluation. stored: the file's own order, "
        "as the released code fed it (and so as the published weights expect); canonical: reoriented to "
        "RAS+ first (outputs are mapped back). Outputs always keep the input's affine and header.",
        choices=ORIENTATIONS,
    ),
)

SPLIT = _named(
    Setting("folds", "integer", 5, "Number of cross-validation folds.", minimum=2),
    Setting("seed", "integer", 2020, "Seed of the shuffle.", minimum=0),
    Setting(
        "test_subjects",
        "integer",
        2,
        "Held-out test set, never trained or validated on; a list of ids, or a count drawn with the seed.",
        schema={
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
            ]
        },
    ),
    Setting(
        "cv_checkpoint",
        "string",
        "final",
        "The weights that predict each fold's own validation subjects (the cross-validation table): final = "
        "the last epoch's (model/final.pt), unbiased; best = the epoch those same subjects chose "
        "(model/best.pt), optimistic. Test-set predictions and the fold ensemble always use best.pt.",
        choices=("final", "best"),
    ),
)

THRESHOLD_SCHEMA = {
    "oneOf": [{"type": "string", "enum": ["otsu"]}, {"type": "number", "minimum": 0, "maximum": 1}]
}
INFERENCE = _named(
    Setting(
        "patch_size",
        "patch",
        None,
        "Window (X, Y, Z) in voxels; each divisible by 16. null: the geometry the checkpoint records (its "
        "training patch), else 64 64 64.",
        nullable=True,
    ),
    Setting(
        "strides",
        "triple",
        None,
        "Window strides (X, Y, Z), each at most the window; overlap = patch - stride. null: the strides the "
        "checkpoint records, else 32 32 16.",
        minimum=1,
        nullable=True,
    ),
    Setting(
        "blend",
        "string",
        "average",
        "How overlapping windows are combined (average = released code).",
        choices=("average", "gaussian"),
    ),
    Setting(
        "threshold",
        "string",
        "otsu",
        "Binarisation threshold: otsu on the whole probability volume (0.5 where undefined), or a "
        "probability.",
        schema=THRESHOLD_SCHEMA,
    ),
    Setting(
        "batch_size",
        "integer",
        None,
        "Windows per forward pass; null = 4 on a CPU (the released value), 16 on a GPU.",
        minimum=1,
        nullable=True,
    ),
    Setting(
        "tta",
        "boolean",
        False,
        "Flip test-time augmentation: the mean probability over the 8 flips of the three axes (each flipped "
        "back); 8 times slower.",
    ),
    Setting(
        "compile",
        "boolean",
        False,
        "torch.compile the network for prediction: faster on a GPU after compiling once per job (seconds to "
        "minutes); probabilities are not bit-identical to an uncompiled run. docs/performance.md.",
    ),
)

EVALUATION = _named(
    Setting(
        "nsd_tolerance_mm",
        "number",
        None,
        "Normalised surface Dice tolerance in mm: a surface voxel within this distance of the other mask's "
        "surface counts as matched. null: each file's smallest voxel size (a boundary one voxel off along "
        "the finest axis still matches).",
        minimum=0,
        nullable=True,
    ),
)

STATISTICS = _named(
    Setting(
        "alpha",
        "number",
        0.05,
        "Significance level; fewer pairs than can reach it print 'n too small'.",
        schema={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
    Setting(
        "bootstrap_samples",
        "integer",
        10000,
        "Bootstrap resamples of subjects for the interval of the median difference.",
        minimum=100,
    ),
    Setting(
        "confidence",
        "number",
        0.95,
        "Coverage of that interval.",
        schema={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
    Setting("seed", "integer", 2020, "Seed of the bootstrap (tables are reproducible).", minimum=0),
    Setting(
        "metrics",
        "string",
        ("dice", "cl_dice"),
        "Metrics compared with the baseline (Holm's adjustment spans all of them).",
        schema={
            "type": "array",
            "items": {"type": "string", "enum": list(METRICS)},
            "minItems": 1,
            "uniqueItems": True,
        },
    ),
)

RESOURCE = _named(
    Setting("threads", "integer", 1, "CPU threads of the job (torch uses exactly these).", minimum=1),
    Setting("mem_mb", "integer", 4000, "Memory the job may use, in MB.", minimum=100),
    Setting("runtime", "integer", 60, "Wall-clock limit of the job, in minutes.", minimum=1),
    Setting("gpu", "integer", 0, "GPUs the job asks for (0 runs on the CPU).", minimum=0),
)
RESOURCE_STAGES = {"train": "Resources of each training job.", "predict": "Resources of each prediction job."}

PUBLISHED = _named(
    Setting(
        "repo",
        "string",
        None,
        "Hugging Face repo id (owner/name).",
        schema={"type": "string", "pattern": "^[A-Za-z0-9][\\w.-]*/[\\w.-]+$"},
    ),
    Setting(
        "revision",
        "string",
        None,
        "Commit (or tag) to pin; a branch name would let the weights change under you.",
        schema={"type": "string", "minLength": 1},
    ),
    Setting(
        "activation",
        "string",
        None,
        "Override of the activation (null = ReLU for UNet3D repos, LeakyReLU for UNetMSS3D).",
        choices=ACTIVATIONS,
        nullable=True,
    ),
    Setting(
        "variant",
        "string",
        None,
        "Our variant this model corresponds to (for reading the tables).",
        nullable=True,
    ),
)


@dataclass(frozen=True)
class Section:
    """A flat section of the workflow config: its settings and what it is for."""

    help: str
    settings: dict[str, Setting]
    sections: dict[str, Section] = field(default_factory=dict)


SECTIONS: dict[str, Section] = {
    "dataset": Section(
        "Which volumes the workflow runs on.",
        DATASET,
        {"synthetic": Section("For source synthetic: the phantom generator's settings.", SYNTHETIC)},
    ),
    "split": Section(
        "Cross-validation protocol (volumes shuffled with the seed, dealt round-robin into folds).", SPLIT
    ),
    "training": Section(
        "Training defaults shared by every variant (the released code's values unless noted).",
        {**TRAINING, **REPLICATES},
    ),
    "inference": Section("Sliding-window inference on the test subjects.", INFERENCE),
    "evaluation": Section("Scoring predictions against labels (every metric, per subject).", EVALUATION),
    "statistics": Section(
        "Paired comparisons of each variant with its baseline over subjects (cross-validation and "
        "fold-ensemble tables): Wilcoxon signed-rank, Holm-adjusted, with a bootstrap interval of the median "
        "difference.",
        STATISTICS,
    ),
}
VARIANTS_HELP = (
    "The variants to train and compare, name -> settings. Each is trained once per fold. A variant's "
    "settings override the training defaults for that variant only."
)
PUBLISHED_HELP = (
    "Published Hugging Face models to evaluate beside our own trainings, name -> repository and pinned "
    "revision. Only config.json and model.safetensors are fetched (into the HF cache; HF_HUB_OFFLINE=1 uses "
    "the cache alone); their remote code is never run. Empty: no published-weights table."
)
DEFAULT_VARIANTS = {"unet": {"model": "unet"}}
PUBLISHED_REQUIRED = ("repo", "revision")


def default(section: str, name: str) -> Any:
    """The default of ``section.name`` (``"training"``, ``"batch_size"``), as the library's dataclasses
    declare it: sequences as tuples."""
    return _lookup(section)[name].default


def _lookup(section: str) -> dict[str, Setting]:
    tables = {
        "training": {**TRAINING, **VARIANT},
        "variant": {**VARIANT, **COMPARISON},
        "resources": RESOURCE,
        "published_weights": PUBLISHED,
    }
    if section in tables:
        return tables[section]
    head, _, rest = section.partition(".")
    found = SECTIONS[head]
    return found.sections[rest].settings if rest else found.settings


def training_settings() -> dict[str, Setting]:
    """Every setting of one training run, by its flat name (the training section and a variant's keys)."""
    return {**TRAINING, **VARIANT}


# ---------------------------------------------------------------------------------------------------------
# Rules that tie settings together, and one training run's settings


def resolve_sampling(sampling: str, has_mip_term: bool) -> str:
    """The sampler a variant actually uses: ``released`` depends on whether it has a MIP term."""
    if sampling not in SAMPLINGS:
        raise SettingsError(f"sampling: {sampling!r} is not one of {', '.join(SAMPLINGS)}")
    if sampling == "released":
        return "released_grid" if has_mip_term else "queue"
    return sampling


def resolve_validation_grid(grid: str, has_mip_term: bool) -> str:
    """The grid layout a variant validates on (:data:`spockmip.data.GridLayout`): ``released`` puts the
    variants with a MIP term on the released MIP data set's grid, which the released code validated them on,
    and every other variant on the flush grid."""
    if grid not in VALIDATION_GRIDS:
        raise SettingsError(f"validation_grid: {grid!r} is not one of {', '.join(VALIDATION_GRIDS)}")
    return "released" if grid == "released" and has_mip_term else "flush"


def check_window(patch: Sequence[int], strides: Sequence[int], spell: Callable[[str], str]) -> None:
    """Strides larger than the window would leave voxels that no window covers."""
    if any(s > p for s, p in zip(strides, patch, strict=True)):
        raise SettingsError(
            f"{spell('strides')}: {list(strides)} exceed the patch {spell('patch_size')} {list(patch)}, "
            "which would leave voxels that no patch covers"
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
    check_skeleton_loss(settings, spell, given)


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


def complete_training(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Flat training settings with every missing one at its default (sequences as tuples)."""
    complete = {name: setting.default for name, setting in training_settings().items()}
    complete.update({name: tuple(v) if isinstance(v, list) else v for name, v in settings.items()})
    return complete


def nested_training(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat training settings grouped by the config object that takes them, under its field names:
    ``{"run": {...}, "loss": {...}, "deformation": {...}}`` (:class:`spockmip.training.TrainingConfig`)."""
    known = training_settings()
    groups: dict[str, dict[str, Any]] = {"run": {}, "loss": {}, "deformation": {}}
    for name, value in settings.items():
        group, _, target = (known[name].target or f"run.{name}").rpartition(".")
        groups[group or "run"][target] = tuple(value) if isinstance(value, list) else value
    return groups


def variant_settings(config: Mapping[str, Any], name: str, seed: int | None = None) -> dict[str, Any]:
    """The flat training settings of variant ``name`` of a workflow config (``training:`` and
    ``variants:``): the shared defaults overridden by the variant's own keys, less its comparison keys.

    ``seed`` chooses the replicate where ``training.seeds`` lists several; with one listed seed, that is
    the run's seed. The workflow and ``spockmip train --config`` both call this, so one settings file
    trains the same run either way.
    """
    variants = config.get("variants") or {}
    if name not in variants:
        known = ", ".join(variants) or "none"
        raise SettingsError(f"variants.{name}: no such variant (known: {known})")
    variant = {key: value for key, value in variants[name].items() if key not in COMPARISON}
    shared = dict(config.get("training") or {})
    seeds = shared.pop("seeds", None)
    if seed is not None:
        shared["seed"] = seed
    elif seeds is not None and len(seeds) == 1:
        shared["seed"] = seeds[0]
    elif seeds is not None:
        raise SettingsError(
            f"training.seeds: lists {len(seeds)} seeds and one training run takes one (the workflow trains "
            "each; spockmip train --seed chooses)"
        )
    return {**shared, **variant}


def check_replicates(given: Mapping[str, Any]) -> None:
    """The ``training`` section as its user wrote it (before the schema filled in defaults): one seed or
    a list of distinct seeds, not both."""
    seeds = given.get("seeds")
    if seeds is None:
        return
    if "seed" in given:
        raise SettingsError(
            "config training.seeds: give training.seed or training.seeds, not both (seeds lists every "
            "replicate's seed)"
        )
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise SettingsError(f"config training.seeds: {repeated[0]} is listed twice (a replicate is one seed)")


def config_key(variant: str, own: Collection[str]) -> Callable[[str], str]:
    """How a workflow config spells a training setting of ``variant`` whose own keys are ``own``: the
    variant's key where it sets one or where only a variant can (:data:`VARIANT`), else the shared
    ``training`` key."""

    def spell(name: str) -> str:
        under_variant = name in own or name in VARIANT
        return f"config variants.{variant}.{name}" if under_variant else f"config training.{name}"

    return spell


# ---------------------------------------------------------------------------------------------------------
# The workflow's config


def _non_finite(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{path}.{index}")


@dataclass(frozen=True)
class WorkflowSettings:
    """The workflow's view of a config that the schema has validated and completed with its defaults (but a
    variant's, which the schema leaves out so that each variant holds the keys written; :meth:`training`
    fills them in).

    The Snakefile and its rules read the config through this class only, and :meth:`check` applies every
    rule the schema cannot express, so a config that would fail after hours of training fails at once.
    """

    config: Mapping[str, Any]
    # The config as its user wrote it, before the schema filled in the defaults (which settings were given).
    given: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.config[name])

    @property
    def dataset(self) -> dict[str, Any]:
        return self.section("dataset")

    @property
    def dataset_name(self) -> str:
        return self.config["dataset"]["name"]

    @property
    def source(self) -> str:
        return self.config["dataset"]["source"]

    @property
    def orientation(self) -> str:
        return self.config["dataset"]["orientation"]

    @property
    def phantoms(self) -> dict[str, Any]:
        return dict(self.config["dataset"]["synthetic"])

    @property
    def variants(self) -> list[str]:
        return list(self.config["variants"])

    @property
    def baselines(self) -> dict[str, str | None]:
        return {name: variant.get("baseline") for name, variant in self.config["variants"].items()}

    @property
    def folds(self) -> int:
        return self.config["split"]["folds"]

    @property
    def split(self) -> dict[str, Any]:
        """How the subjects are dealt into the test set and the folds (what ``splits.json`` is made of):
        the ``split`` section but ``cv_checkpoint``, which chooses weights, not subjects, so that changing
        it never deals the subjects anew (nor retrains)."""
        return {key: value for key, value in self.section("split").items() if key != "cv_checkpoint"}

    @property
    def cv_checkpoint(self) -> str:
        """The checkpoint (``final`` or ``best``) that predicts each fold's validation subjects."""
        return self.config["split"]["cv_checkpoint"]

    @property
    def inference(self) -> dict[str, Any]:
        return self.section("inference")

    @property
    def nsd_tolerance_mm(self) -> float | None:
        return self.config["evaluation"]["nsd_tolerance_mm"]

    @property
    def statistics(self) -> dict[str, Any]:
        return self.section("statistics")

    @property
    def published(self) -> dict[str, dict[str, Any]]:
        return {name: dict(entry) for name, entry in self.config["published_weights"].items()}

    def resources(self, stage: str) -> dict[str, Any]:
        """``threads``, ``mem_mb``, ``runtime`` and ``gpu`` of ``stage``'s jobs (train or predict)."""
        return {**{n: s.default for n, s in RESOURCE.items()}, **self.config["resources"][stage]}

    def variant_keys(self, variant: str) -> list[str]:
        """The keys ``variant`` sets itself (the rest come from ``training`` or are defaults), for naming
        them in errors and for the rules that judge what was written: the schema gives a variant's keys no
        defaults, so that the validated config holds them as written."""
        return sorted(self.config["variants"][variant])

    @property
    def seeds(self) -> list[int]:
        """The training seeds: ``training.seeds``, else ``training.seed`` alone."""
        training = self.config["training"]
        return list(training["seeds"]) if training.get("seeds") is not None else [training["seed"]]

    def training(self, variant: str, seed: int | None = None) -> dict[str, Any]:
        """Every training setting of ``variant`` (trained with ``seed``, default the first of
        :attr:`seeds`), defaults filled in."""
        chosen = self.seeds[0] if seed is None else seed
        return complete_training(variant_settings(self.config, variant, chosen))

    def check(self) -> None:
        """Every rule between settings; the first broken one raises :class:`SettingsError` naming its key."""
        for path in _non_finite(self.config, ""):
            raise SettingsError(f"config {path}: not a finite number")
        check_replicates(self.given.get("training") or {})
        dataset = self.config["dataset"]
        if dataset["download"] and dataset["source"] != "smile_uhura":
            raise SettingsError(
                f"config dataset.download: only the smile_uhura release can be downloaded, dataset.source is "
                f"{dataset['source']}"
            )
        if dataset["source"] != "synthetic" and not dataset["subjects"]:
            raise SettingsError(
                "config dataset.subjects: must list the subject ids when dataset.source is "
                f"{dataset['source']}"
            )
        for name, baseline in self.baselines.items():
            if baseline is not None and baseline not in self.config["variants"]:
                raise SettingsError(f"config variants.{name}.baseline: {baseline!r} is not a variant")
        for name in self.variants:
            own = self.variant_keys(name)
            try:
                check_training(self.training(name), config_key(name, own), own)
            except SettingsError as error:
                raise SettingsError(f"{error} (variant {name})") from None
        inference = self.config["inference"]
        if inference["patch_size"] is not None and inference["strides"] is not None:
            check_window(inference["patch_size"], inference["strides"], lambda n: f"config inference.{n}")
        if dataset["source"] == "synthetic":
            self._check_phantom_size()
            self._check_phantom_count()

    def _check_phantom_count(self) -> None:
        """Enough phantoms for the test set and one validation subject per fold."""
        count, split = self.config["dataset"]["synthetic"]["n_subjects"], self.config["split"]
        test = (
            split["test_subjects"] if isinstance(split["test_subjects"], int) else len(split["test_subjects"])
        )
        if count < test + split["folds"]:
            raise SettingsError(
                f"config dataset.synthetic.n_subjects: {count} phantoms cannot fill {split['folds']} folds "
                f"(split.folds) and {test} test subjects (split.test_subjects)"
            )

    def _check_phantom_size(self) -> None:
        """The phantoms' size is known before any job runs; real volumes are checked when loaded."""
        shape = self.config["dataset"]["synthetic"]["shape"]
        patches = {f"variants.{name}": self.training(name)["patch_size"] for name in self.variants}
        patches["inference"] = self.config["inference"]["patch_size"]
        for where, patch in patches.items():
            key = "inference.patch_size" if where == "inference" else "training.patch_size"
            if patch is not None and any(p > s for p, s in zip(patch, shape, strict=True)):
                raise SettingsError(
                    f"config {key}: {list(patch)} is larger than the volumes {list(shape)} "
                    "(dataset.synthetic.shape)"
                )
