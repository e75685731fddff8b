"""A fabricated SMILE-UHURA release (the real folder names and file extensions) and a config that reads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

RELEASE_SUBJECTS = {"sub001": "train", "sub002": "train", "sub005": "train", "sub017": "validate"}


def make_release(phantom_dir: Path, root: Path) -> Path:
    """train/ + train_label/ + validate/ + validate_label/; images .nii.gz, labels .nii, as released."""
    phantoms = sorted((phantom_dir / "images").glob("*.nii.gz"))
    for (subject, part), phantom in zip(RELEASE_SUBJECTS.items(), phantoms, strict=True):
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / f"{part}_label").mkdir(parents=True, exist_ok=True)
        shutil.copy(phantom, root / part / f"{subject}.nii.gz")
        label = nib.load(phantom_dir / "labels" / phantom.name)
        nib.save(
            nib.Nifti1Image(np.asanyarray(label.dataobj), label.affine, label.header),
            root / f"{part}_label" / f"{subject}.nii",
        )
    return root


RELEASE_CONFIG = {
    "dataset": {"name": "uhura", "source": "smile_uhura", "path": None, "subjects": list(RELEASE_SUBJECTS)},
    "split": {"folds": 2, "seed": 1, "test_subjects": ["sub017"]},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 2,
                 "epochs": 1, "patches_per_epoch": 4},
    "variants": {"unet_mip": {"model": "unet", "mip_axis": "z"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1}, "predict": {"threads": 1}},
}  # fmt: skip


# Stand-ins for the synapseclient distribution's two packages. Put first on the import path, they are what
# spockmip.datasets.download imports: they contact no server, copy a fabricated release from a local folder
# where the download would go, and record each call (the token only as a hash) in calls.jsonl beside them.
STAND_IN_SYNAPSECLIENT = '''"""Stand-in for synapseclient (spockmip tests): it contacts no server."""
import hashlib
import json
from pathlib import Path

SETTINGS = json.loads((Path(__file__).parents[1] / "stand_in.json").read_text())


class Synapse:
    def login(self, authToken, silent=False):
        self.token = authToken
        self.token_sha256 = hashlib.sha256(authToken.encode()).hexdigest()
'''

STAND_IN_SYNAPSEUTILS = '''"""Stand-in for synapseutils (spockmip tests): copies a local folder."""
import json
import shutil
from pathlib import Path

import synapseclient


def syncFromSynapse(syn, entity, path=None, manifest="all"):
    settings = synapseclient.SETTINGS
    call = {"entity": entity, "path": path, "manifest": manifest, "token_sha256": syn.token_sha256}
    with open(settings["calls"], "a") as calls:
        calls.write(json.dumps(call) + "\\n")
    source = Path(settings["release"])
    for count, file in enumerate(sorted(p for p in source.rglob("*") if p.is_file())):
        if count == settings["fail_after"]:
            # An error that carries the token: spockmip must never pass it on.
            raise ConnectionError(f"connection reset by peer (Authorization: Bearer {syn.token})")
        target = Path(path) / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
'''


# The token the tests hand the stand-in; it must appear in nothing spockmip writes or says.
TOKEN = "test-token-7f3a9c"


def recorded_calls(record: Path) -> list[dict]:
    """The calls the stand-in recorded in ``record`` (the file :func:`write_synapse_stand_in` returns)."""
    return [json.loads(line) for line in record.read_text().splitlines()]


def write_synapse_stand_in(folder: Path, release: Path, fail_after: int | None = None) -> Path:
    """The stand-in packages in ``folder``, serving ``release`` (failing after ``fail_after`` files when
    given); returns the file that records each call, which only the stand-in writes."""
    for package, source in (
        ("synapseclient", STAND_IN_SYNAPSECLIENT),
        ("synapseutils", STAND_IN_SYNAPSEUTILS),
    ):
        (folder / package).mkdir(parents=True)
        (folder / package / "__init__.py").write_text(source)
    calls = folder / "calls.jsonl"
    settings = {"release": str(release), "calls": str(calls), "fail_after": fail_after}
    (folder / "stand_in.json").write_text(json.dumps(settings))
    return calls
