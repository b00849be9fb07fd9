# The two set-up commands of the README:
#   make run    creates .venv, installs edgecomplete, pulls the default model if missing, completes a prompt
#   make test   creates .venv, installs edgecomplete with its test tools (and tmux, for the real-terminal
#               tests), pulls both models, builds llama.cpp's llama-server once (the remote-backend
#               tests run it), runs every test
# CMAKE_ARGS (for example -DGGML_CUDA=on) is passed through to the llama-cpp-python build.
#
# llama-cpp-python has no wheel for this platform: it is built from its sdist, for this CPU
# (-march=native). On an x86 CPU with AMX that compiles in ggml's AMX kernels, and in the llama.cpp
# it vendors they crash the process (SIGILL at their first tile instruction when weights are repacked,
# which llama-server does by default: their tile configuration is optimised away,
# ggml-org/llama.cpp#26954), so on x86 it is built without them (NO_AMX; tests/servers/llama_server.py
# builds llama-server the same way). The built wheel is kept per build flags in the edgecomplete
# home, since pip's own cache would hand back a wheel built with other flags. The version pin is
# also in pyproject.toml and llama_server.py: tests/api/test_packaging.py checks that all agree.

PYTHON ?= python3
VENV ?= .venv
PROMPT ?= The future of AI is
MAX_TOKENS ?= 50

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
NO_AMX := $(if $(filter x86_64 amd64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
# the edgecomplete home (edgecomplete.models.home())
HOME_DIR := $(or $(EDGECOMPLETE_HOME),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/edgecomplete)
# one folder per build: a user's CFLAGS / CXXFLAGS go in with NO_AMX, and into the key where set
WHEELS := $(HOME_DIR)/wheels/$(shell printf '%s' '$(LLAMA_CPP_PYTHON) $(CMAKE_ARGS) $(NO_AMX)$(if $(CFLAGS)$(CXXFLAGS), $(CFLAGS) | $(CXXFLAGS))' | sha256sum | cut -c1-16)

.PHONY: run test bench sanitize clean

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { rm -rf $(WHEELS).partial && \
	  CFLAGS="$(strip $(CFLAGS) $(NO_AMX))" CXXFLAGS="$(strip $(CXXFLAGS) $(NO_AMX))" $(BIN)/python -m pip wheel \
	    --no-cache-dir --no-deps -w $(WHEELS).partial '$(LLAMA_CPP_PYTHON)' && \
	  rm -rf $(WHEELS) && mv $(WHEELS).partial $(WHEELS); }  # whole, or not there
	$(BIN)/python -m pip install --find-links $(WHEELS) -e '.[test]'
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
	$(BIN)/python -m pip install --find-links $(WHEELS) -e '.[bench]'
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
