"""The parameter panel: one control per CompletionRequest field, checked as you type with the API's
own validation messages, fields changed from the API's defaults marked, named presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from edgecomplete import CompletionRequest, InvalidRequest, Prompt, check_request, check_sequences

from ..messages import ParamsInvalid, PresetDeleted, PresetSaved
from ..params import COMMON, DEFAULTS, FIELDS, TRISTATE, kind, parse, render


class ParamsPanel(VerticalScroll):
    """Emits ParamsPanel.Changed whenever the values change (valid or not); PresetSaved and
    PresetDeleted when the user saves or deletes a preset (the app keeps them, and hands the
    list back with set_presets)."""

    @dataclass
    class Changed(Message):
        panel: "ParamsPanel"

    def __init__(self, values: Optional[Dict[str, Any]] = None, **kwargs):
        super().__init__(**kwargs)
        self._values: Dict[str, Any] = dict(DEFAULTS)
        self._values.update(values or {})
        self.errors: Dict[str, str] = {}
        self._parse_errors: Dict[str, str] = {}
        self._presets: Dict[str, Dict[str, Any]] = {}
        self._marks: Dict[str, tuple] = {}  # the (changed, error) each field's marks show
        self.max_sequences: Optional[int] = None  # the engine's limit, once a model is loaded

    def compose(self) -> ComposeResult:
        yield Static("Parameters [dim]* = not the API default[/]", classes="panel-title")
        with Horizontal(id="preset-row", classes="preset-row"):
            yield Select([], prompt="preset", id="preset-select", allow_blank=True)
            yield Button("Delete", id="preset-delete")
        with Horizontal(id="preset-save-row", classes="preset-row"):
            yield Input(placeholder="preset name", id="preset-name")
            yield Button("Save", id="preset-save")
        order = COMMON + [f.name for f in FIELDS if f.name not in COMMON]
        for name in order:
            control = kind(name)
            yield Label(name, id=f"label-{name}", classes="param-label")
            value = self._values.get(name)
            if control == "bool":
                yield Checkbox(name, value=bool(value), id=f"param-{name}", classes="param")
            elif control == "tristate":
                options = [("default (true)", "default"), ("true", "true"), ("false", "false")]
                current = "default" if value is None else ("true" if value else "false")
                yield Select(options, value=current, allow_blank=False, id=f"param-{name}", classes="param")
            else:
                yield Input(render(name, value), id=f"param-{name}", classes="param")
            yield Static("", id=f"error-{name}", classes="param-error")

    def on_mount(self) -> None:
        self._refresh_marks()

    # ---- values -----------------------------------------------------------------------------

    def values(self) -> Dict[str, Any]:
        """Every field's current value (invalid text keeps the last valid value)."""
        return dict(self._values)

    def changed(self) -> Dict[str, Any]:
        """The fields that differ from CompletionRequest's defaults."""
        return {k: v for k, v in self._values.items() if DEFAULTS.get(k, None) != v}

    @property
    def valid(self) -> bool:
        return not self.errors

    def first_error(self) -> Optional[str]:
        return next(iter(self.errors.values()), None)

    def set_values(self, values: Dict[str, Any]) -> None:
        self._values = dict(DEFAULTS)
        self._values.update(values)
        for name, value in self._values.items():
            widget = self.query_one(f"#param-{name}")
            if isinstance(widget, Checkbox):
                widget.value = bool(value)
            elif isinstance(widget, Select):
                widget.value = "default" if value is None else ("true" if value else "false")
            else:
                widget.value = render(name, value)
        self._parse_errors.clear()
        self._validate()
        self._refresh_marks()

    def update_values(self, values: Dict[str, Any]) -> None:
        """Set some fields from elsewhere (the steering screen), as if typed: the session hears of it."""
        self.set_values({**self._values, **values})
        self.post_message(self.Changed(self))

    def set_presets(self, presets: Dict[str, Dict[str, Any]]) -> None:
        self._presets = dict(presets)
        self.query_one("#preset-select", Select).set_options([(name, name) for name in presets])

    # ---- events -------------------------------------------------------------------------------

    @on(Input.Changed, ".param")
    def _text_changed(self, event: Input.Changed) -> None:
        self._update(event.input.id.removeprefix("param-"), event.value)

    @on(Checkbox.Changed, ".param")
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._update(event.checkbox.id.removeprefix("param-"), event.value)

    @on(Select.Changed, ".param")
    def _select_changed(self, event: Select.Changed) -> None:
        self._update(event.select.id.removeprefix("param-"), TRISTATE.get(event.value))

    @on(Select.Changed, "#preset-select")
    def _preset_chosen(self, event: Select.Changed) -> None:
        if event.value in self._presets:
            self.set_values(self._presets[event.value])
            self.post_message(self.Changed(self))

    @on(Button.Pressed, "#preset-delete")
    def _preset_delete(self) -> None:
        name = self.query_one("#preset-select", Select).value
        if isinstance(name, str) and name in self._presets:
            self.post_message(PresetDeleted(name))

    @on(Button.Pressed, "#preset-save")
    def _preset_save(self) -> None:
        name = self.query_one("#preset-name", Input).value.strip()
        if name:
            self.post_message(PresetSaved(name, self.changed()))

    def request_values(self) -> Optional[Dict[str, Any]]:
        """The values to send, read from the controls as they are now; None, with ParamsInvalid
        posted, while a field is invalid (the request is not sent)."""
        self.sync()
        if not self.valid:
            self.post_message(ParamsInvalid(self.first_error() or "invalid parameters"))
            return None
        return self.values()

    def sync(self) -> None:
        """Read every control as it is now. A key typed into a field is in the control at once,
        but its Changed message may still be on its way when a key that sends arrives right
        behind it (a burst of keys): a request is built from the controls, not the messages."""
        for field_ in FIELDS:
            widget = self.query_one(f"#param-{field_.name}")
            if isinstance(widget, Select):
                raw = TRISTATE.get(widget.value)
            else:
                raw = widget.value
            self._parse(field_.name, raw)
        self._validate()
        self._refresh_marks()

    def _parse(self, name: str, raw: Any) -> None:
        try:
            self._values[name] = parse(name, raw) if isinstance(raw, str) else raw
            self._parse_errors.pop(name, None)
        except InvalidRequest as error:
            self._parse_errors[name] = str(error)

    def _update(self, name: str, raw: Any) -> None:
        """Parse the control's text, then check the whole request: the API's message is shown at
        the field it names."""
        self._parse(name, raw)
        self._validate()
        self._refresh_marks()
        self.post_message(self.Changed(self))

    def set_limits(self, max_sequences: int) -> None:
        """The loaded model's engine limits, checked as values are typed."""
        self.max_sequences = max_sequences
        self._validate()
        self._refresh_marks()

    def _validate(self) -> None:
        self.errors = dict(self._parse_errors)
        try:
            request = CompletionRequest(prompt=Prompt.from_text(""), **self._values)
            check_request(request)
            if self.max_sequences is not None:  # the loaded model's engine
                check_sequences(request, self.max_sequences)
        except InvalidRequest as error:
            self.errors.setdefault(error.field, str(error))

    def _refresh_marks(self) -> None:
        """Mark changed and invalid fields. Only marks that changed are redrawn: each one takes a
        layout pass of the whole screen, and this runs on every keystroke and send."""
        for field_ in FIELDS:
            name = field_.name
            changed = DEFAULTS.get(name) != self._values.get(name)
            error = self.errors.get(name)
            if self._marks.get(name) == (changed, error):
                continue
            self._marks[name] = (changed, error)
            label = self.query_one(f"#label-{name}", Label)
            label.update(f"{name} *" if changed else name)
            label.set_class(changed, "changed")
            error_view = self.query_one(f"#error-{name}", Static)
            error_view.update(error or "")
            error_view.display = error is not None
            self.query_one(f"#param-{name}").set_class(error is not None, "invalid")
