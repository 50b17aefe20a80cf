# keysmith developer entry points. `make test` is what CI runs (see .ci/run).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# One cargo target directory outside the repository, shared by every checkout and by CI, so a fresh
# clone does not rebuild the dependency graph from scratch.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/keysmith/cargo-target
CARGO ?= cargo

.PHONY: help tools cluster-up cluster-down demo test upgrade-check lint fmt crds bench bench-gateway bench-smoke

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

tools: ## Build and cache the control-plane binaries, helm and kubectl
	hack/build-tools.sh

cluster-up: ## Start the local control plane (idempotent)
	hack/cluster.sh up

cluster-down: ## Stop the local control plane and remove its state
	hack/cluster.sh down

demo: ## Control plane, simulator and operator with the examples applied, until Ctrl-C
	hack/demo.sh

test: lint cluster-up ## Lints, unit and integration tests on the real control plane, the upgrade check, then the e2e demo
	$(CARGO) test --locked --workspace --all-targets
	hack/chart-check.sh
	hack/upgrade-check.sh
	hack/demo.sh --once

# The base is hack/upgrade-base; UPGRADE_BASE=<rev> checks the takeover from another revision.
upgrade-check: cluster-up ## Takeover from the operator of hack/upgrade-base: no new provider key, no changed Secret, no status write
	hack/upgrade-check.sh

# Flags for `make bench`, e.g. BENCH_ARGS="--n 10000"; see `cargo bench --bench converge -- --help`.
BENCH_ARGS ?=

bench: cluster-up ## Convergence benchmark: 1,000 ApiKeys, operator vs floor, 3 rounds (about 15 minutes)
	$(CARGO) bench --locked --bench converge -- $(BENCH_ARGS)

bench-gateway: ## keysmith-gateway's added latency at 100, 1,000 and 3,000 requests/s against direct calls and the LiteLLM proxy (about 5 minutes)
	hack/bench-gateway.sh

bench-smoke: cluster-up ## The benchmark's plumbing in a minute: 50 ApiKeys, 1 round, 10 s idle (not the measured configuration)
	$(CARGO) bench --locked --bench converge -- --n 50 --rounds 1 --idle 10s --settle 3s $(BENCH_ARGS)

lint: ## rustfmt, clippy (warnings are errors) and hadolint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	hack/lint-dockerfile.sh

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --locked -q -p keysmith -- crds > crds/keysmith.dev.yaml
	cp crds/keysmith.dev.yaml charts/keysmith/crds/keysmith.dev.yaml

fmt: ## Format the code
	$(CARGO) fmt --all
