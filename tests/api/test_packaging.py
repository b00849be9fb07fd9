"""The wheel carries every package of the source tree (an editable install would hide a gap)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_source_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = config.get("package-dir", {})
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("edgecomplete", "tui")
        for init in (ROOT / top).rglob("__init__.py")
    }
    on_disk |= set(mapped)
    assert on_disk == listed
    assert (ROOT / mapped["edgecomplete.manifests"] / "smollm2-135m.toml").is_file()
