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

import difflib
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from edgecomplete import CompletionRequest, InvalidRequest, Prompt, check_request, models, steering


def data_dir() -> Path:
    """The user's data folder, shared with edgecomplete's steering concepts."""
    return steering.data_dir()


def config_path() -> Path:
    if os.environ.get("EDGECOMPLETE_CONFIG"):
        return Path(os.environ["EDGECOMPLETE_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "edgecomplete" / "tui.toml"


@dataclass
class Config:
    """The user's settings. A mistake in the file never stops the app: the entry is left out and
    `problems` says, naming the file and the key, what is wrong and what is allowed (the app
    shows them)."""

    keymap: Dict[str, str] = field(default_factory=dict)
    defaults: Dict[str, Any] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    path: Optional[Path] = None

    @staticmethod
    def load(path: Optional[Path] = None) -> "Config":
        path = path or config_path()
        config = Config(path=path)
        if not path.is_file():
            return config
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            config.problems.append(f"{path}: not read ({error}); the built-in settings are used")
            return config
        for table in data:
            if table not in ("keymap", "defaults"):
                config.problems.append(f"{path}: unknown table [{table}]; allowed: [keymap], [defaults]")
        keymap, defaults = data.get("keymap", {}), data.get("defaults", {})
        for name, table in (("keymap", keymap), ("defaults", defaults)):
            if not isinstance(table, dict):
                config.problems.append(f"{path}: [{name}] must be a table")
        if isinstance(keymap, dict):
            for key, value in keymap.items():
                if isinstance(value, str) and value.strip():
                    config.keymap[key] = value
                else:
                    config.problems.append(f"{path}: [keymap] {key}: must be a string of keys, e.g. \"ctrl+j\"")
        if isinstance(defaults, dict):
            for key, value in defaults.items():
                problem = _check_default(key, value)
                if problem:
                    config.problems.append(f"{path}: [defaults] {problem}")
                else:
                    config.defaults[key] = value
        return config

    def check_keymap(self, known: Iterable[str]) -> None:
        """Leave out (and report) keymap entries that name no binding."""
        known = sorted(set(known))
        for key in list(self.keymap):
            if key not in known:
                del self.keymap[key]
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.problems.append(f"{self.path}: [keymap] {key}: no such binding{suggestion}; "
                                     f"binding ids: {', '.join(known)}")


def _check_default(key: str, value: Any) -> Optional[str]:
    """What is wrong with a [defaults] entry, or None."""
    names = [f.name for f in fields(CompletionRequest) if f.name != "prompt"]
    if key == "model":
        if not isinstance(value, str):
            return "model: must be a model name or the path of a .gguf file"
        if not models.is_gguf_path(value) and value not in models.manifests():
            return f"model: {value!r} is not a known model; known: {', '.join(sorted(models.manifests()))} (or a .gguf path)"
        return None
    if key not in names:
        hint = difflib.get_close_matches(key, names, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{key}: no such setting{suggestion}; allowed: model, {', '.join(names)}"
    try:
        check_request(CompletionRequest(prompt=Prompt.from_text(""), **{key: value}))
    except InvalidRequest as error:
        return str(error)  # names the field
    except (TypeError, ValueError) as error:
        return f"{key}: {error}"
    return None
