"""What the user can ask for, as data: the app's key bindings (each with an id, so the keys can be
remapped from the config file's [keymap]), the command palette's commands, and key hints that
show the keys as the keymap has them."""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Tuple

from textual.binding import Binding
from textual.screen import Screen

from . import screens
from .screens.steering_picker import PairsArea
from .widgets import ChatInput, PlaygroundBuffer, TokenView

# No binding is a priority one: a priority binding acts as its key arrives, before keys typed
# ahead of it have reached the focused input (the playground buffer binds f5-f7 itself, over
# TextArea's own f6 and f7).
APP_BINDINGS: List[Binding] = [
    Binding("escape", "cancel", "stop", show=False, id="cancel"),
    Binding("ctrl+r", "view('regenerate')", "regenerate", show=False, id="regenerate"),
    Binding("f4", "view('edit_last_user_message')", "edit last", show=False, id="edit"),
    Binding("f5", "view('generate')", "generate", show=False, id="generate"),
    Binding("f6", "view('accept')", "accept", show=False, id="accept"),
    Binding("f7", "view('reject')", "reject", show=False, id="reject"),
    Binding("ctrl+l", "inspect", "tokens", show=False, id="inspect"),
    Binding("ctrl+up", "view('choose', -1)", "previous candidate", show=False, id="choose_previous"),
    Binding("ctrl+down", "view('choose', 1)", "next candidate", show=False, id="choose_next"),
    Binding("ctrl+t", "toggle_params", "params", id="toggle_params"),
    Binding("f2", "models", "models", id="models"),
    Binding("f9", "steering", "steering", id="steering"),
    Binding("f10", "view('attach_image')", "image", show=False, id="attach_image"),
    Binding("shift+f10", "view('remove_attachments')", "remove images", show=False, id="remove_images"),
    Binding("ctrl+o", "open_session", "open", id="open_session"),
    Binding("ctrl+n", "new_session", "new", id="new_session"),
    Binding("ctrl+s", "export", "export", id="export"),
    Binding("f8", "copy", "copy", id="copy"),
    Binding("f3", "switch_mode", "chat/play", id="switch_mode"),
    Binding("ctrl+g", "view('continue_reply')", "continue", show=False, id="continue"),
    Binding("ctrl+b", "toggle_markdown", "markdown/raw", show=False, id="toggle_markdown"),
]

# What a mode's view does for its keys ("view('generate')": PlaygroundView.generate), where only
# one mode's view can: in the other mode, their keys are hidden from the footer and do nothing.
MODE_ACTIONS: Dict[str, str] = {"generate": "playground", "accept": "playground", "reject": "playground",
                                "edit_last_user_message": "chat", "continue_reply": "chat", "attach_image": "chat",
                                "remove_attachments": "chat"}

# The command palette: (title, help, action). Run as actions, so the mode rule holds as for keys.
COMMANDS: List[Tuple[str, str, str]] = [
    ("Stop", "Stop the reply or completion being generated", "cancel"),
    ("Regenerate", "Generate the last reply / completion again", "view('regenerate')"),
    ("Continue reply", "Go on with the last reply where it was cut or stopped", "view('continue_reply')"),
    ("Generate (playground)", "Complete the playground's text", "view('generate')"),
    ("Accept completion", "Append the pending completion to the playground's text", "view('accept')"),
    ("Reject completion", "Drop the pending completion", "view('reject')"),
    ("Next candidate", "Make the next candidate the reply / completion", "view('choose', 1)"),
    ("Previous candidate", "Make the previous candidate the reply / completion", "view('choose', -1)"),
    ("Markdown / raw text", "Show replies as Markdown or as their raw text", "toggle_markdown"),
    ("Edit last message", "Put the last message back in the input", "view('edit_last_user_message')"),
    ("Inspect tokens", "Probabilities and alternatives; branch from a token", "inspect"),
    ("Models", "Pick or pull a model", "models"),
    ("Attach image", "An image for the next chat message (a vision model); or drop its file on the terminal",
     "view('attach_image')"),
    ("Remove images", "The images attached to the next message go", "view('remove_attachments')"),
    ("Steering", "Steering concepts for this conversation: on, off, strength; make one from pairs", "steering"),
    ("Open session", "Reopen, search, rename or delete saved sessions", "open_session"),
    ("New session", "Start a new conversation or playground", "new_session"),
    ("Export session", "Markdown and JSON with the exact requests and responses", "export"),
    ("Import session", "Open a session exported as JSON", "import"),
    ("Copy", "Copy the last reply to the clipboard", "copy"),
    ("System prompt", "Set the conversation's system prompt", "set_system_prompt"),
    ("Toggle parameters", "Show or hide the parameter panel", "toggle_params"),
    ("Switch mode", "Chat or playground", "switch_mode"),
]


def default_keys() -> Dict[str, str]:
    """Every key binding of the app, its views and its dialogs, by id (the ids [keymap] may
    name): its keys as declared."""
    bindings = [*APP_BINDINGS, *(binding for cls in [ChatInput, PlaygroundBuffer, TokenView, PairsArea, *(
        value for value in vars(screens).values() if isinstance(value, type) and issubclass(value, Screen))]
        for binding in cls.BINDINGS)]
    return {binding.id: binding.key for binding in bindings if isinstance(binding, Binding) and binding.id}


def binding_ids() -> Iterable[str]:
    return default_keys().keys()


class KeyHints:
    """Hint lines such as "Enter: send · ctrl+j: newline", with the keys as the keymap has them.
    `keys`: binding id -> its keys."""

    def __init__(self, keys: Mapping[str, str]):
        self.keys = dict(keys)

    def line(self, *actions: Tuple[str, str]) -> str:
        """The hint for (binding id, what it does) pairs."""
        return " · ".join(f"{key_label(self.keys.get(binding_id, '?'))}: {label}" for binding_id, label in actions)


def key_label(keys: str) -> str:
    """The first of a binding's keys as people write it: Enter, Esc, F4, ctrl+j."""
    key = keys.split(",")[0].strip()
    return {"enter": "Enter", "escape": "Esc", "tab": "Tab"}.get(key, key.upper() if len(key) <= 3 and key.startswith("f") else key)
