"""The token inspector: a completion's tokens by probability, the alternatives of each, and
"branch here"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ..tokens import alternatives
from ..widgets.token_view import TokenView


@dataclass
class BranchChoice:
    token_index: int  # regenerate from this token ...
    text: str  # ... with this text in its place


class TokenInspector(ModalScreen[Optional[BranchChoice]]):
    """A completion's tokens coloured by probability; the alternatives of the token under the
    cursor; Enter on an alternative regenerates from that token with it ("branch here")."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "close", id="close_dialog"),
        Binding("tab,shift+tab", "toggle_focus", "tokens / alternatives", show=False, id="inspector_toggle"),
        Binding("b", "alternatives", "branch here", id="branch_here"),
    ]

    def __init__(self, tokens: Sequence[str], log_probs: Sequence[Mapping[str, float]]):
        super().__init__()
        self.tokens = list(tokens)
        self.log_probs = list(log_probs)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog inspector"):
            yield Label("Tokens by probability  [dim](←/→ move · b or Tab: alternatives · Enter: branch here · Esc)[/]")
            yield TokenView(self.tokens, self.log_probs, id="inspector-tokens")
            yield Label("", id="inspector-token")
            yield OptionList(id="alternatives")

    def on_mount(self) -> None:
        self.query_one(TokenView).focus()

    @on(TokenView.Moved)
    def _moved(self, event: TokenView.Moved) -> None:
        index = event.index
        if not self.tokens:
            return
        token = self.tokens[index]
        entry = event.view.entry(index)
        self.query_one("#inspector-token", Label).update(
            f"token {index + 1}/{len(self.tokens)}: {token!r}" + ("" if entry else "  (no log-probs: set log_probs)"))
        option_list = self.query_one("#alternatives", OptionList)
        option_list.clear_options()
        option_list.add_options(
            [Option(f"{100 * p:6.2f}%  {alt!r}" + ("  ← chosen" if alt == token else ""), id=f"{i}")
             for i, (alt, p) in enumerate(alternatives(token, entry))]
        )
        self._alternatives: List[str] = [alt for alt, _ in alternatives(token, entry)]

    def action_toggle_focus(self) -> None:
        tokens = self.query_one(TokenView)
        (self.query_one("#alternatives", OptionList) if tokens.has_focus else tokens).focus()

    def action_alternatives(self) -> None:
        """Choose the alternative to branch with."""
        alternatives_list = self.query_one("#alternatives", OptionList)
        alternatives_list.focus()
        if alternatives_list.option_count:
            alternatives_list.highlighted = 0

    @on(OptionList.OptionSelected, "#alternatives")
    def _branch(self, event: OptionList.OptionSelected) -> None:
        index = self.query_one(TokenView).cursor
        self.dismiss(BranchChoice(index, self._alternatives[int(event.option.id)]))
