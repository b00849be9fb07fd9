"""The steering screen: the kept concepts, switched on or off for the conversation with a
strength each, and a new concept made from pairs of texts."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from rich.text import Text
from textual.widgets.option_list import Option

from edgecomplete import InvalidRequest

SEPARATOR = "=>"


def parse_pairs(text: str) -> List[Tuple[str, str]]:
    """One pair per line, `negative => positive`; blank lines are skipped. ValueError names the
    line that is not a pair."""
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        negative, separator, positive = line.partition(SEPARATOR)
        if not separator:
            raise ValueError(f"line {number} is not `negative {SEPARATOR} positive`")
        pairs.append((negative.strip(), positive.strip()))
    return pairs


class PairsArea(TextArea):
    """The new concept's pairs. ctrl+s creates it: a binding of this widget, so that it comes
    after the keys typed before it (a priority binding would overtake them in a burst)."""

    BINDINGS = [Binding("ctrl+s", "create", "create", id="create_concept")]

    class Submitted(Message):
        pass

    def action_create(self) -> None:
        self.post_message(self.Submitted())


class SteeringPicker(ModalScreen[Optional[Dict[str, Any]]]):
    """Concepts on (Enter switches the highlighted one), each with a strength (the field below
    sets the highlighted one's), and new ones from pairs. Esc gives back the conversation's
    `steering_concepts` and `steering_strengths` as they now are."""

    BINDINGS = [Binding("escape", "done", "close", id="close_dialog")]

    def __init__(self, concepts: Callable[[], Awaitable[List[Mapping[str, Any]]]],
                 create: Callable[[List[Tuple[str, str]]], Awaitable[str]],
                 chosen: Optional[List[str]], strengths: Optional[Mapping[str, float]]):
        super().__init__()
        self._concepts, self._create = concepts, create
        self.chosen: List[str] = list(chosen or [])
        self.strengths: Dict[str, float] = dict(strengths or {})
        self._known: List[Mapping[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="steering-dialog"):
            yield Label("Steering  [dim](Enter: on/off · Esc: done)[/]")
            yield OptionList(id="concept-list")
            with Horizontal(id="strength-row"):
                yield Label("strength of the highlighted concept (1 default, negative reverses): ")
                yield Input(id="strength", placeholder="1.0")
                yield Static("", id="strength-error")
            yield Label(f"New concept, a pair per line: [b]negative {SEPARATOR} positive[/]  [dim](ctrl+s: create)[/]")
            yield PairsArea(id="pairs")
            yield Button("Create", id="create", variant="primary")
            yield Static("", id="steering-status")

    def on_mount(self) -> None:
        self.refresh_concepts()

    @work(exclusive=True, group="concepts")
    async def refresh_concepts(self, highlight: Optional[str] = None) -> None:
        self._known = list(await self._concepts())
        self._show(highlight)

    def _show(self, highlight: Optional[str] = None) -> None:
        options = []
        for concept in self._known:
            on = concept["id"] in self.chosen
            strength = f"  ×{self.strengths.get(concept['id'], 1.0):g}" if on else ""
            first = concept.get("first")
            about = (f"{first['negative']} {SEPARATOR} {first['positive']}" if first
                     else f"imported from {(concept.get('imported') or {}).get('file', '?')}")
            # Text, not markup: the examples are the user's own words, brackets and all.
            options.append(Option(Text(f"{'on ' if on else 'off'} {concept['id'][:12]}  {about}{strength}"),
                                  id=concept["id"]))
        option_list = self.query_one("#concept-list", OptionList)
        previous = option_list.highlighted
        option_list.clear_options()
        option_list.add_options(options or [Option("no concepts yet: make one below", id="", disabled=True)])
        ids = [concept["id"] for concept in self._known]
        if highlight in ids:
            option_list.highlighted = ids.index(highlight)
        elif ids:
            option_list.highlighted = min(previous or 0, len(ids) - 1)
        self._show_strength()

    def _highlighted(self) -> Optional[str]:
        option_list = self.query_one("#concept-list", OptionList)
        if option_list.highlighted is None or not self._known:
            return None
        return self._known[option_list.highlighted]["id"]

    def _show_strength(self) -> None:
        concept = self._highlighted()
        self.query_one("#strength", Input).value = "" if concept is None else f"{self.strengths.get(concept, 1.0):g}"

    @on(OptionList.OptionHighlighted, "#concept-list")
    def _highlight(self) -> None:
        self._show_strength()

    @on(OptionList.OptionSelected, "#concept-list")
    def _toggle(self, event: OptionList.OptionSelected) -> None:
        concept = event.option.id
        if not concept:
            return
        if concept in self.chosen:
            self.chosen.remove(concept)
            self.strengths.pop(concept, None)
        else:
            self.chosen.append(concept)
        self._show(concept)

    @on(Input.Submitted, "#strength")
    @on(Input.Changed, "#strength")
    def _strength(self, event) -> None:
        concept = self._highlighted()
        error = self.query_one("#strength-error", Static)
        if concept is None or not event.value.strip():
            return
        try:
            strength = float(event.value)
            if not -10 <= strength <= 10:
                raise ValueError
        except ValueError:
            error.update("[red]a number from -10 to 10[/]")
            return
        error.update("")
        if strength == 1.0:
            self.strengths.pop(concept, None)
        else:
            self.strengths[concept] = strength
        if isinstance(event, Input.Submitted):
            self._show(concept)

    @on(Button.Pressed, "#create")
    @on(PairsArea.Submitted)
    def _create(self) -> None:
        status = self.query_one("#steering-status", Static)
        try:
            pairs = parse_pairs(self.query_one("#pairs", TextArea).text)
        except ValueError as error:
            status.update(f"[red]{error}[/]")
            return
        self._make(pairs)

    @work(exclusive=True, group="create")
    async def _make(self, pairs: List[Tuple[str, str]]) -> None:
        status = self.query_one("#steering-status", Static)
        try:
            concept = await self._create(pairs)
        except InvalidRequest as error:
            status.update(f"[red]{error}[/]")
            return
        if concept not in self.chosen:
            self.chosen.append(concept)
        self.query_one("#pairs", TextArea).text = ""
        status.update(f"made {concept[:12]} from {len(pairs)} pairs; it is on")
        self.refresh_concepts(highlight=concept)

    def action_done(self) -> None:
        strengths = {c: s for c, s in self.strengths.items() if c in self.chosen}
        self.dismiss({"steering_concepts": list(self.chosen) or None, "steering_strengths": strengths or None})
