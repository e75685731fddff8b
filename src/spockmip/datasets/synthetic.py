"""Seeded TOF-MRA-like phantoms with exact vessel labels: the project's built-in demo dataset.

Real 7T TOF-MRA data cannot ship with the project, yet the workflow (training, prediction, evaluation)
must run end to end anywhere. The phantoms imitate the properties that make the task hard, so that a
network trained on them faces the same failure modes as on real scans:

* a sparse foreground (vessels are a few percent of voxels), so losses and metrics are dominated by
  class imbalance;
* branching, tortuous trees whose radii shrink down to about one voxel, the thin vessels that
  patch-based networks break into fragments and that the MIP loss is meant to recover;
* partial volume at vessel walls, a textured background, a smooth multiplicative bias field and Rician
  noise (the magnitude of complex Gaussian noise), so intensity alone is not a perfect classifier.

Geometry is built in continuous voxel coordinates (voxel centres at integer positions). Each vessel is a
polyline of centre-line points sampled every half voxel with a radius per point; it is rasterised by
visiting only the voxels near the centre-line, so the cost scales with vessel length rather than with
the volume. A voxel's vessel coverage is the largest ``clip(r + 0.5 - d, 0, 1)`` over centre-line points
of radius ``r`` at distance ``d``, a one-voxel linear ramp standing in for the fraction of the voxel
inside the tube; the label is ``coverage >= 0.5``, i.e. the voxel centre lies within some ball ``d <= r``.

Files are deterministic: the same seed and config give byte-identical ``.nii.gz`` files (with the same
numpy, scipy and nibabel versions), because the gzip stream is written with ``mtime=0`` and no file name;
nibabel's own gzip writer stamps the current time into the gzip header.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from spockmip.errors import SettingsError
from spockmip.files.outputs import atomic_path
from spockmip.files.volumes import SINGULAR_DETERMINANT
from spockmip.settings.lookup import default

# Consecutive centre-line points are this far apart (voxels). Half a voxel keeps the nearest voxels of
# consecutive points 26-adjacent, so every rasterised vessel is 26-connected.
_STEP_VOX = 0.5
# A centre-line point's nearest voxel centre is at most sqrt(3)/2 away; radii at least this large put it
# inside the label, which is what makes the connectivity guarantee above hold.
_MIN_CONNECTED_RADIUS = math.sqrt(3.0) / 2.0
# The smallest side the tree growth can use: the thickest roots plus room to branch.
MIN_SIDE = 16
# Rasterisation works on chunks of (points x neighbourhood offsets) of at most this many elements, which
# bounds the memory used on large volumes.
_RASTER_CHUNK = 2_000_000
# Branches grown per root even when the roots alone fill the vessel-volume budget.
_MIN_BRANCHES_PER_ROOT = 4
# Vessels thinner than this radius (voxels) count as thin: a cross-section about three voxels wide.
THIN_RADIUS_VOX = 1.5
# Noisy float images barely compress at any level, so the fastest level is used; labels still shrink ~50x.
_GZIP_LEVEL = 1


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that shapes a phantom except the seed.

    Lengths of the geometry (radii) are in voxels, not millimetres, because what matters for
    segmentation is how many voxels a vessel spans; ``spacing_mm`` only sets the affine written to the
    NIfTI files.
    """

    shape: tuple[int, int, int] = default("dataset.synthetic", "shape")
    spacing_mm: tuple[float, float, float] = (default("dataset.synthetic", "spacing_mm"),) * 3
    # Trees entering the volume through its faces; each is one connected component of the label. Six
    # spread vessels over the whole of a small volume, as in a brain, where vessels are everywhere: with
    # three, a tenth of the 32³ windows of a 64×64×48 phantom held no vessel, and a window divided by its
    # own maximum (as the published models expect) turns such background into bright noise.
    n_roots: int = default("dataset.synthetic", "trees")
    # Branching generations below a root (root = generation 0).
    max_depth: int = 5
    # Radius of the roots where they enter, drawn uniformly from this range (voxels). None picks
    # (2, 3) voxels, scaled up to 2.5x for volumes whose smallest side exceeds 64 voxels: a larger field
    # of view at the same resolution takes in larger arteries.
    root_radius_vox: tuple[float, float] | None = None
    # Thinnest vessels (voxels); at least sqrt(3)/2 so that thin vessels stay connected.
    min_radius_vox: float = 1.0
    # Branches are added until the estimated vessel volume reaches this fraction of the voxels.
    vessel_fraction: float = 0.015
    # Amplitude of the random bending of centre-lines (0 = straight).
    tortuosity: float = 0.9
    # Standard deviation of each of the two Gaussian channels of the Rician noise (vessel signal ~ 1).
    noise_std: float = 0.045
    # The multiplicative bias field spans roughly exp(+-bias_strength).
    bias_strength: float = 0.3
    # Obliquity of the slab about the x axis, as TOF slabs are usually tilted (degrees).
    tilt_deg: float = 10.0
    # World position (mm, RAS) of the volume centre, so the affine has a realistic origin offset.
    centre_mm: tuple[float, float, float] = (2.0, -18.0, 12.0)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(s) != s for s in self.shape):
            raise SettingsError(f"shape must be three integers, got {self.shape!r}")
        # Normalised to plain tuples so configs compare and hash alike whatever sequence was passed.
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if any(s < MIN_SIDE for s in self.shape):
            raise SettingsError(
                f"every side of shape must be at least {MIN_SIDE} voxels, got {tuple(self.shape)}"
            )
        if len(self.spacing_mm) != 3 or not all(math.isfinite(s) and s > 0 for s in self.spacing_mm):
            raise SettingsError(f"spacing_mm must be three positive numbers, got {self.spacing_mm!r}")
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        self._check_affine()
        if self.n_roots < 1:
            raise SettingsError(f"n_roots must be at least 1, got {self.n_roots}")
        if self.max_depth < 0:
            raise SettingsError(f"max_depth must be non-negative, got {self.max_depth}")
        if self.min_radius_vox < _MIN_CONNECTED_RADIUS:
            raise SettingsError(
                f"min_radius_vox must be at least {_MIN_CONNECTED_RADIUS:.3f} (sqrt(3)/2) so vessels stay "
                f"connected, got {self.min_radius_vox}"
            )
        if self.root_radius_vox is None:
            scale = min(max(min(self.shape) / 64.0, 1.0), 2.5)
            object.__setattr__(self, "root_radius_vox", (2.0 * scale, 3.0 * scale))
        low, high = self.root_radius_vox
        if not self.min_radius_vox <= low <= high:
            raise SettingsError(
                f"root_radius_vox must satisfy min_radius_vox <= low <= high, got {self.root_radius_vox}"
            )
        if 4 * high + 4 > min(self.shape):
            raise SettingsError(
                f"shape {tuple(self.shape)} is too small for roots of radius {high} voxels "
                f"(every side must be at least {math.ceil(4 * high + 4)})"
            )
        if not 0.0 < self.vessel_fraction < 0.25:
            raise SettingsError(f"vessel_fraction must be in (0, 0.25), got {self.vessel_fraction}")
        for name in ("tortuosity", "noise_std", "bias_strength"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SettingsError(f"{name} must be a non-negative number, got {value}")

    def _check_affine(self) -> None:
        """Refuse a spacing whose affine spockmip could not read back: voxels smaller than
        :data:`spockmip.files.volumes.SINGULAR_DETERMINANT` mm³ (``load_nifti`` refuses such an affine as
        singular; isotropic, a spacing under 1e-3 mm) or entries beyond the float32 range of a NIfTI
        header."""
        affine = phantom_affine(self.shape, self.spacing_mm, self.tilt_deg, self.centre_mm)
        volume = math.prod(self.spacing_mm)
        if volume < SINGULAR_DETERMINANT:
            raise SettingsError(
                f"spacing_mm must give voxels of at least {SINGULAR_DETERMINANT:g} mm³ (spockmip reads a "
                f"smaller voxel's affine as singular), got {self.spacing_mm!r}: {volume:.3g} mm³"
            )
        if not np.all(np.abs(affine) <= np.finfo(np.float32).max):
            raise SettingsError(
                f"spacing_mm {self.spacing_mm!r} with centre_mm {self.centre_mm!r} gives an affine beyond "
                "the float32 range a NIfTI header stores"
            )


@dataclass(frozen=True, eq=False)
class Phantom:
    """One generated subject: a float32 image, its uint8 {0, 1} vessel label and their shared affine."""

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    seed: int
    config: PhantomConfig = field(repr=False)
    # Every centre-line point (N, 3), in voxel coordinates, and its radius (N,) in voxels; points are half a
    # voxel apart, so counting points measures length.
    centreline: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 3)))
    radii: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def vessel_fraction(self) -> float:
        """Fraction of voxels labelled as vessel."""
        return float(self.label.mean())

    def thin_vessel_shares(self, max_radius: float = THIN_RADIUS_VOX) -> tuple[float, float]:
        """The share of thin vessels (radius below ``max_radius`` voxels) in the tree's centre-line length
        and in the labelled voxels, each voxel counted with its nearest centre-line point.

        The MIP loss is about the continuity of thin vessels, so a phantom whose label is almost all thick
        vessel would not test it; this is the number that says it does.
        """
        if not len(self.radii) or not self.label.any():
            return 0.0, 0.0
        thin = self.radii < max_radius
        _, nearest = cKDTree(self.centreline).query(np.argwhere(self.label))
        return float(thin.mean()), float(thin[nearest].mean())


@dataclass
class _Segment:
    """One vessel: centre-line points (N, 3), radii (N,), tree generation and flow brightness."""

    points: np.ndarray
    radii: np.ndarray
    depth: int
    brightness: float


def phantom_affine(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    tilt_deg: float,
    centre_mm: tuple[float, float, float],
) -> np.ndarray:
    """Voxel-to-world (RAS, mm) affine: scaled, tilted about x, with the volume centre at ``centre_mm``."""
    angle = math.radians(tilt_deg)
    rotation = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, math.cos(angle), -math.sin(angle)],
            [0.0, math.sin(angle), math.cos(angle)],
        ]
    )
    linear = rotation @ np.diag(np.asarray(spacing_mm, dtype=float))
    centre_vox = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = np.asarray(centre_mm, dtype=float) - linear @ centre_vox
    return affine


def subject_id(index: int) -> str:
    """Name of the ``index``-th phantom subject."""
    return f"phantom{index:03d}"


def subject_seed(seed: int, index: int) -> int:
    """Seed of subject ``index`` of a dataset seeded with ``seed``.

    Derived through ``SeedSequence`` spawn keys, so a subject is the same whether 1 or 100 subjects are
    generated, and subjects of one dataset are statistically independent.
    """
    words = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 32 | int(words[1])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True)


def _smooth_noise(rng: np.random.Generator, n: int, correlation_steps: float) -> np.ndarray:
    """(n, 3) Gaussian noise smoothed along the first axis, rescaled to unit standard deviation."""
    sigma = max(correlation_steps, 0.5)
    noise = ndimage.gaussian_filter1d(rng.standard_normal((n, 3)), sigma, axis=0, mode="reflect")
    # Variance of unit white noise after a Gaussian filter of width sigma is 1 / (2 sqrt(pi) sigma).
    return noise * math.sqrt(2.0 * math.sqrt(math.pi) * sigma)


def _walk(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    radius: float,
    tortuosity: float,
    shape: np.ndarray,
) -> np.ndarray:
    """Centre-line points of a smooth random curve from ``start``, cut where it leaves the volume.

    The tangent is the initial direction plus two smooth noise processes: a short-range wiggle (scaled
    with the radius, since thin vessels are more tortuous at small scales) and a long-range bend that
    lets vessels arc away from their initial heading.
    """
    n = max(int(length / _STEP_VOX), 2)
    wiggle = _smooth_noise(rng, n, (3.0 + 2.5 * radius) / _STEP_VOX)
    bend = _smooth_noise(rng, n, max(length / 4.0, 6.0) / _STEP_VOX)
    tangents = _unit(direction + tortuosity * (0.45 * wiggle + 0.7 * bend))
    points = start + _STEP_VOX * np.cumsum(tangents, axis=0)
    points = np.concatenate([start[None], points])
    inside = np.all((points >= -0.5) & (points <= shape - 0.5), axis=1)
    stop = len(points) if inside.all() else int(np.argmin(inside))
    return points[:stop]


def _random_perpendicular(rng: np.random.Generator, vector: np.ndarray) -> np.ndarray:
    while True:
        candidate = rng.standard_normal(3)
        candidate -= candidate.dot(vector) * vector
        norm = np.linalg.norm(candidate)
        if norm > 1e-6:
            return candidate / norm


def _plant_root(rng: np.random.Generator, config: PhantomConfig, shape: np.ndarray) -> _Segment | None:
    """A root vessel entering through a face chosen with probability proportional to its area."""
    areas = np.array([shape[1] * shape[2], shape[0] * shape[2], shape[0] * shape[1]], dtype=float)
    axis = int(rng.choice(3, p=areas / areas.sum()))
    side = int(rng.integers(2))
    radius = float(rng.uniform(*config.root_radius_vox))
    start = rng.uniform(0.2, 0.8, size=3) * (shape - 1)
    start[axis] = 0.0 if side == 0 else shape[axis] - 1.0
    inward = np.zeros(3)
    inward[axis] = 1.0 if side == 0 else -1.0
    direction = _unit(inward + 0.5 * rng.standard_normal(3))
    if direction[axis] * inward[axis] < 0.3:
        direction = _unit(direction + inward)
    points = _walk(rng, start, direction, 2.0 * float(shape.max()), radius, config.tortuosity, shape)
    if len(points) < 8:
        return None
    return _Segment(points, _taper(radius, len(points), config), 0, float(rng.uniform(0.9, 1.05)))


def _taper(radius: float, n: int, config: PhantomConfig) -> np.ndarray:
    """Radii along a segment: shrinking by a quarter from start to end, never below the minimum."""
    return np.maximum(radius * np.linspace(1.0, 0.75, n), config.min_radius_vox)


def _branch(
    rng: np.random.Generator, parent: _Segment, config: PhantomConfig, shape: np.ndarray
) -> _Segment | None:
    """A child vessel leaving ``parent`` at a random point, thinner and at an angle to it."""
    n = len(parent.points)
    if n < 8:
        return None
    index = int(rng.integers(3, n - 3))
    tangent = _unit(parent.points[index + 2] - parent.points[index - 2])
    angle = math.radians(rng.uniform(30.0, 80.0))
    direction = math.cos(angle) * tangent + math.sin(angle) * _random_perpendicular(rng, tangent)
    radius = max(float(parent.radii[index]) * rng.uniform(0.4, 0.75), config.min_radius_vox)
    scale = (radius / config.root_radius_vox[1]) ** 0.3
    length = float(rng.uniform(0.4, 1.0)) * float(shape.mean()) * scale
    points = _walk(rng, parent.points[index], direction, length, radius, config.tortuosity, shape)
    if len(points) < 6:
        return None
    brightness = parent.brightness * float(rng.uniform(0.88, 1.0))
    return _Segment(points, _taper(radius, len(points), config), parent.depth + 1, brightness)


def _grow_tree(rng: np.random.Generator, config: PhantomConfig) -> list[_Segment]:
    """Roots, then branches on random parents until the vessel-volume budget is spent.

    Parents are drawn with probability proportional to length times mean radius, so thick, long vessels
    carry most branches, as in real arterial trees. Growing to a volume budget (rather than a fixed
    number of generations) keeps the vessel fraction similar for any volume size. A few branches per root
    are grown even past the budget, since in small volumes the roots alone may fill it and thin vessels
    must always be present.
    """
    shape = np.asarray(config.shape, dtype=float)
    budget = config.vessel_fraction * float(np.prod(shape))
    segments: list[_Segment] = []
    volume = 0.0
    attempts = 0
    while len(segments) < config.n_roots and attempts < 100 * config.n_roots:
        attempts += 1
        root = _plant_root(rng, config, shape)
        if root is not None:
            segments.append(root)
            volume += _STEP_VOX * math.pi * float(np.sum(root.radii**2))
    weights: list[float] = [len(s.points) * float(s.radii.mean()) for s in segments]
    max_attempts = 20 * int(budget / 50.0) + 200
    min_segments = len(segments) * (1 + _MIN_BRANCHES_PER_ROOT)
    attempts = 0
    while (volume < budget or len(segments) < min_segments) and attempts < max_attempts:
        attempts += 1
        eligible = np.array(
            [w if s.depth < config.max_depth else 0.0 for s, w in zip(segments, weights, strict=True)]
        )
        if eligible.sum() <= 0:
            break
        parent = segments[int(rng.choice(len(segments), p=eligible / eligible.sum()))]
        child = _branch(rng, parent, config, shape)
        if child is None:
            continue
        segments.append(child)
        weights.append(len(child.points) * float(child.radii.mean()))
        volume += _STEP_VOX * math.pi * float(np.sum(child.radii**2))
    if not segments:
        raise RuntimeError(f"no vessel could be planted in a volume of shape {config.shape}")
    return segments


def _rasterise(segments: list[_Segment], shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Coverage in [0, 1] and brightness-weighted coverage of the tubes around all centre-lines.

    Points are grouped by the integer reach of their tube so that one offset stencil serves a whole
    group; each voxel keeps the maximum over the points that reach it.
    """
    points = np.concatenate([s.points for s in segments])
    radii = np.concatenate([s.radii for s in segments])
    brightness = np.concatenate([np.full(len(s.points), s.brightness) for s in segments])
    reach = np.ceil(radii + 0.5).astype(int)
    dims = np.asarray(shape)
    coverage = np.zeros(int(np.prod(dims)), dtype=np.float32)
    signal = np.zeros_like(coverage)
    for r in np.unique(reach):
        grid = np.arange(-r, r + 1)
        offsets = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
        offsets = offsets[np.linalg.norm(offsets, axis=1) <= r + 1.0]
        members = np.flatnonzero(reach == r)
        chunk = max(_RASTER_CHUNK // len(offsets), 1)
        for begin in range(0, len(members), chunk):
            sel = members[begin : begin + chunk]
            centres = points[sel]
            voxels = np.rint(centres).astype(np.int64)[:, None, :] + offsets[None]
            distance = np.linalg.norm(voxels - centres[:, None, :], axis=-1)
            cover = np.clip(radii[sel, None] + 0.5 - distance, 0.0, 1.0)
            valid = (cover > 0) & np.all((voxels >= 0) & (voxels < dims), axis=-1)
            flat = np.ravel_multi_index(tuple(voxels[valid].T), shape)
            values = cover[valid].astype(np.float32)
            np.maximum.at(coverage, flat, values)
            np.maximum.at(signal, flat, values * np.broadcast_to(brightness[sel, None], cover.shape)[valid])
    return coverage.reshape(shape), signal.reshape(shape)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], sigma: float) -> np.ndarray:
    """Smooth Gaussian random field with unit standard deviation and correlation length ~``sigma``.

    Large-scale fields are drawn on a coarse grid and interpolated up, which costs a fraction of
    filtering at full resolution and looks the same.
    """
    factor = max(int(sigma // 3), 1)
    coarse_shape = shape if factor == 1 else tuple(s // factor + 2 for s in shape)
    values = ndimage.gaussian_filter(
        rng.standard_normal(coarse_shape, dtype=np.float32), sigma / factor, mode="wrap"
    )
    if factor > 1:
        values = ndimage.zoom(
            values, [s / c for s, c in zip(shape, coarse_shape, strict=True)], order=1, mode="nearest"
        )
    values = values - values.mean()
    return (values / max(float(values.std()), 1e-12)).astype(np.float32)


def _background(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Tissue-like background: two soft tissue classes in patches plus a fine texture."""
    tissue = np.tanh(2.0 * _smooth_field(rng, shape, 7.0))
    texture = _smooth_field(rng, shape, 1.2)
    return (0.2 + 0.05 * tissue + 0.02 * texture).astype(np.float32)


def _bias_field(rng: np.random.Generator, shape: tuple[int, int, int], strength: float) -> np.ndarray:
    """exp(strength * p) for a random quadratic p over the volume scaled to [-1, 1], like coil shading."""
    axes = [np.linspace(-1.0, 1.0, s, dtype=np.float32) for s in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
    coefficients = rng.normal(0.0, 1.0, size=len(terms))
    poly = sum(
        (float(c) * t for c, t in zip(coefficients, terms, strict=True)), np.zeros(shape, dtype=np.float32)
    )
    poly /= max(float(np.abs(poly).max()), 1e-12)
    return np.exp(strength * poly).astype(np.float32)


def generate_phantom(seed: int, config: PhantomConfig | None = None) -> Phantom:
    """Generate one phantom; everything random is drawn from ``numpy.random.default_rng(seed)``."""
    if config is None:
        config = PhantomConfig()
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in config.shape)
    segments = _grow_tree(rng, config)
    coverage, signal = _rasterise(segments, shape)
    label = (coverage >= 0.5).astype(np.uint8)
    clean = _background(rng, shape) * (1.0 - coverage) + signal
    # A slight blur stands in for the point-spread function; it dims the thinnest vessels as in real data.
    clean = ndimage.gaussian_filter(clean, 0.6)
    clean *= _bias_field(rng, shape, config.bias_strength)
    real = clean + config.noise_std * rng.standard_normal(shape, dtype=np.float32)
    imaginary = config.noise_std * rng.standard_normal(shape, dtype=np.float32)
    image = np.hypot(real, imaginary).astype(np.float32)
    affine = phantom_affine(shape, config.spacing_mm, config.tilt_deg, config.centre_mm)
    return Phantom(
        image=image,
        label=label,
        affine=affine,
        seed=seed,
        config=config,
        centreline=np.concatenate([s.points for s in segments]),
        radii=np.concatenate([s.radii for s in segments]),
    )


def _nifti_bytes(data: np.ndarray, affine: np.ndarray, description: str, is_label: bool) -> bytes:
    image = nib.Nifti1Image(data, affine)
    header = image.header
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units("mm", "sec")
    header["descrip"] = description.encode("ascii")[:79]
    if is_label:
        header.set_intent("label")
    # Code 1 (scanner anatomical) on both: readers that prefer either form get the same geometry.
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=_GZIP_LEVEL, mtime=0)


def _write_bytes(path: Path, payload: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(payload)


def write_phantom(
    phantom: Phantom, image_path: str | os.PathLike[str], label_path: str | os.PathLike[str]
) -> None:
    """Write the image (float32) and label (uint8) as deterministic gzipped NIfTI-1 files."""
    description = f"spockmip phantom seed={phantom.seed}"
    _write_bytes(Path(image_path), _nifti_bytes(phantom.image, phantom.affine, description, is_label=False))
    _write_bytes(Path(label_path), _nifti_bytes(phantom.label, phantom.affine, description, is_label=True))


def describe(phantom: Phantom) -> str:
    """One line on what makes a phantom the paper's problem: how sparse the vessels are, how many thin."""
    length, voxels = phantom.thin_vessel_shares()
    return (
        f"vessels {100 * phantom.vessel_fraction:.1f}% of voxels; thin vessels (radius < {THIN_RADIUS_VOX:g} "
        f"voxels) {100 * length:.0f}% of the centre-line length, {100 * voxels:.0f}% of the vessel voxels"
    )


def write_phantom_dataset(
    outdir: str | os.PathLike[str],
    n_subjects: int,
    seed: int,
    config: PhantomConfig | None = None,
    report: Callable[[str, Phantom], None] | None = None,
) -> list[str]:
    """Write ``outdir/images/<id>.nii.gz`` and ``outdir/labels/<id>.nii.gz`` for ``n_subjects`` phantoms.

    The dataset is assembled in a hidden sibling directory and renamed into place at the end, so a
    failure or interruption leaves no partial dataset behind. ``outdir`` must not exist or be empty.
    ``report`` is called with each subject id and phantom once written. Returns the subject ids in order.
    """
    if config is None:
        config = PhantomConfig()
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1, got {n_subjects}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    target = Path(outdir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} already exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"
    staging.mkdir()
    try:
        (staging / "images").mkdir()
        (staging / "labels").mkdir()
        subjects = []
        for index in range(n_subjects):
            subject = subject_id(index)
            phantom = generate_phantom(subject_seed(seed, index), config)
            write_phantom(
                phantom, staging / "images" / f"{subject}.nii.gz", staging / "labels" / f"{subject}.nii.gz"
            )
            subjects.append(subject)
            if report is not None:
                report(subject, phantom)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return subjects
