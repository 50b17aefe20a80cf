# keysmith developer entry points. `make test` is what CI runs (see .ci/run).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# One cargo target directory outside the repository, shared by every checkout and by CI, so a fresh
# clone does not rebuild the dependency graph from scratch.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/keysmith/cargo-target
CARGO ?= cargo

.PHONY: help tools cluster-up cluster-down demo test unit lint fmt crds check-crds

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

tools: ## Build and cache the control-plane binaries, helm and kubectl
	hack/build-tools.sh

cluster-up: ## Start the local control plane (idempotent)
	hack/cluster.sh up

cluster-down: ## Stop the local control plane and remove its state
	hack/cluster.sh down

demo: cluster-up ## Run the operator locally against the control plane until Ctrl-C
	KUBECONFIG=$$(hack/cluster.sh kubeconfig) $(CARGO) run --locked -- run --health-addr 127.0.0.1:8080

test: lint cluster-up ## Lints, then unit and integration tests against the real control plane
	$(CARGO) test --locked --all-targets

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --locked -q -- crds > crds/keysmith.dev.yaml

fmt: ## Format the code
	$(CARGO) fmt --all
