"""The `openai` backend: any OpenAI-compatible /v1/completions (vLLM first; llama.cpp's
llama-server /v1 routes; another edgecomplete serve; llama-cpp-python's server).

The mapping follows vLLM's protocol (../shared/notes/http-contract.md): top_p 0 ("off" in the
API) is sent as 1; best_of is emulated here (vLLM V1 dropped it and ignores unknown fields), as n
candidates with token log-probs ranked by their mean; greedy candidates are asked once and copied
(vLLM refuses n > 1 at temperature 0); max_tokens is always sent (vLLM's default is 16). Log-probs
come back in the legacy shape ({tokens, token_logprobs, top_logprobs}) or, from llama-server, as
a list of entries ({token, logprob, top_logprobs}): both are read.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..prompt import Text
from ..tokenization import DetokenizationRequest, DetokenizationResponse, TokenizationRequest, TokenizationResponse
from ..validation import InvalidRequest
from .base import Ask, Candidate, Delta, RemoteBackend, finish_reason


class OpenAIBackend(RemoteBackend):
    name = "openai"

    def _body(self, ask: Ask, model: str, streamed: bool) -> Dict[str, Any]:
        r = ask.request
        if r.maximum_tokens is None:
            raise InvalidRequest("maximum_tokens", "the openai backend needs it: OpenAI-compatible servers "
                                 "stop at their own default (16 tokens on vLLM), not at the end of the context")
        items = r.prompt.items
        prompt: Any = "".join(i.text for i in items) if all(isinstance(i, Text) for i in items) else \
            [int(t) for i in items for t in i.tokens]
        body: Dict[str, Any] = {
            "model": model, "prompt": prompt, "max_tokens": r.maximum_tokens, "temperature": r.temperature,
            "top_p": r.top_p or 1.0, "n": ask.candidates, "stream": streamed,
            "presence_penalty": r.presence_penalty, "frequency_penalty": r.frequency_penalty,
        }
        if r.top_k:
            body["top_k"] = r.top_k  # vLLM's and llama-server's extension
        if r.stop_sequences:
            body["stop"] = list(r.stop_sequences)
        if r.logit_bias:
            body["logit_bias"] = {str(t): float(b) for t, b in r.logit_bias.items()}
        if r.seed is not None:
            body["seed"] = r.seed % 2**63
        if ask.top >= 0:
            body["logprobs"] = max(ask.top, 1)
        if streamed:
            body["stream_options"] = {"include_usage": True}
        return body

    def _whole(self, ask: Ask, model: str):
        answer = self.http.call("POST", "/v1/completions", self._body(ask, model, False))
        choices = sorted(answer.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != ask.candidates:
            raise InvalidRequest("n", f"the openai backend at {self.http.host} returned {len(choices)} "
                                 f"completions for n = {ask.candidates}: it does not take n")
        usage = answer.get("usage") or {}
        candidates = []
        for choice in choices:
            tokens, log_probs, chosen = _log_probs(choice.get("logprobs"), ask.top)
            candidates.append(Candidate(choice.get("text", ""), tokens, log_probs, chosen,
                                        _finish(choice), len(tokens)))
        if usage.get("completion_tokens") is not None and not any(c.generated for c in candidates):
            for candidate in candidates:  # without log-probs the usage is all there is
                candidate.generated = int(usage["completion_tokens"]) // max(len(candidates), 1)
        return candidates, int(usage.get("prompt_tokens", 0)), str(answer.get("model") or model).rsplit("/", 1)[-1]

    def _streamed(self, ask: Ask, model: str, summary: Dict[str, Any]) -> Iterator[Delta]:
        for event in self.http.events("/v1/completions", self._body(ask, model, True)):
            if event.get("model"):
                summary["version"] = str(event["model"]).rsplit("/", 1)[-1]
            usage = event.get("usage")
            if usage:
                summary["prompt_tokens"] = int(usage.get("prompt_tokens", 0))
                summary["generated"] = int(usage.get("completion_tokens", 0))
            for choice in event.get("choices") or []:
                tokens, log_probs, _ = _log_probs(choice.get("logprobs"), ask.top)
                ended = choice.get("finish_reason")
                yield Delta(int(choice.get("index", 0)), choice.get("text", ""), tokens, log_probs,
                            _finish(choice) if ended else None)

    # ---- tokens and the model -------------------------------------------------------------------

    def tokenize(self, request: TokenizationRequest, model: str) -> TokenizationResponse:
        raise InvalidRequest("prompt", "the openai backend cannot tokenize: the OpenAI API has no tokenizer "
                             "route (use the llama-server or aleph backend for that server)")

    def detokenize(self, request: DetokenizationRequest, model: str) -> DetokenizationResponse:
        raise InvalidRequest("token_ids", "the openai backend cannot detokenize: the OpenAI API has no such route")

    def model_info(self, model: str) -> Mapping[str, Any]:
        answer = self.http.call("GET", "/v1/models", idempotent=True)
        entry = next((m for m in answer.get("data", []) if m.get("id") == model), None)
        if entry is None:
            known = ", ".join(str(m.get("id")) for m in answer.get("data", []))
            raise InvalidRequest("model", f"the openai backend at {self.http.host} has no model {model!r}; "
                                 f"it has: {known}")
        context = int(entry.get("max_model_len") or (entry.get("meta") or {}).get("n_ctx_train") or 0)
        return {"model": model, "context_length": context, "trained_context_length": context, "vocab_size": None,
                "layers": None, "max_sequences": 16, "chat": False, "vision": False, "steering": False,
                "backend": self.name, "host": self.http.host}

    def apply_chat_template(self, model: str, messages: Sequence[Mapping[str, str]],
                            add_generation_prompt: bool = True) -> str:
        raise InvalidRequest("messages", "the openai backend cannot render a chat template (the OpenAI API "
                             "renders it on the server, in /v1/chat/completions); use the llama-server or "
                             "aleph backend to chat through edgecomplete")

    def models(self) -> List[Mapping[str, Any]]:
        answer = self.http.call("GET", "/v1/models", idempotent=True)
        return [{"name": m.get("id"), "description": f"on {self.http.host}", "installed": True}
                for m in answer.get("data", [])]


def _finish(choice: Mapping[str, Any]) -> str:
    reason = choice.get("finish_reason")
    if reason == "stop" and isinstance(choice.get("stop_reason"), str):
        return "stop_sequence_reached"  # vLLM names the stop string that ended it
    if reason == "stop" and choice.get("stopping_word"):
        return "stop_sequence_reached"
    return finish_reason(reason or "")


def _log_probs(logprobs: Optional[Mapping[str, Any]], top: int) -> Tuple[List[str], List[Dict[str, float]], List[float]]:
    """(tokens, {token: log-prob} with the chosen first, chosen log-probs) from either shape."""
    if not logprobs:
        return [], [], []
    tokens, entries, chosen = [], [], []
    if "content" in logprobs:  # llama-server: [{token, logprob, top_logprobs: [{token, logprob}]}]
        for entry in logprobs.get("content") or []:
            values = {entry.get("token", ""): float(entry.get("logprob", 0.0))}
            for other in (entry.get("top_logprobs") or [])[: max(top, 0)]:
                values.setdefault(other.get("token", ""), float(other.get("logprob", 0.0)))
            tokens.append(entry.get("token", ""))
            entries.append(values)
            chosen.append(float(entry.get("logprob", 0.0)))
        return tokens, entries, chosen
    for index, token in enumerate(logprobs.get("tokens") or []):  # legacy: parallel lists
        logprob = (logprobs.get("token_logprobs") or [None])[index]
        values = {token: float(logprob)} if logprob is not None else {}
        tops = (logprobs.get("top_logprobs") or [])
        for other, value in sorted(((tops[index] or {}) if index < len(tops) else {}).items(),
                                   key=lambda kv: -kv[1])[: max(top, 0)]:
            values.setdefault(other, float(value))
        tokens.append(token)
        entries.append(values)
        chosen.append(float(logprob) if logprob is not None else 0.0)
    return tokens, entries, chosen
