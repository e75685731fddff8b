"""Every setting of spockmip, in one place: name, type, default, allowed values, bounds and help.

This module holds entries and choice tuples only (no functions, no classes): the workflow's schema
(``workflow/schemas/config.schema.yaml``) is generated from :data:`SECTIONS`
(:mod:`spockmip.settings.schema`), the command line derives its options from the same entries
(:mod:`spockmip.settings.options`), the library's config dataclasses take their defaults from them
(:func:`spockmip.settings.lookup.default`), and the workflow reads its config only through
:class:`spockmip.settings.workflow.WorkflowSettings`. Adding a setting is one entry here (docs/architecture.md
shows the diff).
"""

from __future__ import annotations

from spockmip.settings.setting import Section, Setting, named

# Upper bounds of the settings that could exhaust time or memory, each at least ten times the largest value
# a shipped config uses: a typo fails at once, not after hours or at the end of the memory.
# Seeds: every generator a seed reaches accepts it (torch, numpy's SeedSequence and legacy RandomState).
MAX_SEED = 2**32 - 1
MAX_PATCH_SIDE = 1024
MAX_WIDTH = 1024
MAX_BATCH = 1024
MAX_EPOCHS = 100_000
MAX_PATCHES_PER_EPOCH = 10_000_000
MAX_WORKERS = 256
MAX_SKELETON_ITERATIONS = 1000
MAX_SUBJECTS = 10_000
MAX_TREES = 1000
MAX_FOLDS = 100
MAX_BOOTSTRAP_SAMPLES = 10_000_000
# A phantom's side, and its voxels in all (2**28 float32 voxels are 1 GiB per volume; the generator holds
# several), checked before anything is allocated.
MAX_PHANTOM_SIDE = 4096
PHANTOM_VOXEL_BUDGET = 2**28
# The released code's window: its training patch and grid strides, and the window published weights (which
# record no geometry) predict with.
RELEASED_PATCH_SIZE: tuple[int, int, int] = (64, 64, 64)
RELEASED_STRIDES: tuple[int, int, int] = (32, 32, 16)
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
MIP_PAIRINGS: tuple[str, ...] = ("released", "consistent")
BASELINE_SCALES: tuple[str, ...] = ("released", "unit")
DEFORMATIONS: tuple[str, ...] = ("released", "smooth")
LABEL_MODES: tuple[str, ...] = ("bilinear", "nearest", "rebinarise")
CONSISTENCY_TARGETS: tuple[str, ...] = ("logits", "probabilities")
MIP_TARGETS: tuple[str, ...] = ("volume", "patch")
BLENDS: tuple[str, ...] = ("average", "gaussian")
SOURCES: tuple[str, ...] = ("synthetic", "smile_uhura", "local")
CV_CHECKPOINTS: tuple[str, ...] = ("final", "best")
# The Betti matching error's protocol: the implementation holds ~1.2 kB per voxel of its box, so volumes up
# to 128³ voxels (~2.6 GiB, ~6 s on 2 cores) are scored whole, larger ones on 8 patches of 96³ (~1.2 GiB
# each) centred on label voxels.
BETTI_MATCHING_WHOLE_VOXELS = 128**3
BETTI_MATCHING_PATCH: tuple[int, int, int] = (96, 96, 96)
BETTI_MATCHING_PATCHES = 8
BETTI_MATCHING_SEED = 0
# Beyond this box the implementation needs tens of GB.
MAX_BETTI_MATCHING_VOXELS = 512**3
POSTPROCESSING_MIN_SIZES: tuple[int, ...] = (0, 10, 50, 100, 500)
# The field's tools remove components below 10 (VesselBoost) to 500 (vesselFM) voxels; a bound far above.
MAX_MIN_SIZE = 10**7
POSTPROCESSING_METRICS: tuple[str, ...] = ("dice", "cl_dice", "betti0_error")
METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "cl_dice",
    "thin_recall",
    "thin_gaps",
    "betti0_error",
    "betti1_error",
    "n_components_prediction",
    "hd95_mm",
    "assd_mm",
    "nsd",
)


SAMPLING_HELP = (
    "Training patches. released: as the released code, per variant: released_grid with a MIP term, queue "
    "without. released_grid: the released MIP data set's grid (far-edge patches overhang and are "
    "centre-padded), drawn with replacement. queue: torchio's Queue + UniformSampler, patches_per_epoch // "
    "n_volumes per volume. grid: the project's grid (last patch flush with the edge), drawn with "
    "replacement, the same for every variant. uniform: uniformly placed patches."
)

# The settings of one training run. Those a variant may set for itself are in VARIANT_TRAINING below.
TRAINING = named(
    Setting(
        "init_features",
        "integer",
        64,
        "U-Net width f (filters f·[1,2,4,8,16]; 64 = published).",
        minimum=1,
        maximum=MAX_WIDTH,
    ),
    Setting(
        "activation",
        "string",
        None,
        "Activation; null takes the published model's (ReLU for unet, LeakyReLU for unetmss).",
        choices=ACTIVATIONS,
        nullable=True,
    ),
    Setting(
        "patch_size",
        "patch",
        RELEASED_PATCH_SIZE,
        "Training patch (X, Y, Z) in voxels; each divisible by 16.",
        maximum=MAX_PATCH_SIDE,
    ),
    Setting(
        "strides",
        "triple",
        RELEASED_STRIDES,
        "Grid strides (X, Y, Z), each at most the patch; overlap = patch - stride. Also the validation grid.",
        minimum=1,
        maximum=MAX_PATCH_SIDE,
    ),
    Setting("sampling", "string", "released", SAMPLING_HELP, choices=SAMPLINGS),
    Setting("batch_size", "integer", 15, "Patches per batch.", minimum=1, maximum=MAX_BATCH),
    Setting("epochs", "integer", 50, "Training epochs.", minimum=1, maximum=MAX_EPOCHS),
    Setting(
        "patches_per_epoch",
        "integer",
        8000,
        "Patches drawn per epoch.",
        minimum=1,
        maximum=MAX_PATCHES_PER_EPOCH,
    ),
    Setting("learning_rate", "number", 1.0e-4, "Adam learning rate (no scheduler).", exclusive_minimum=0),
    Setting("gradient_clip", "number", 1.0, "Gradient-norm clipping threshold.", exclusive_minimum=0),
    Setting(
        "seed",
        "integer",
        2020,
        "Seed of initialisation, sampling and deformations.",
        minimum=0,
        maximum=MAX_SEED,
    ),
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
        maximum=MAX_WORKERS,
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
        maximum=MAX_WORKERS,
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
        choices=MIP_PAIRINGS,
        target="loss.mip_pairing",
    ),
    Setting(
        "baseline_scale",
        "string",
        "released",
        "Loss scale of variants without a MIP term. released: floss_weight x floss (the released total is "
        "always 0.7 floss + 0.3 mip); unit: floss. Not neutral under gradient clipping.",
        choices=BASELINE_SCALES,
        target="loss.baseline_scale",
    ),
    Setting(
        "deformation",
        "string",
        "released",
        "DS6 field. released: one airlab-style diffeomorphic cubic B-spline field per batch, control values "
        "bounded by the drawn maximum, borders locked along the first two axes only; smooth: an independent "
        "field per sample whose peak equals the drawn maximum, every face fixed.",
        choices=DEFORMATIONS,
        target="deformation.field",
    ),
    Setting(
        "deformation_label_mode",
        "string",
        "bilinear",
        "How DS6 warps labels: bilinear (released: fractional labels), nearest, or bilinear then >= 0.5.",
        choices=LABEL_MODES,
        target="deformation.label_mode",
    ),
    Setting(
        "consistency_target",
        "string",
        "logits",
        "What DS6 warps into its consistency target: the original branch's level-0 logits (released) or its "
        "probabilities.",
        choices=CONSISTENCY_TARGETS,
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
REPLICATES = named(
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
        maximum=MAX_SEED,
        min_items=1,
        nullable=True,
    ),
)

# What makes a variant: keys only a variant sets (the model and its objective), and the comparison.
VARIANT = named(
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
        choices=MIP_TARGETS,
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
        maximum=MAX_SKELETON_ITERATIONS,
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
COMPARISON = named(
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

SYNTHETIC = named(
    Setting(
        "n_subjects",
        "integer",
        7,
        "Number of phantom subjects (the default 7 = 2 test subjects + one per default fold); the workflow "
        "needs at least split.folds + the test subjects.",
        minimum=1,
        maximum=MAX_SUBJECTS,
    ),
    Setting("seed", "integer", 2020, "Seed of the phantom data set.", minimum=0, maximum=MAX_SEED),
    Setting(
        "shape",
        "triple",
        (96, 96, 64),
        "Volume shape (X, Y, Z) in voxels; Z is the slice axis. At least the training and inference patch.",
        minimum=16,
        maximum=MAX_PHANTOM_SIDE,
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
        maximum=MAX_TREES,
    ),
)

DATASET = named(
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
        choices=SOURCES,
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

SPLIT = named(
    Setting("folds", "integer", 5, "Number of cross-validation folds.", minimum=2, maximum=MAX_FOLDS),
    Setting("seed", "integer", 2020, "Seed of the shuffle.", minimum=0, maximum=MAX_SEED),
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
        choices=CV_CHECKPOINTS,
    ),
)

THRESHOLD_SCHEMA = {
    "oneOf": [{"type": "string", "enum": ["otsu"]}, {"type": "number", "minimum": 0, "maximum": 1}]
}
INFERENCE = named(
    Setting(
        "patch_size",
        "patch",
        None,
        "Window (X, Y, Z) in voxels; each divisible by 16. null: the geometry the checkpoint records (its "
        "training patch), else 64 64 64.",
        maximum=MAX_PATCH_SIDE,
        nullable=True,
    ),
    Setting(
        "strides",
        "triple",
        None,
        "Window strides (X, Y, Z), each at most the window; overlap = patch - stride. null: the strides the "
        "checkpoint records, else 32 32 16.",
        minimum=1,
        maximum=MAX_PATCH_SIDE,
        nullable=True,
    ),
    Setting(
        "blend",
        "string",
        "average",
        "How overlapping windows are combined (average = released code).",
        choices=BLENDS,
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
        maximum=MAX_BATCH,
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

EVALUATION = named(
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
    Setting(
        "radius_edges_mm",
        "numbers",
        None,
        "The two interior edges (mm, increasing) of the vessel-radius bins thin, medium and thick that "
        "continuity by radius is reported in (a centre-line voxel's radius: its mask's distance transform). "
        "null: 1 and 2 times each file's smallest voxel size.",
        exclusive_minimum=0,
        min_items=2,
        max_items=2,
        nullable=True,
    ),
    Setting(
        "betti_matching",
        "boolean",
        True,
        "Score the Betti matching error (dimensions 0 and 1) where its compiled implementation is installed "
        "(pip install 'spockmip[topology]'); without it the columns are left out with one log line.",
    ),
    Setting(
        "betti_matching_whole_voxels",
        "integer",
        BETTI_MATCHING_WHOLE_VOXELS,
        "Volumes of at most this many voxels get the Betti matching error whole (about 1.2 kB of memory per "
        "voxel); larger ones patch-wise.",
        minimum=1,
        maximum=MAX_BETTI_MATCHING_VOXELS,
    ),
    Setting(
        "betti_matching_patch",
        "triple",
        BETTI_MATCHING_PATCH,
        "Patch (X, Y, Z) of the patch-wise Betti matching error, in voxels; at most "
        "betti_matching_whole_voxels in all.",
        minimum=1,
        maximum=MAX_PATCH_SIDE,
    ),
    Setting(
        "betti_matching_patches",
        "integer",
        BETTI_MATCHING_PATCHES,
        "Patches per volume of the patch-wise Betti matching error (summed), centred on label voxels.",
        minimum=1,
        maximum=1000,
    ),
    Setting(
        "betti_matching_seed",
        "integer",
        BETTI_MATCHING_SEED,
        "Seed of the patch centres: the same for every prediction of a subject, so pairs stay paired.",
        minimum=0,
        maximum=MAX_SEED,
    ),
)

POSTPROCESSING = named(
    Setting(
        "min_sizes",
        "integers",
        POSTPROCESSING_MIN_SIZES,
        "Candidate minimum component sizes k (voxels): 26-connected components smaller than k are removed "
        "from a prediction. k is chosen per (variant, seed) on the cross-validation predictions (ties: the "
        "smaller k), then applied to its test and ensemble predictions; 0 removes nothing.",
        minimum=0,
        maximum=MAX_MIN_SIZE,
        min_items=1,
    ),
    Setting(
        "selection_metric",
        "string",
        "dice",
        "The cross-validation metric whose mean chooses k (the best mean wins; for betti0_error the lowest).",
        choices=POSTPROCESSING_METRICS,
    ),
    Setting(
        "region_mask",
        "boolean",
        False,
        "Also set to background every predicted voxel outside the subject's region mask (masks/<subject> "
        "beside images/ and labels/; the label is never masked). Brain masks often cut the Circle of Willis "
        "on MRA: the tables show the effect, nothing assumes it.",
    ),
)

STATISTICS = named(
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
        maximum=MAX_BOOTSTRAP_SAMPLES,
    ),
    Setting(
        "confidence",
        "number",
        0.95,
        "Coverage of that interval.",
        schema={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
    Setting(
        "seed",
        "integer",
        2020,
        "Seed of the bootstrap (tables are reproducible).",
        minimum=0,
        maximum=MAX_SEED,
    ),
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

RESOURCE = named(
    Setting("threads", "integer", 1, "CPU threads of the job (torch uses exactly these).", minimum=1),
    Setting("mem_mb", "integer", 4000, "Memory the job may use, in MB.", minimum=100),
    Setting("runtime", "integer", 60, "Wall-clock limit of the job, in minutes.", minimum=1),
    Setting("gpu", "integer", 0, "GPUs the job asks for (0 runs on the CPU).", minimum=0),
)
RESOURCE_STAGES = {"train": "Resources of each training job.", "predict": "Resources of each prediction job."}

PUBLISHED = named(
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
    "postprocessing": Section(
        "Post-processing of every variant's predictions, chosen on cross-validation and scored beside the "
        "raw predictions (its own tables and statistics family).",
        POSTPROCESSING,
    ),
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
