"""Where the terminal UI keeps its things, and its user configuration.

- data: $EDGECOMPLETE_DATA, else $XDG_DATA_HOME/edgecomplete, else ~/.local/share/edgecomplete
  (the SQLite store of conversations, playground sessions and presets; exports).
- config: $EDGECOMPLETE_CONFIG, else $XDG_CONFIG_HOME/edgecomplete/tui.toml, e.g.

      [keymap]            # binding id = keys (comma-separated alternatives)
      send = "enter"
      newline = "ctrl+j,shift+enter"
      cancel = "escape"

      [defaults]
      model = "smollm2-135m"
      maximum_tokens = 512
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional


def data_dir() -> Path:
    if os.environ.get("EDGECOMPLETE_DATA"):
        return Path(os.environ["EDGECOMPLETE_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "edgecomplete"


def config_path() -> Path:
    if os.environ.get("EDGECOMPLETE_CONFIG"):
        return Path(os.environ["EDGECOMPLETE_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "edgecomplete" / "tui.toml"


@dataclass
class Config:
    keymap: Dict[str, str] = field(default_factory=dict)
    defaults: Dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def load(path: Optional[Path] = None) -> "Config":
        path = path or config_path()
        if not path.is_file():
            return Config()
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        keymap = data.get("keymap", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in keymap.items()):
            raise ValueError(f"{path}: [keymap] maps binding ids to key strings")
        return Config(keymap=dict(keymap), defaults=dict(data.get("defaults", {})))
