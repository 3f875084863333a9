"""Load a model bundle and refuse it unless every file matches the manifest."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from edge_agent.errors import ModelBundleError
from edge_agent.fsutil import atomic_write_text
from edge_agent.runtime.hashing import sha256_file
from edge_agent.runtime.manifest import MANIFEST_NAME, FileEntry, Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle: its folder, its manifest and the hash that identifies the model."""

    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def model_sha256(self) -> str:
        return self.manifest.files[self.manifest.model_file].sha256


def read_manifest(path: Path) -> Manifest:
    """Parse and validate manifest.json without checking the files it lists."""
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise ModelBundleError(f"model bundle {path}: not a directory")
    if not manifest_path.is_file():
        raise ModelBundleError(f"model bundle {path}: {MANIFEST_NAME} is missing")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelBundleError(f"{manifest_path}: not valid JSON ({e})") from e
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise ModelBundleError(f"{manifest_path}: {where}: {first['msg']}") from e


def contained(bundle_dir: Path, name: str) -> Path:
    """`bundle_dir / name`, refused unless it resolves inside the bundle (symbolic links followed).

    A manifest is data from wherever the bundle came from: it must not make the agent read, hash or
    load a file elsewhere on the box (an absolute path, `..`, or a link that points out).
    """
    root = bundle_dir.resolve()
    candidate = bundle_dir / name
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelBundleError(f"model bundle {bundle_dir}: file {name!r} in the manifest is not inside the bundle")
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise ModelBundleError(
            f"model bundle {bundle_dir}: file {name!r} in the manifest resolves to {resolved}, outside the bundle"
        )
    return candidate


def verify_file(bundle_dir: Path, name: str, entry: FileEntry) -> None:
    file_path = contained(bundle_dir, name)
    if not file_path.is_file():
        raise ModelBundleError(f"model bundle {bundle_dir}: file {name} listed in the manifest is missing")
    size = file_path.stat().st_size
    if size != entry.bytes:
        raise ModelBundleError(
            f"model bundle {bundle_dir}: {name} is {size} bytes, the manifest says {entry.bytes} "
            "(truncated or replaced)"
        )
    actual = sha256_file(file_path)
    if actual != entry.sha256:
        raise ModelBundleError(
            f"model bundle {bundle_dir}: {name} sha256 {actual[:12]}… does not match the manifest's "
            f"{entry.sha256[:12]}… (tampered or corrupted)"
        )


def load_bundle(path: str | Path) -> ModelBundle:
    """Read the manifest and verify the size and sha256 of every listed file."""
    bundle_dir = Path(path).expanduser()
    manifest = read_manifest(bundle_dir)
    # model_file and every engine are keys of `files` (the manifest model checks), so this covers them.
    for name, entry in manifest.files.items():
        verify_file(bundle_dir, name, entry)
    log.debug("bundle %s verified (%d files)", bundle_dir, len(manifest.files))
    return ModelBundle(bundle_dir, manifest)


def write_manifest(bundle_dir: Path, manifest: Manifest) -> None:
    """Atomic: a power cut while an engine is registered leaves the previous manifest, not half of one."""
    atomic_write_text(bundle_dir / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
