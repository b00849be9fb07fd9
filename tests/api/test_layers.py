"""The layers' rules, checked on the source: the core never imports the UI, and faces use the
engine only through its package surface (edgecomplete.engine's exports), never its rooms."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE_ROOMS = {"engine", "events", "jobs", "kv", "llama", "local", "native", "text", "thread"}


def imports(path: Path):
    """(module, names) of every import in a file, relative ones resolved against its package."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield module, tuple(alias.name for alias in node.names)


def test_importing_edgecomplete_loads_neither_textual_nor_the_ui_nor_the_server():
    code = ("import edgecomplete, edgecomplete.cli, sys; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('textual', 'tui', 'fastapi', 'uvicorn')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_core_imports_no_ui():
    for path in (ROOT / "edgecomplete").rglob("*.py"):
        for module, _ in imports(path):
            assert module.split(".")[0] not in ("tui", "textual"), f"{path.relative_to(ROOT)} imports {module}"


def test_faces_do_not_reach_into_the_engines_rooms():
    faces = [ROOT / "edgecomplete" / "client.py", ROOT / "edgecomplete" / "cli.py",
             *(ROOT / "edgecomplete" / "server").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]
    for path in faces:
        for module, _ in imports(path):
            parts = module.split(".")
            inside = parts[:2] == ["edgecomplete", "engine"] and len(parts) > 2 and parts[2] in ENGINE_ROOMS
            assert not inside, f"{path.relative_to(ROOT)} imports {module}: use edgecomplete.engine's exports"
