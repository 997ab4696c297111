# Tiers: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SRC := operator runtime tests

.PHONY: install system-deps build image crds argocd manifests generate verify lint test demo frontend frontend-test dev-up dev-down kind-up kind-deploy kind-down bench-realtime bench-stream bench-batch bench-operator

install: $(VENV)/.installed  ## the Python environment, editable
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

system-deps:  ## Debian packages the dev environment runs (redis-server, openssl, Java, Maven, podman)
	bash tools/install-system-deps.sh

build: install  ## the local control plane's binaries and helm, from the Go module proxy (cached)
	$(PY) -m tiers.cli dev build

image: system-deps install frontend  ## the image of every entry point, tiers:<version> in podman's store, from the Dockerfile without Docker (cached)
	$(PY) -m tiers.devenv.image

# Generated files: from tiers.api the CRDs, the chart's copies of them and its values schema; from
# the operator's status functions the Argo CD health samples; from the chart dist/install.yaml.
GENERATED := crds/ charts/tiers/templates/crds/ charts/tiers/values.schema.json \
  charts/tiers/files/dashboards/ examples/argocd/ dist/

crds: install  ## regenerate crds/, the chart's CRD templates, its values schema and its dashboards from tiers.api
	$(PY) -m tiers.api.crdgen crds --chart charts/tiers
	$(PY) -m tiers.api.chartvalues charts/tiers/values.schema.json
	$(PY) -m tiers.api.dashboards charts/tiers/files/dashboards

argocd: install  ## examples/argocd/: the health checks' samples (from the operator's status functions) and argocd-cm.yaml
	$(PY) -m tiers.devenv.argocd examples/argocd

manifests: crds  ## dist/install.yaml: the chart rendered with its defaults, CRDs first (builds helm once)
	$(PY) -m tiers.devenv.plain_manifests dist/install.yaml

generate: crds argocd manifests  ## every generated file

verify: generate  ## fail when generated files drift from their sources
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
	  git status --short -- $(GENERATED); \
	  echo "generated files drifted from their sources: run 'make generate' and commit the result"; exit 1; fi

lint: install
	$(VENV)/bin/ruff check $(SRC)
	$(VENV)/bin/ruff format --check $(SRC)
	$(VENV)/bin/mypy operator/tiers runtime/tiers
	$(VENV)/bin/lint-imports

# The console's frontend: npm ci from the committed lockfile, then Vite builds frontend/dist
# (the console backend serves it).
frontend/node_modules/.installed: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend: frontend/node_modules/.installed  ## build the console's frontend into frontend/dist
	cd frontend && npm run --silent build

frontend-test: frontend/node_modules/.installed  ## the frontend's types and unit tests (vitest)
	cd frontend && npx tsc -b && npx vitest run

test: system-deps verify lint build frontend frontend-test image  ## everything: generated-file drift, lint, types, unit, frontend and integration tests (browser tests drive Chromium against frontend/dist; the image tests run the image built first, outside any test's time limit)
	$(PY) -m pytest

demo: system-deps install frontend  ## the whole system on this machine, with the console; Ctrl-C stops it
	$(PY) -m tiers.devenv.demo

dev-up: system-deps install
	$(PY) -m tiers.cli dev up

dev-down: install
	$(PY) -m tiers.cli dev down

# A kind cluster for users with Docker and kind (the machines these tests run on have neither:
# nothing here runs these three targets).
KIND_CLUSTER := tiers
VERSION := $(shell sed -n 's/^appVersion: //p' charts/tiers/Chart.yaml)

kind-up:  ## a kind cluster from kind-config.yaml (needs Docker and kind)
	kind create cluster --config kind-config.yaml

kind-deploy:  ## build the image, load it into kind, helm install the chart, apply the examples
	docker build -t tiers:$(VERSION) .
	kind load docker-image tiers:$(VERSION) --name $(KIND_CLUSTER)
	helm upgrade --install tiers charts/tiers --namespace tiers-system --create-namespace --wait
	kubectl apply -f examples/kind/mockllm.yaml
	kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
	@# The example's fallback backend reads its key from this Secret: a placeholder until you set yours.
	kubectl -n demo create secret generic azure-openai --from-literal=api-key=replace-me --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n demo apply -f examples/01-realtime/ -f examples/02-stream/ -f examples/03-batch/ -f examples/kind/chat-nodeport.yaml
	kubectl get tiers -n demo
	@echo "the example endpoint: OPENAI_BASE_URL=http://127.0.0.1:8080/v1 (once chat is Ready)"

kind-down:  ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

bench-realtime: system-deps install  ## the gateway beside its mock floor and the LiteLLM proxy (about 3 min; BENCH_ARGS="--quick --skip-litellm" for a smoke run)
	@command -v wrk >/dev/null || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  echo "installing: wrk" >&2; export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q --no-install-recommends wrk >/dev/null; }
	$(PY) bench/realtime.py $(BENCH_ARGS)

bench-stream: system-deps install  ## the stream tier: Kafka -> Spark job -> mock model -> Kafka beside Kafka's own ceiling, chat and completions variants (under 10 min; BENCH_ARGS="--quick" for a 2-min smoke run)
	$(PY) bench/stream.py $(BENCH_ARGS)

bench-batch: system-deps install  ## the batch tier: 1,000,000 records through the Spark job and the mock model beside Spark's own pass-through and a plain asyncio loop (under 10 min; BENCH_ARGS="--quick" for a 3-min smoke run)
	$(PY) bench/batch.py $(BENCH_ARGS)

bench-operator: system-deps install  ## the operator at 1,000 objects on the local control plane beside a kopf operator that only stamps a condition (about 10 min; BENCH_ARGS="--quick" for 100 objects)
	$(PY) bench/operator_scale.py $(BENCH_ARGS)
