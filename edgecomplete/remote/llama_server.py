"""The `llama-server` backend: llama.cpp's own server through its native /completion route.

Its sampler defaults are its command line's (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
...), not the API's, so every sampler setting is sent. `n_cmpl` asks for several completions at
once (candidate i samples with seed + i, as locally); `n_probs` returns each token's log-prob and
the most likely alternatives, from which tokens and best_of's ranking are computed.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Sequence

from ..completion import CompletionRequest
from ..prompt import Text
from ..tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse
from .base import Ask, Candidate, Delta, RemoteBackend, finish_reason


class LlamaServerBackend(RemoteBackend):
    name = "llama-server"

    _context: int = 0

    def _context_length(self) -> int:
        """The server's context (its -1 for "all of it" is refused, and a larger window would be
        allocated whole)."""
        if not self._context:
            self._context = int(self.model_info("")["context_length"]) or 4096
        return self._context

    def _body(self, ask: Ask, streamed: bool) -> Dict[str, Any]:
        r = ask.request
        body: Dict[str, Any] = {
            "prompt": _prompt(r), "n_predict": -1 if r.maximum_tokens is None else r.maximum_tokens,
            "temperature": r.temperature, "top_k": r.top_k, "top_p": r.top_p or 1.0,
            # off: the samplers the API does not have
            "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "dry_multiplier": 0.0, "xtc_probability": 0.0,
            "top_n_sigma": -1.0, "mirostat": 0, "dynatemp_range": 0.0,
            "presence_penalty": r.presence_penalty, "frequency_penalty": r.frequency_penalty,
            "stop": list(r.stop_sequences or []), "logit_bias": [[int(t), float(b)] for t, b in (r.logit_bias or {}).items()],
            "cache_prompt": False, "stream": streamed, "return_tokens": True,
        }
        if r.presence_penalty or r.frequency_penalty:  # over the whole context, prompt included
            body["repeat_last_n"] = self._context_length()
        if ask.top >= 0:
            body["n_probs"] = max(ask.top, 1)
        if ask.candidates > 1:
            body["n_cmpl"] = ask.candidates
        if r.seed is not None:
            body["seed"] = r.seed % 2**32
        return body

    def _whole(self, ask: Ask, model: str):
        answer = self.http.call("POST", "/completion", self._body(ask, False))
        answers = answer if isinstance(answer, list) else [answer]
        answers = sorted(answers, key=lambda a: a.get("index", 0))
        candidates = []
        for one in answers:
            tokens, log_probs, chosen = _probabilities(one.get("completion_probabilities") or [], ask.top)
            candidates.append(Candidate(one.get("content", ""), tokens, log_probs, chosen,
                                        finish_reason(one.get("stop_type", "")), int(one.get("tokens_predicted", 0))))
        prompt_tokens = int(answers[0].get("tokens_evaluated", 0)) if answers else 0
        return candidates, prompt_tokens, _version(answers[0] if answers else {}, model)

    def _streamed(self, ask: Ask, model: str, summary: Dict[str, Any]) -> Iterator[Delta]:
        generated = 0
        for event in self.http.events("/completion", self._body(ask, True)):
            tokens, log_probs, _ = _probabilities(event.get("completion_probabilities") or [], ask.top)
            summary["prompt_tokens"] = int(event.get("tokens_evaluated", summary["prompt_tokens"]))
            ended = bool(event.get("stop"))
            if ended:
                generated += int(event.get("tokens_predicted", 0))
                summary["version"] = _version(event, model)
            yield Delta(int(event.get("index", 0)), event.get("content", ""), tokens, log_probs,
                        finish_reason(event.get("stop_type", "")) if ended else None)
        summary["generated"] = generated

    # ---- tokens and the model -------------------------------------------------------------------

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        answer = self.http.call("POST", "/tokenize", {"content": request.prompt, "with_pieces": True}, idempotent=True)
        pieces = answer.get("tokens", [])
        ids = [p["id"] if isinstance(p, Mapping) else int(p) for p in pieces]
        texts = [p.get("piece", "") if isinstance(p, Mapping) else "" for p in pieces]
        return TokenizationResponse(tokens=[t if isinstance(t, str) else bytes(t).decode("utf-8", "replace")
                                            for t in texts] if request.tokens else None,
                                    token_ids=ids if request.token_ids else None)

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        answer = self.http.call("POST", "/detokenize", {"tokens": list(request.token_ids)}, idempotent=True)
        return DetokenizationResponse(result=answer.get("content", ""))

    def model_info(self, model: str) -> Mapping[str, Any]:
        props = self.http.call("GET", "/props", idempotent=True)
        settings = props.get("default_generation_settings", {})
        context = int(settings.get("n_ctx") or props.get("n_ctx") or 0)
        return {"model": model, "context_length": context, "trained_context_length": context,
                "vocab_size": None, "layers": None, "max_sequences": int(props.get("total_slots", 1)),
                "chat": bool(props.get("chat_template")), "vision": False, "steering": False,
                "backend": self.name, "host": self.http.host}

    def apply_chat_template(self, model: str, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str:
        answer = self.http.call("POST", "/apply-template", {"messages": list(messages),
                                                             "add_generation_prompt": add_generation_prompt},
                                idempotent=True)
        return answer["prompt"]


def _prompt(request: CompletionRequest):
    """A string, or (with token ids) the mixed list llama-server takes."""
    items = request.prompt.items
    if all(isinstance(item, Text) for item in items):
        return "".join(item.text for item in items)
    mixed: List[Any] = []
    for item in items:
        mixed.extend([item.text] if isinstance(item, Text) else [int(t) for t in item.tokens])
    return mixed


def _probabilities(entries: Sequence[Mapping[str, Any]], top: int):
    """(tokens, {token: log-prob} per token with the chosen one first, the chosen log-probs)."""
    tokens, log_probs, chosen = [], [], []
    for entry in entries:
        token = entry.get("token", "")
        values = {token: float(entry.get("logprob", 0.0))}
        for other in (entry.get("top_logprobs") or [])[: max(top, 0)]:
            values.setdefault(other.get("token", ""), float(other.get("logprob", 0.0)))
        tokens.append(token)
        log_probs.append(values)
        chosen.append(float(entry.get("logprob", 0.0)))
    return tokens, log_probs, chosen


def _version(answer: Mapping[str, Any], model: str) -> str:
    return str(answer.get("model") or model).rsplit("/", 1)[-1]
