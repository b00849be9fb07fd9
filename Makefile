# The two set-up commands of the README:
#   make run    creates .venv, installs edgecomplete, pulls the default model if missing, completes a prompt
#   make test   creates .venv, installs edgecomplete with its test tools (and tmux, for the real-terminal
#               tests), pulls both models, builds llama.cpp's llama-server once (the remote-backend
#               tests run it), runs every test
# CMAKE_ARGS (for example -DGGML_CUDA=on) is passed through to the llama-cpp-python build.

PYTHON ?= python3
VENV ?= .venv
PROMPT ?= The future of AI is
MAX_TOKENS ?= 50

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench sanitize clean

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/edgecomplete complete "$(PROMPT)" --max-tokens $(MAX_TOKENS)

test: $(STAMP)
	command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux)  # the real-terminal tests
	$(BIN)/edgecomplete models pull smollm2-135m
	$(BIN)/edgecomplete models pull gemma-3-270m
	$(BIN)/python -m tests.servers.llama_server  # llama.cpp's llama-server, built once per machine
	$(BIN)/python -m pytest -m "slow or not slow"
	BIN=$(BIN) tests/hardening/sanitize.sh  # the C core under ASan + UBSan (about 90 s)

# The C extension built with AddressSanitizer + UndefinedBehaviorSanitizer: the C-core tests and a
# few hundred real completions with every feature; any report fails it.
sanitize: $(STAMP)
	BIN=$(BIN) tests/hardening/sanitize.sh

bench: $(STAMP)
	$(BIN)/python -m pip install -e '.[bench]'
	$(BIN)/python -m bench.sampling
	$(BIN)/python -m bench.candidates
	$(BIN)/python -m bench.streaming
	$(BIN)/python -m bench.speculative
	$(BIN)/python -m bench.chat
	$(BIN)/python -m bench.serve
	$(BIN)/python -m bench.steering
	$(BIN)/python -m bench.images
	$(BIN)/python -m bench.remote
	$(BIN)/python -m bench.tui

clean:
	rm -rf $(VENV) build *.egg-info edgecomplete/_native*.so
