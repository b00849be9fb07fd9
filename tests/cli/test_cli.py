"""The `edgecomplete` command as a user runs it: a subprocess on the real model. Nothing here
depends on the text a model generates; outputs are compared with the same request's JSON, or
with another run on this machine."""

import json
import logging
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from edgecomplete import Client, CompletionRequest, Prompt, SteeringPairedExample, models
from edgecomplete.engine import NATIVE_LOG, LocalBackend
from edgecomplete.engine.llama import default_repack
from edgecomplete.steering import ConceptStore, concept_id

from ..conftest import MODEL, sigint_as_in_a_terminal

STORY = "Once upon a time"


def edgecomplete(*args, env=None, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgecomplete", *args], capture_output=True, text=True,
                          input=input, timeout=timeout, env={**os.environ, **(env or {})})


def completions(stdout):
    """Plain output of several completions: {index: text} from their `--- completion i (...) ---`
    headers."""
    parts = re.split(r"^--- completion (\d+) \(\w+\) ---\n", stdout, flags=re.MULTILINE)
    assert parts[0] == ""
    return {int(index): text for index, text in zip(parts[1::2], parts[2::2])}


def test_version():
    run = edgecomplete("--version")
    assert run.returncode == 0
    assert run.stdout == f"edgecomplete {version('edgecomplete')}\n"


def test_a_stream_into_a_closed_pipe_ends_quietly_with_the_sigpipe_status(smollm2_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecomplete", "complete", STORY, "--stream", "--max-tokens", "200",
         "--minimum-tokens", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert len(process.stdout.read(20)) == 20  # `| head -c 20`
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141  # 128 + SIGPIPE, as the shell reports `yes | head`
    assert stderr == ""


def test_a_sampled_completion_reports_its_seed_and_replays_with_it(smollm2_path):
    args = ["complete", STORY, "--temperature", "1", "--max-tokens", "12", "--json"]
    first = edgecomplete(*args)
    assert first.returncode == 0, first.stderr
    drawn = json.loads(first.stdout)
    seed = drawn["seed"]
    assert isinstance(seed, int)
    replay = json.loads(edgecomplete(*args, "--seed", str(seed)).stdout)
    assert replay["seed"] == seed
    assert replay["completions"] == drawn["completions"]
    streamed = edgecomplete(*args, "--seed", str(seed), "--stream")
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert lines[-1]["type"] == "completion_summary" and lines[-1]["seed"] == seed
    text = "".join(line.get("completion", "") for line in lines if line["type"] == "stream_chunk")
    assert text == drawn["completions"][0]["completion"]
    greedy = json.loads(edgecomplete("complete", STORY, "--max-tokens", "2", "--json").stdout)
    assert "seed" not in greedy  # greedy draws nothing


def test_several_greedy_candidates_bring_a_note(smollm2_path):
    greedy = edgecomplete("complete", STORY, "--n", "2", "--max-tokens", "2")
    assert greedy.returncode == 0
    assert greedy.stderr.startswith("edgecomplete: note: at temperature 0 (greedy) all 2 candidates are")
    assert len(completions(greedy.stdout)) == 2
    best_of = edgecomplete("complete", STORY, "--best-of", "3", "--max-tokens", "2")
    assert "all 3 candidates" in best_of.stderr
    sampled = edgecomplete("complete", STORY, "--n", "2", "--max-tokens", "2", "--temperature", "0.8")
    assert sampled.returncode == 0 and sampled.stderr == ""


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_tokens_and_log_probs_show_in_plain_output(smollm2_path, stream):
    args = ["complete", "The capital of France is", "--max-tokens", "4", "--log-probs", "2", "--tokens"]
    result = json.loads(edgecomplete(*args, "--json").stdout)["completions"][0]
    plain = edgecomplete(*args, *(["--stream"] if stream else []))
    assert plain.returncode == 0, plain.stderr
    text, table = plain.stdout.split("--- tokens, log-probs, alternatives ---\n")
    assert text == result["completion"] + "\n"
    rows = table.splitlines()
    assert len(rows) == len(result["completion_tokens"])
    for row, token, entry in zip(rows, result["completion_tokens"], result["log_probs"]):
        decoder = json.JSONDecoder()
        shown, end = decoder.raw_decode(row)
        assert shown == token
        numbers = row[end:].split()
        assert float(numbers[0]) == pytest.approx(entry[token], abs=5e-4)
        alternatives = {k: v for k, v in entry.items() if k != token}
        for other, value in alternatives.items():
            assert f"{json.dumps(other, ensure_ascii=False)} {value:.3f}" in row


def test_tokens_alone_show_one_quoted_token_a_line(smollm2_path):
    result = json.loads(edgecomplete("complete", STORY, "--max-tokens", "3", "--tokens", "--json").stdout)
    plain = edgecomplete("complete", STORY, "--max-tokens", "3", "--tokens")
    rows = plain.stdout.split("--- tokens ---\n")[1].splitlines()
    assert [json.loads(row) for row in rows] == result["completions"][0]["completion_tokens"]


def test_several_streamed_completions_print_like_unstreamed_ones(smollm2_path):
    args = ["complete", STORY, "--n", "3", "--temperature", "1", "--seed", "5", "--max-tokens", "8"]
    whole = edgecomplete(*args)
    streamed = edgecomplete(*args, "--stream")
    assert streamed.returncode == 0, streamed.stderr
    assert completions(streamed.stdout) == completions(whole.stdout)
    assert sorted(completions(streamed.stdout)) == [1, 2, 3]


def test_best_of_with_stream_says_what_to_do_in_cli_terms():
    run = edgecomplete("complete", STORY, "--best-of", "2", "--stream")
    assert run.returncode == 2
    assert run.stderr == ("edgecomplete: error: --best-of cannot be streamed: every candidate must end before "
                          "the best are chosen; drop --stream or --best-of\n")


def test_bad_flags_are_refused_before_a_model_is_loaded():
    run = edgecomplete("complete", STORY, "--temperature", "-1", "--model", "/nonexistent/model.gguf")
    assert run.returncode == 2
    assert run.stderr.startswith("edgecomplete: error: temperature: must be a number >= 0.0")


def test_llama_cpp_log_is_silent_unless_verbose(smollm2_path):
    quiet = edgecomplete("complete", STORY, "--max-tokens", "1", "--context-length", "64")
    assert quiet.returncode == 0 and quiet.stderr == ""
    verbose = edgecomplete("complete", STORY, "--max-tokens", "1", "--context-length", "64", "--verbose")
    assert verbose.returncode == 0
    assert "llama_context: n_ctx" in verbose.stderr


def test_llama_cpp_log_reaches_its_logger_at_llama_cpp_levels(smollm2_path, caplog):
    # llama-cpp-python's callback maps an older ggml enum (its warnings came out as errors,
    # which printed gemma-3-270m's load warnings): a context's setup lines are info.
    with caplog.at_level(logging.DEBUG, logger=NATIVE_LOG):
        with Client(context_length=64) as client:
            client.model_info(MODEL)
    lines = [r for r in caplog.records if r.name == NATIVE_LOG and "llama_context: n_ctx" in r.getMessage()]
    assert lines and all(r.levelno == logging.INFO for r in lines)


@pytest.mark.slow
def test_gemma_loads_without_a_word_on_stderr():
    models.pull("gemma-3-270m")
    run = edgecomplete("complete", "Hi", "--model", "gemma-3-270m", "--max-tokens", "3")
    assert run.returncode == 0
    assert run.stderr == ""


# ---- models show / rm -----------------------------------------------------------------------------

@pytest.fixture
def home_with_smollm2(tmp_path, smollm2_path):
    """An edgecomplete home whose smollm2-135m is a link to the real file (rm removes the link)."""
    folder = tmp_path / "home" / "models"
    folder.mkdir(parents=True)
    (folder / smollm2_path.name).symlink_to(smollm2_path)
    stamp = smollm2_path.with_name(smollm2_path.name + ".verified")
    shutil.copy(stamp, folder / stamp.name)
    return {"EDGECOMPLETE_HOME": str(tmp_path / "home")}, folder / smollm2_path.name


def show(name, env):
    run = edgecomplete("models", "show", name, env=env)
    assert run.returncode == 0, run.stderr
    return dict(re.match(r"([a-z0-9 ]+):\s+(.*)", line).groups() for line in run.stdout.splitlines())


def test_models_show_reads_the_manifest_and_the_gguf(home_with_smollm2):
    env, path = home_with_smollm2
    manifest = models.manifest(MODEL)
    facts = show(MODEL, env)
    assert facts["file"] == str(path)
    assert facts["size"].startswith(f"{manifest.size} bytes")
    assert facts["sha256"] == f"{manifest.sha256} (verified)"
    assert facts["context length"] == "8192 tokens (trained)"
    assert facts["chat template"] == "yes (in the GGUF)"
    assert facts["licence"] == manifest.license
    absent = show("gemma-3-270m", env)  # not installed in this home: the manifest's facts
    assert absent["file"].endswith("(not installed: edgecomplete models pull gemma-3-270m)")
    assert absent["context length"] == "32768 tokens (trained)"


@pytest.mark.slow
def test_models_show_says_a_base_model_has_no_chat_template():
    models.pull("gemma-3-270m")
    assert show("gemma-3-270m", None)["chat template"].startswith("none: a base model")


def test_models_rm_removes_the_weights_and_their_stamp(home_with_smollm2, smollm2_path):
    env, path = home_with_smollm2
    run = edgecomplete("models", "rm", MODEL, env=env)
    assert run.returncode == 0, run.stderr
    assert list(path.parent.iterdir()) == []
    assert smollm2_path.is_file()  # the link went, not the real file
    listed = [line.split() for line in edgecomplete("models", "list", env=env).stdout.splitlines()]
    assert [MODEL, "pullable"] in [line[:2] for line in listed]
    again = edgecomplete("models", "rm", MODEL, env=env)
    assert again.returncode == 2
    assert again.stderr.startswith(f"edgecomplete: error: model '{MODEL}' is not installed")


# ---- chat ---------------------------------------------------------------------------------------

def stored_chats(data):
    from tui.store import Store

    store = Store(Path(data) / "tui.sqlite3")
    try:
        return [store.load(row[0]) for row in store.sessions("chat")]
    finally:
        store.close()


def test_chat_from_a_pipe_replies_to_each_line_and_saves_the_session(tmp_path, smollm2_path):
    env = {"EDGECOMPLETE_DATA": str(tmp_path)}
    run = edgecomplete("chat", "--max-tokens", "6", "--system", "Be brief.", env=env,
                       input="Hello\n\n/max-tokens 4\nWho are you?\n/exit\nnever sent\n")
    assert run.returncode == 0, run.stderr
    (session,) = stored_chats(tmp_path)
    assert session.model == MODEL and session.system_prompt == "Be brief."
    assert [(t.role, t.content) for t in session.turns if t.role == "user"] == [("user", "Hello"),
                                                                              ("user", "Who are you?")]
    replies = [t for t in session.turns if t.role == "assistant"]
    assert [t.request["maximum_tokens"] for t in replies] == [6, 4]
    assert run.stdout == "".join(t.content + "\n" for t in replies)
    for turn in replies:
        assert turn.request["prompt"][0]["data"].endswith("<|im_start|>assistant\n")  # the chat template
        assert turn.response["completions"][0]["completion"] == turn.content
        assert turn.response["num_tokens_generated"] <= turn.request["maximum_tokens"]
    assert "Be brief." in replies[0].request["prompt"][0]["data"]
    assert session.params == {"maximum_tokens": 4, "temperature": 0.0}


def test_chat_commands(tmp_path, smollm2_path):
    env = {"EDGECOMPLETE_DATA": str(tmp_path)}
    lines = ["Hi", "/temperature 0.9", "/regenerate", "/temperature -1", "/clear", "/system Answer in French.",
             "Hello", "/nonsense"]
    run = edgecomplete("chat", "--max-tokens", "3", env=env, input="\n".join(lines) + "\n")
    assert run.returncode == 2  # something was refused
    assert "edgecomplete: error: temperature: must be a number >= 0.0, got -1.0" in run.stderr
    assert "edgecomplete: error: unknown command /nonsense; /help lists the commands" in run.stderr
    second, first = stored_chats(tmp_path)  # most recent first
    assert [t.role for t in first.turns] == ["user", "assistant"]  # regenerated in place
    assert isinstance(first.turns[1].request["seed"], int) and first.turns[1].request["temperature"] == 0.9
    assert second.system_prompt == "Answer in French." and [t.content for t in second.turns][:1] == ["Hello"]


def test_ctrl_c_stops_a_reply_and_the_chat_goes_on(tmp_path, smollm2_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecomplete", "chat", "--max-tokens", "400"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "EDGECOMPLETE_DATA": str(tmp_path)}, preexec_fn=sigint_as_in_a_terminal,
    )
    process.stdin.write(b"Write a long story about a dragon and a knight.\n/max-tokens 2\nThanks\n")
    process.stdin.close()
    assert len(process.stdout.read(40)) == 40  # the story is under way
    process.send_signal(signal.SIGINT)
    process.stdout.read()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    assert b"(stopped)" in err
    (session,) = stored_chats(tmp_path)
    story, thanks = [t for t in session.turns if t.role == "assistant"]
    assert story.stopped and story.response is None and len(story.content) >= 40
    assert not thanks.stopped and thanks.request["maximum_tokens"] == 2


def test_chat_in_a_terminal_reads_lines_and_ends_at_ctrl_d(tmp_path, smollm2_path):
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a chat on a terminal
        os.environ["EDGECOMPLETE_DATA"] = str(tmp_path)
        os.execv(sys.executable, [sys.executable, "-m", "edgecomplete", "chat", "--max-tokens", "3"])
    seen, taken = b"", 0

    def until(text, timeout=120):
        """Wait for `text` in the terminal's output after what was waited for before."""
        nonlocal seen, taken
        deadline = time.monotonic() + timeout
        while text not in seen[taken:]:
            assert time.monotonic() < deadline, seen
            if select.select([terminal], [], [], 0.1)[0]:
                seen += os.read(terminal, 4096)
        taken = seen.index(text, taken) + len(text)

    until(b">>> ")
    os.write(terminal, b"Hi\r")
    until(b"Hi\r\n")  # the terminal's echo
    until(b">>> ")  # the next prompt, after the reply
    os.write(terminal, b"\x04")  # Ctrl+D
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0
    (session,) = stored_chats(tmp_path)
    assert [t.role for t in session.turns] == ["user", "assistant"]
    assert session.turns[1].content.encode() in seen.replace(b"\r\n", b"\n")


@pytest.mark.slow
def test_chat_refuses_a_model_without_a_chat_template(tmp_path):
    models.pull("gemma-3-270m")
    run = edgecomplete("chat", "--model", "gemma-3-270m", env={"EDGECOMPLETE_DATA": str(tmp_path)}, input="Hi\n")
    assert run.returncode == 2
    assert run.stderr.startswith("edgecomplete: error: gemma-3-270m has no chat template")
    assert "edgecomplete complete" in run.stderr
    assert stored_chats(tmp_path) == []


def test_steering_commands_as_a_user_runs_them(tmp_path, client, smollm2_path):
    env = {"EDGECOMPLETE_DATA": str(tmp_path / "data")}
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"negative": "I hated the trip.", "positive": "I loved the trip."}\n\n'
                     '{"negative": "The room was dirty.", "positive": "The room was spotless."}\n')
    created = edgecomplete("steering", "create", "--pair", "The food was cold.", "The food was lovely.",
                           "--file", str(pairs), env=env)
    assert created.returncode == 0, created.stderr
    concept = created.stdout.strip()
    assert concept == concept_id([SteeringPairedExample("The food was cold.", "The food was lovely."),
                                  SteeringPairedExample("I hated the trip.", "I loved the trip."),
                                  SteeringPairedExample("The room was dirty.", "The room was spotless.")])
    listed = edgecomplete("steering", "list", env=env)
    assert listed.stdout.startswith(f"{concept}  3 pairs, first: 'The food was cold.'")
    args = ["complete", "My day was", "--max-tokens", "8", "--json", "--steering-concept", concept]
    steered = edgecomplete(*args, env=env)
    assert steered.returncode == 0, steered.stderr
    request = CompletionRequest(prompt=Prompt.from_text("My day was"), maximum_tokens=8,
                                steering_concepts=[concept])
    with Client(backend=LocalBackend(concepts=ConceptStore(tmp_path / "data" / "steering"))) as here:
        shown = json.loads(steered.stdout)
        assert shown.pop("decode_stats")["decode_steps"] >= 1  # the CLI adds how it was decoded
        assert shown == here.complete(request, MODEL).to_json()
    flipped = edgecomplete(*args, "--steering-strength", f"{concept}=-1", env=env)
    assert flipped.returncode == 0 and json.loads(flipped.stdout) != json.loads(steered.stdout)
    exported = edgecomplete("steering", "export", concept, "--model", MODEL, "-o", str(tmp_path / "c.gguf"), env=env)
    assert exported.returncode == 0 and (tmp_path / "c.gguf").stat().st_size > 0
    imported = edgecomplete("steering", "import", str(tmp_path / "c.gguf"), "--model", MODEL, env=env)
    assert imported.returncode == 0 and len(imported.stdout.strip()) == 64
    # refusals: a message naming the field, status 2, nothing kept
    for bad, says in [(["steering", "create"], "examples: must hold at least one pair"),
                      (["steering", "create", "--pair", "", "x"], "examples[0].negative: must be a non-empty text"),
                      (["complete", "x", "--steering-concept", "nope"], "steering_concepts: 'nope' is not a concept id"),
                      (["steering", "import", str(pairs)], "path: ")]:
        run = edgecomplete(*bad, env=env)
        assert run.returncode == 2 and says in run.stderr, (bad, run.stderr)
    assert len(edgecomplete("steering", "list", env=env).stdout.splitlines()) == 2


def test_chat_image_command_sends_the_image_with_the_next_message(tmp_path, smollm2_path):
    from PIL import Image as PILImage

    from ..fixtures.projector import write_projector

    projector = write_projector(tmp_path / "mmproj.gguf", scale=4.0)
    photo = tmp_path / "photo.png"
    PILImage.new("RGB", (24, 16), (10, 200, 10)).save(photo)
    env = {"EDGECOMPLETE_DATA": str(tmp_path)}
    run = edgecomplete("chat", "--max-tokens", "3", "--mmproj", str(projector), env=env,
                       input=f"/image {photo}\n/image {projector}\nWhat is it?\nAnd now?\n")
    assert run.returncode == 2  # the projector is not an image
    assert "(image 1 for the next message: 24x16 PNG)" in run.stderr and "/image: mmproj.gguf: not an image" in run.stderr
    (session,) = stored_chats(tmp_path)
    first, second = [t for t in session.turns if t.role == "user"]
    assert len(first.images) == 1 and second.images == []
    request = [t for t in session.turns if t.role == "assistant"][0].request
    assert [item["type"] for item in request["prompt"]] == ["text", "image", "text"]
    refused = edgecomplete("chat", "--max-tokens", "3", env=env, input=f"/image {photo}\n")
    assert refused.returncode == 2 and "no vision projector" in refused.stderr


REPEATING = ("Copy the list exactly.\nList: red, green, blue, yellow, purple, orange, black, white.\n"
             "Copy: red, green, blue, yellow, purple, orange, black, white.\nCopy: red, green,")


def test_decode_stats_show_with_verbose_and_json_and_no_speculation_drafts_nothing(smollm2_path):
    args = ["complete", REPEATING, "--max-tokens", "40", "--minimum-tokens", "40", "--json"]
    speculative = edgecomplete(*args, "--verbose")
    assert speculative.returncode == 0, speculative.stderr
    stats = json.loads(speculative.stdout)["decode_stats"]
    assert stats["decode_steps"] + stats["accepted_drafts"] == 39  # the first token comes from the prompt's row
    line = re.search(r"edgecomplete: 40 tokens in (\d+) decode steps; speculation: (\d+) drafted, (\d+) accepted",
                     speculative.stderr)
    assert line and [int(x) for x in line.groups()] == [stats["decode_steps"], stats["drafted_tokens"],
                                                       stats["accepted_drafts"]]
    plain = edgecomplete(*args, "--no-speculation")
    assert json.loads(plain.stdout)["decode_stats"] == {"decode_steps": 39, "drafted_tokens": 0, "accepted_drafts": 0}
    assert json.loads(plain.stdout)["completions"] == json.loads(speculative.stdout)["completions"]
    streamed = edgecomplete(*args, "--stream", "--verbose")
    summary = json.loads(streamed.stdout.splitlines()[-1])
    assert summary["type"] == "completion_summary"
    # how many drafts a step verifies follows measured decode times: the counts may vary, their sum not
    assert summary["decode_stats"]["decode_steps"] + summary["decode_stats"]["accepted_drafts"] == 39
    assert "speculation:" in streamed.stderr


def test_kv_cache_flag_chooses_the_cache_type_and_refuses_others(smollm2_path):
    args = ["complete", "The capital of France is", "--max-tokens", "24", "--json"]
    here = edgecomplete(*args, "--kv-cache", "bf16")
    assert here.returncode == 0, here.stderr
    default = edgecomplete(*args)  # bf16 is the default on the CPU
    assert json.loads(here.stdout)["completions"] == json.loads(default.stdout)["completions"]
    f16 = edgecomplete(*args, "--kv-cache", "f16")
    assert f16.returncode == 0, f16.stderr
    assert json.loads(f16.stdout)["num_tokens_generated"] == 24
    refused = edgecomplete(*args, "--kv-cache", "f32")
    assert refused.returncode == 2 and "--kv-cache: invalid choice: 'f32'" in refused.stderr


@pytest.mark.slow
def test_repack_flags_let_llama_cpp_repack_the_weights_or_not():
    """gemma-3-270m's Q4_K tensors are ones llama.cpp repacks for its multi-row CPU kernels where
    asked (its log names the buffer: AMX for ggml's AMX kernels, else CPU_REPACK). edgecomplete
    repacks by default only where the build has the AMX kernels (which crashed with SIGILL here
    before the Makefile's patch); --repack and --no-repack choose. llama.cpp has a repacked Q4_K
    kernel for x86 with AVX2 (and ARM with its int8 matrix extensions): elsewhere --repack repacks
    nothing, and only the rest is checked."""
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    args = ["complete", "The sea is", "--model", "gemma-3-270m", "--max-tokens", "3", "--verbose"]
    runs = {flag: edgecomplete(*args, *([flag] if flag else [])) for flag in ("", "--no-repack", "--repack")}
    assert all(run.returncode == 0 for run in runs.values()), {flag: run.stderr[-2000:] for flag, run in runs.items()}
    repacked = ("AMX model buffer size", "CPU_REPACK model buffer size")
    assert not any(name in runs["--no-repack"].stderr for name in repacked)
    if default_repack():
        assert "AMX model buffer size" in runs[""].stderr and "AMX model buffer size" in runs["--repack"].stderr
    else:
        assert not any(name in runs[""].stderr for name in repacked)
    if "avx2" not in flags:
        pytest.skip("no AVX2 here: llama.cpp has no repacked Q4_K kernel to load for --repack")
    assert any(name in runs["--repack"].stderr for name in repacked)
