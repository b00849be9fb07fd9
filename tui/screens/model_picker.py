"""The model picker: registered models, installed or pullable, and pulling one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from edgecomplete import models


class ModelPicker(ModalScreen[Optional[str]]):
    """Registered models, installed or pullable. Choosing a pullable one pulls it (in a worker
    thread, with a progress bar); choosing an installed one returns its name."""

    BINDINGS = [Binding("escape", "dismiss(None)", "close", id="close_dialog")]

    def __init__(self, current: str):
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Models  [dim](Enter: use or pull · Esc: close)[/]")
            yield OptionList(id="model-list")
            yield Static("", id="pull-status")
            yield ProgressBar(id="pull-progress", show_eta=False)

    def on_mount(self) -> None:
        self.query_one("#pull-progress").display = False
        self.refresh_models()

    def refresh_models(self) -> None:
        options = []
        for status in models.list_models():
            m = status.manifest
            state = "installed" if status.installed else "pullable"
            current = "  ← current" if m.name == self.current else ""
            options.append(Option(f"{m.name:<16} {state:<9} {m.size / 1e6:5.0f} MB  {m.description}{current}", id=m.name))
        option_list = self.query_one("#model-list", OptionList)
        option_list.clear_options()
        option_list.add_options(options)
        names = [option.id for option in options]
        option_list.highlighted = names.index(self.current) if self.current in names else 0
        option_list.focus()

    @on(OptionList.OptionSelected, "#model-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        name = event.option.id
        status = next(s for s in models.list_models() if s.manifest.name == name)
        if status.installed:
            self.dismiss(name)
        else:
            self.pull(name)

    def pull(self, name: str) -> None:
        self.query_one("#pull-progress").display = True
        self._pull(name)

    @dataclass
    class Pulling(Message):
        """A pull's progress (posted from its worker thread)."""

        label: str
        done: int
        total: int

    @dataclass
    class Pulled(Message):
        """A pull has ended; `status` says how."""

        status: str

    @work(thread=True, exclusive=True, group="pull")
    def _pull(self, name: str) -> None:
        """Pull in a worker thread, which never touches a widget: it posts its progress (posting
        is safe from any thread), a tenth of a second apart at most."""
        last = [0.0]

        def progress(p: models.PullProgress) -> None:
            now = time.monotonic()
            if now - last[0] < 0.1 and p.done < p.total:
                return
            last[0] = now
            label = f"pulling {p.model}: {p.stage}" + (f" {p.part}/{p.parts}" if p.stage == "download" else "")
            self.post_message(self.Pulling(label, p.done, max(p.total, 1)))

        try:
            models.pull(name, progress=progress)
            status = f"{name} is installed"
        except models.ModelError as error:
            status = f"[red]{error}[/]"
        self.post_message(self.Pulled(status))

    @on(Pulling)
    def _pulling(self, event: Pulling) -> None:
        self.query_one("#pull-status", Static).update(event.label)
        self.query_one("#pull-progress", ProgressBar).update(total=event.total, progress=event.done)

    @on(Pulled)
    def _pulled(self, event: Pulled) -> None:
        self.query_one("#pull-status", Static).update(event.status)
        self.refresh_models()
