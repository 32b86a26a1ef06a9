# Lab targets, included by the root Makefile: `make lab-up`, `make lab-reset PRESET=bad-json`.
LAB_SH ?= lab/lab.sh
SUITE ?= all
PRESET ?= ok

.PHONY: lab-images lab-up lab-down lab-reset lab-e2e

lab-images: ## build the lab node images (debootstrap + docker import, no registry)
	$(LAB_SH) images $(SUITE)

lab-up: lab-images ## start the lab (3 nodes), write lab/.state/inventory.toml
	$(LAB_SH) up

lab-down: ## remove the lab containers and network
	$(LAB_SH) down

lab-reset: ## regenerate the backup store (PRESET=name) and recreate the nodes
	$(LAB_SH) reset $(PRESET)

lab-e2e: lab-images ## end-to-end tests against the lab (builds ./cmd/prapush)
	go test -count=1 -timeout 15m ./lab/e2e/...
