"""Fuzzed command lines through `edgecomplete.cli.main` in this process: `complete` with a random
subset of the request flags (valid values, or texts that are not numbers, are huge, negative,
NaN, empty, giant, unpaired surrogates as argv's undecodable bytes become), lists repeated,
junk models, images, projectors, context lengths and thread counts, --json and --stream, the
prompt from stdin. Each run exits 0 or 2 (an error message), never with a traceback or another
status, and never hangs; a --json answer is well formed. Each accepted run loads the model."""

import io
import json
import sys
from typing import Any, Dict, List

import pytest
from hypothesis import given, strategies as st

from edgecomplete import models
from edgecomplete.cli import main
from edgecomplete.fields import FIELD, REQUEST_FIELDS

from .test_fuzz_bodies import (CONCEPT, FINISH_REASONS, MAX_TOKENS, MODEL, SURROGATES, VALID, Shown, Tally,
                               fuzz_client, fuzz_settings, giant_text, mostly, record, scaled)

EXAMPLES = scaled(200)
UNDECODABLE = st.text(st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1, max_size=3)
not_a_small_int = st.one_of(
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "-1", "0x10", "1_000_000", "99999999999999999999999",
                     "true", "=", ":", "5=", "=5", "--", "\\n", "|", "4.0", "-0"]),
    st.text(max_size=8).filter(lambda text: not text.strip().isdigit()), UNDECODABLE, SURROGATES, giant_text)


def _rendered(name: str) -> st.SearchStrategy:
    """Valid values of a scalar field as the flag's text."""
    return VALID[name].filter(lambda value: value is not None).map(FIELD[name].render)


def flag_values(name: str, kind: str) -> st.SearchStrategy:
    """The argv words that give field `name`: the flag with a value (a list's flag once per item)."""
    flag = "--" + name.replace("_", "-")
    if kind in ("bool", "tristate"):
        return st.sampled_from([[flag], ["--no-" + flag[2:]]])
    if kind == "list":
        item = mostly(st.text(min_size=1, max_size=10), not_a_small_int, 3)
        return st.lists(item, min_size=1, max_size=3).map(lambda items: [word for text in items
                                                                          for word in (flag, text)])
    if kind == "bias":
        pair = st.builds(lambda token, value, sep: f"{token}{sep}{value}", st.integers(0, 49_151),
                         st.floats(-20, 20), st.sampled_from("=:"))
        return st.lists(mostly(pair, not_a_small_int, 3), min_size=1, max_size=3).map(
            lambda pairs: [word for text in pairs for word in (flag, text)])
    if kind == "strengths":
        return mostly(st.floats(-10, 10).map(lambda value: f"{CONCEPT}={value}"), not_a_small_int, 3).map(
            lambda text: [flag, text])
    return mostly(_rendered(name), not_a_small_int, 3).map(lambda text: [flag, text])


FLAGS = {field.name: flag_values(field.name, field.kind) for field in REQUEST_FIELDS}
registered = set(models.manifests())
junk_model = st.one_of(st.sampled_from(["nope", "", "x.gguf", "/nonexistent/m.gguf", "../smollm2-135m"]),
                       st.text(max_size=12)).filter(lambda name: name not in registered)
EXTRAS = {
    "--json": st.just(["--json"]), "--stream": st.just(["--stream"]),
    "--model": st.one_of(st.just(["--model", MODEL]), junk_model.map(lambda name: ["--model", name])),
    "--context-length": st.sampled_from(["19", "64", "8192", "0", "-1", "18", "8193", "99999999999999999999", "x"])
    .map(lambda text: ["--context-length", text]),
    "--threads": st.sampled_from(["1", "0", "-1", "513", "1e3", "x", "99999999999999999999"])
    .map(lambda text: ["--threads", text]),
    "--image": st.sampled_from(["/nonexistent.png", "{junk}"]).map(lambda path: ["--image", path]),
    "--mmproj": st.sampled_from(["/nonexistent.gguf", "{junk}"]).map(lambda path: ["--mmproj", path]),
    "stray": st.lists(st.one_of(st.sampled_from(["-n", "--", "-", "--help", "--version", "--bogus", "-v"]),
                                st.text(max_size=6)), min_size=1, max_size=2),
}


@st.composite
def command_lines(draw) -> Dict[str, Any]:
    """argv (with "{junk}" for a file of random bytes) and the stdin text for a prompt of "-"."""
    prompt = draw(mostly(st.text(max_size=20), st.one_of(st.just("-"), UNDECODABLE, giant_text), 4))
    argv = ["complete", prompt, "--max-tokens", str(draw(st.integers(0, MAX_TOKENS))), "--threads", "1"]
    fields = draw(st.lists(st.sampled_from(sorted(FLAGS)), unique=True, max_size=8))
    extras = draw(st.lists(st.sampled_from(sorted(EXTRAS)), unique=True, max_size=3))
    for name in fields:
        argv += draw(FLAGS[name])
    for name in extras:
        argv += draw(EXTRAS[name])
    return {"argv": argv, "stdin": draw(st.text(max_size=20))}


def outcome_of_cli(argv: List[str], stdin: str, capsys) -> str:
    """Run the command: "accepted" (status 0) or "refused" (status 2, with its message)."""
    sys.stdin = io.StringIO(stdin)
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse: usage errors, --help, --version
        status = exit.code
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    assert status in (0, 2), f"exit status {status!r}"
    if status == 2:
        assert err.strip(), "a refusal says why"
        return "refused"
    if "--json" in argv and argv.index("--json") > 1 and "--help" not in argv and "--version" not in argv:
        lines = out.splitlines() if "--stream" in argv else [out]
        items = [json.loads(line) for line in lines if line.strip()]
        reasons = [c["finish_reason"] for item in items for c in item.get("completions", [item])
                   if "finish_reason" in c]
        assert items and set(reasons) <= FINISH_REASONS, out[:300]
    return "accepted"


@pytest.fixture(scope="module")
def junk_file(tmp_path_factory, smollm2_path):
    """A file of random bytes, named like a GGUF, for --image and --mmproj."""
    path = tmp_path_factory.mktemp("fuzz-cli") / "junk.gguf"
    path.write_bytes(bytes(range(256)) * 8)
    with fuzz_client():  # the concept --steering-concepts may name
        pass
    return str(path)


def test_fuzzed_command_lines(junk_file, capsys):
    tally = Tally("CLI")

    @fuzz_settings(EXAMPLES)
    @given(command_lines().map(Shown))
    def one(drawn):
        argv = [junk_file if word == "{junk}" else word for word in drawn.value["argv"]]
        record(tally, argv, lambda: outcome_of_cli(argv, drawn.value["stdin"], capsys))

    tally.run([one], capsys)
    assert tally.requests >= EXAMPLES and tally.accepted > EXAMPLES // 10
