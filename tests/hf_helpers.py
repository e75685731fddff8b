"""Fabricated Hugging Face repos: the published layout, in a folder or in a hub cache, made by tests."""

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO_ID = "spockmip-tests/SMILEUHURA_UNetMSS3D_tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_published_folder(folder: Path, model: torch.nn.Module, architecture: str) -> Path:
    """The published repo layout: config.json with the published keys, safetensors keyed ``model.*``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": [architecture], "in_ch": 1, "out_ch": 1, "init_features": model.init_features}
    if architecture == "UNetMSS3D":
        config["output_dir"] = "/released/output"
    (folder / "config.json").write_text(json.dumps(config))
    save_file(
        {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors"
    )
    (folder / "modeling_unet.py").write_text("raise SystemExit('remote code must never run')\n")
    return folder


def write_hf_cache(
    cache: Path, model: torch.nn.Module, architecture: str = "UNetMSS3D", repo_id: str = REPO_ID
) -> Path:
    """A Hugging Face hub cache holding one repo at one commit, laid out as huggingface_hub keeps it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    staging = write_published_folder(cache / "staging" / repo_id, model, architecture)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for name in ("config.json", "model.safetensors"):
        data = (staging / name).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache
