# mk/torch.mk: the torch engine (build tag `torch`: gotch v0.7.0 on Debian's
# libtorch-dev 1.13.x). Included from the Makefile. The default build never
# needs libtorch; these targets do.
#
# The first build compiles gotch's libtch (one C++ file, about 2.5 min and
# 2.4 GB of RAM for one compiler process); later builds take seconds. Never
# run two first builds at once. Flags come from build/torch/env.sh, written by
# setup-torch; `eval "$$(make -s torch-env)"` puts them in your shell.

TORCH_ENV   := build/torch/env.sh
TORCH_PKGS  := ./engine/torch/... ./cmd/diffinv/...
TORCH_FLAGS ?= -count=1 -timeout 30m
# libtorch links OpenBLAS at program start, before package blas can choose
# its kernels, so torch builds get the CPUID choice from the environment
# (an explicit DIFFINV_OPENBLAS_CORETYPE wins).
TORCH_CORE  := $(or $(filter-out auto,$(DIFFINV_OPENBLAS_CORETYPE)),$(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo SkylakeX || (grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo Haswell)))
# Runs a command with the cgo flags of build/torch/env.sh.
TORCH_RUN    = set -a && . ./$(TORCH_ENV) && set +a && $(if $(TORCH_CORE),export OPENBLAS_CORETYPE=$(TORCH_CORE) &&)

.PHONY: setup-torch torch-env build-torch test-torch bench-torch

## setup-torch: install libtorch-dev, check it is 1.13.x, write build/torch/ (compat header, CUDA stubs, cgo flags)
setup-torch:
	@bash scripts/torch/setup.sh

## torch-env: print the cgo flags as shell exports (eval "$$(make -s torch-env)")
torch-env: setup-torch
	@cat $(TORCH_ENV)

## build-torch: bin/diffinv with the torch engine and `diffinv import`
build-torch: setup-torch
	$(TORCH_RUN) $(GO) build -tags torch -o $(BIN) ./cmd/diffinv

## test-torch: go vet and the tests of the torch engine and the CLI, with the torch tag
test-torch: setup-torch
	$(TORCH_RUN) $(GO) vet -tags torch $(TORCH_PKGS)
	$(TORCH_RUN) $(GO) test -tags torch $(TORCH_FLAGS) $(TORCH_PKGS)

## bench-torch: `make bench`'s figures (train_step, eps, eps_vjp) for the torch engine beside the native engine and PyTorch
TORCH_THREADS ?= 2
BENCH_TORCH_FLAGS ?= --config configs/mnist.yaml --batch 64
bench-torch: setup-torch
	$(TORCH_RUN) $(GO) run -tags torch ./engine/torch/benchtorch --threads $(TORCH_THREADS) $(BENCH_TORCH_FLAGS)
