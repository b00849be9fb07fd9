# The two set-up commands of the README:
#   make run    creates .venv, installs edgecomplete, pulls the default model if missing, completes a prompt
#   make test   creates .venv, installs edgecomplete with its test tools (and tmux, for the real-terminal
#               tests), pulls both models, builds llama.cpp's llama-server once (the remote-backend
#               tests run it), runs every test
# CMAKE_ARGS (for example -DGGML_CUDA=on) is passed through to the llama-cpp-python build.
#
# llama-cpp-python has no wheel for this platform: it is built from its sdist (checked by sha256),
# for this CPU (-march=native). On an x86 CPU with AMX that compiles in ggml's AMX kernels, which
# in the llama.cpp it vendors crash the process (SIGILL at their first tile instruction, wherever
# weights are repacked: ggml-org/llama.cpp#26954), so the sdist is built with
# patches/llama-cpp-python-0.3.36.patch applied (tests/servers/llama_server.py builds
# llama-server the same way). The same patch gives ggml's CPU flash attention a faster path over
# the engine's BF16 KV cache (AVX-512), and multiplies 2 to 12 rows of Q4_1 and Q8_0 weights
# without the AMX tiles (AVX512-VNNI), each row still computed as alone. The built wheel is kept
# per build (version, CMAKE_ARGS, patch, a user's CFLAGS / CXXFLAGS) in the edgecomplete home,
# since pip's own cache would hand back a wheel built otherwise. The pin and the sdist's sha256
# are also in pyproject.toml and llama_server.py: tests/api/test_packaging.py checks that all agree.

PYTHON ?= python3
VENV ?= .venv
PROMPT ?= The future of AI is
MAX_TOKENS ?= 50

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
SDIST := llama_cpp_python-$(lastword $(subst ==, ,$(LLAMA_CPP_PYTHON))).tar.gz
SDIST_SHA256 := 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
PATCH := patches/llama-cpp-python-0.3.36.patch
# the edgecomplete home (edgecomplete.models.home())
HOME_DIR := $(or $(EDGECOMPLETE_HOME),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/edgecomplete)
# one folder per build: a user's CFLAGS / CXXFLAGS go into the key where set
WHEELS := $(HOME_DIR)/wheels/$(shell { printf '%s' '$(LLAMA_CPP_PYTHON) $(CMAKE_ARGS)$(if $(CFLAGS)$(CXXFLAGS), $(CFLAGS) | $(CXXFLAGS))'; cat $(PATCH); } | sha256sum | cut -c1-16)
SOURCE := $(WHEELS).partial/$(SDIST:.tar.gz=)

.PHONY: run test bench sanitize clean

$(STAMP): Makefile pyproject.toml setup.py $(PATCH) $(wildcard csrc/*.c csrc/*.h csrc/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { rm -rf $(WHEELS).partial && \
	  $(BIN)/python -m pip download --no-deps --no-binary llama-cpp-python --no-cache-dir \
	    -d $(WHEELS).partial '$(LLAMA_CPP_PYTHON)' && \
	  echo '$(SDIST_SHA256)  $(WHEELS).partial/$(SDIST)' | sha256sum --check --quiet && \
	  tar -xzf $(WHEELS).partial/$(SDIST) -C $(WHEELS).partial && patch -s -d $(SOURCE) -p1 < $(PATCH) && \
	  $(BIN)/python -m pip wheel --no-cache-dir --no-deps -w $(WHEELS).partial/wheel $(SOURCE) && \
	  rm -rf $(WHEELS) && mv $(WHEELS).partial/wheel $(WHEELS) && rm -rf $(WHEELS).partial; }  # whole, or not there
	$(BIN)/python -m pip install --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl  # this build's, over an older one
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
	$(BIN)/python -m bench.attention
	$(BIN)/python -m bench.speculative
	$(BIN)/python -m bench.chat
	$(BIN)/python -m bench.serve
	$(BIN)/python -m bench.steering
	$(BIN)/python -m bench.images
	$(BIN)/python -m bench.remote
	$(BIN)/python -m bench.tui

clean:
	rm -rf $(VENV) build *.egg-info edgecomplete/_native*.so
