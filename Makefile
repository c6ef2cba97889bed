# diffinv: the README documents every target.
GO       ?= go
BIN      := bin/diffinv
PKGS     := ./...
# Tests run on 2 cores in CI; keep the whole suite under 10 minutes.
TESTFLAGS ?= -count=1 -timeout 15m

.PHONY: all setup build test test-slurm demo-faces bench bench-ops train-mnist train-mnist-next train-mnist-cosine train-celeba train-celeba-more ship-celeba check-solvers check-faces check-bf16 experiments paper-mnist paper-celeba demo fmt vet clean

all: build

## setup: install the Debian packages the build needs (idempotent)
setup:
	@bash scripts/setup.sh libopenblas-dev libdnnl-dev

## build: the diffinv command in bin/
build: setup
	$(GO) build -o $(BIN) ./cmd/diffinv

## test: setup, gofmt (a file it would change fails the target), go vet and every test (the fuzz
## seed corpora included)
test: setup
	@gofmt="$$($(GO) env GOROOT)/bin/gofmt"; [ -x "$$gofmt" ] || { echo "test: no gofmt at $$gofmt"; exit 1; }; \
	  unformatted=$$("$$gofmt" -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './build/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted (run make fmt)"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

## test-slurm: a small experiment (scripts/slurm/test-experiment.yaml) as a job array of 3 shards and
## a tiny training cell (scripts/slurm/test-train.yaml) as an array of 2, each with its report job, on
## a real single-node Slurm cluster (scripts/slurm/start.sh installs slurm-wlm and munge when missing
## and starts them: needs root), checked against local runs byte for byte; stops the daemons it
## started (KEEP_SLURM=1 keeps them; scripts/slurm/stop.sh stops them); seconds
test-slurm: build
	bash scripts/slurm/test.sh

## bench: the UNets of configs/mnist.yaml (batch 64) and configs/celeba64.yaml (batch 16) in
## diffinv and PyTorch, fp32 and bf16, side by side (BENCHMARKS.md); BENCH_FLAGS adds flags
BENCH_CONFIGS ?= configs/mnist.yaml:64,configs/celeba64.yaml:16
BENCH_FLAGS ?=
bench: setup
	@bash scripts/setup.sh python3-torch || echo "bench: python3-torch missing; the torch column will read n/a"
	$(GO) build -o $(BIN) ./cmd/diffinv
	./$(BIN) bench unet --configs $(BENCH_CONFIGS) --threads 2 $(BENCH_FLAGS)

## bench-ops: micro-benchmarks of the ops, BLAS and samplers
bench-ops: setup
	$(GO) test -run '^$$' -bench . -benchmem ./internal/blas ./nn

## train-mnist: train the shipped MNIST model from scratch with its five-stage recipe
## (scripts/train_mnist.sh; about 6 hours on 2 cores, resumable: run it again after a stop);
## START=4 starts from the committed stage-3 model, models/mnist-p2 (about 2 hours)
TRAIN_OUT ?= runs/mnist-recipe
START ?= 1
train-mnist: setup
	START=$(START) bash scripts/train_mnist.sh $(TRAIN_OUT)

## train-mnist-next: the candidate successor of the shipped MNIST model (issue 17's real-digit level;
## scripts/train_mnist_next.sh: a 3.9 M-parameter network, 30,000 steps in three resumable pieces of
## about 1.5 h each on 2 cores, each ending with `eval samples` for seeds 1 and 2; STOP=N)
MNIST_NEXT_OUT ?= runs/mnist-next
train-mnist-next: setup
	STOP=$(STOP) bash scripts/train_mnist_next.sh $(MNIST_NEXT_OUT)

## train-mnist-cosine: an issue-17 MNIST candidate (scripts/train_mnist_cosine.sh): the shipped
## 1.19 M network with the improved-DDPM cosine β schedule, 60,000 steps (twice the earlier runs) in
## three resumable pieces of about 1 h each on 2 cores alone, each ending with `eval samples` for
## seeds 1 and 2; STOP=N. Ended at 92.5 / 92.7 % confident, under the real-digit level: not shipped
MNIST_COSINE_OUT ?= runs/mnist-cosine
train-mnist-cosine: setup
	STOP=$(STOP) bash scripts/train_mnist_cosine.sh $(MNIST_COSINE_OUT)

## train-celeba: the CelebA 64 face model (scripts/train_celeba.sh; four resumable pieces of about
## 2.5 h each on 2 cores; STOP=N stops after piece N; CELEBA_OUT sets the folder)
CELEBA_OUT ?= runs/celeba-recipe
STOP ?= 4
train-celeba: setup
	STOP=$(STOP) bash scripts/train_celeba.sh $(CELEBA_OUT)

## train-celeba-more: the face recipe's second phase (scripts/train_celeba_more.sh): from the step-12,000
## weights chosen on val faces (committed: models/celeba64-phase1), fresh Adam, lr 1e-4 cosine to 0
## over 7000 steps, EMA 0.999 warmed up; two resumable pieces of about 1.6 h alone
train-celeba-more: setup
	bash scripts/train_celeba_more.sh $(CELEBA_OUT)

## check-solvers: issue 7's acceptance check on the shipped model (DPS ≥ 2 dB over A†y on sr4 and
## inpaint-box, noise-free DDNM consistent to 1e-3; 16 digits, a few minutes)
check-solvers: setup
	DIFFINV_CHECK_SHIPPED=1 $(GO) test -count=1 -timeout 30m -run TestShippedModelSolvers -v ./cmd/diffinv

## ship-celeba: models/celeba64 from the finished face recipe (scripts/ship_celeba.sh: the weights
## chosen on val faces, phase 1 among the candidates, log, loss curve, 64-sample grids, the quality
## gate for seeds 1 and 2; about 2.3 h alone; SHIP_FROM=FILE ships a model file as it is, ≈ 2 h)
ship-celeba: setup
	bash scripts/ship_celeba.sh $(CELEBA_OUT)

## check-faces: issue 17's acceptance check on the face model (FACE_MODEL, as demo-faces): 32 CelebA test faces,
## DPS ≥ 3 dB over A†y on sr4 and inpaint-box, noise-free DDNM consistent to 1e-3, DDNM+ colorization
## above the grey image. It runs experiments/check-faces.yaml with --resume into CHECK_FACES_OUT (run it
## again after an interruption: finished cells and batches are kept; another FACE_MODEL's go to
## runs/check-faces-NAME), then checks its results.csv;
## about 2 h on 2 cores without AMX (DPS ≈ 100 s a face). FACE_MODEL=DIR checks another model folder.
CHECK_FACES_OUT ?= $(if $(filter models/celeba64,$(FACE_MODEL)),experiments/results/check-faces,runs/check-faces-$(notdir $(FACE_MODEL)))
check-faces: setup
	DIFFINV_CHECK_FACES=1 DIFFINV_CHECK_FACE_MODEL=$(abspath $(FACE_MODEL))/model.safetensors DIFFINV_CHECK_FACES_OUT=$(abspath $(CHECK_FACES_OUT)) $(GO) test -count=1 -timeout 6h -run TestShippedFaceSolvers -v ./cmd/diffinv

## check-bf16: issue 16's bf16 checks (scripts/check_bf16.sh; about 45 minutes, resumable):
## DPS sr4 on 16 digits within 0.3 dB of fp32, a 2000-step MNIST run tracking the fp32 loss
## curve, the shipped model's 1000 DDIM-50 samples passing the quality gate, all in bf16
CHECK_OUT ?= runs/check-bf16
check-bf16: build
	bash scripts/check_bf16.sh $(CHECK_OUT)

## experiments: every experiments/*.yaml with --resume. With the committed results this only
## regenerates their reports (seconds) and runs the cells not computed yet (the newer solvers' cells
## of dps-nonlinear-mnist: about 2 h); EXP_OUT=DIR runs them afresh under DIR/<name> (several hours
## on 2 cores: DPS and MCG at 1000 steps, the training ablation about an hour), EXPERIMENTS="a b"
## picks some.
EXPERIMENTS ?= ablate-dps-scale ablate-steps ablate-noise ddnm-table-mnist dps-nonlinear-mnist dps-table-mnist ablate-loss-weight-mnist
EXP_OUT ?=
experiments: build
	@set -e; for e in $(EXPERIMENTS); do \
	  echo "== experiments/$$e.yaml"; \
	  $(BIN) experiment run experiments/$$e.yaml --resume $(if $(EXP_OUT),--out $(EXP_OUT)/$$e); \
	done

## paper-mnist, paper-celeba: issue 23's paper tables, tuned then run, resumable across sessions
## (scripts/paper_tables.sh; SHARDS=N local processes per step; hours to tens of hours on 2 cores)
paper-mnist: setup
	SHARDS=$(SHARDS) bash scripts/paper_tables.sh mnist
paper-celeba: setup
	SHARDS=$(SHARDS) bash scripts/paper_tables.sh celeba
SHARDS ?= 1

## demo: the main job (see README)
demo: build
	./$(BIN) demo

## demo-faces: the demo on 4 CelebA test faces with the face model (FACE_MODEL: models/celeba64 once
## shipped, until then the interim models/celeba64-phase1): sr4, inpaint-box, deblur-gauss and
## colorize, DPS and DDNM+, the celeba64 task presets
FACE_MODEL ?= $(if $(wildcard models/celeba64/model.safetensors),models/celeba64,models/celeba64-phase1)
demo-faces: build
	./$(BIN) demo --checkpoint $(FACE_MODEL) --dataset celeba-test --n 4 \
		--task sr4,inpaint-box,deblur-gauss,colorize --out out/demo-faces

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet $(PKGS)

clean:
	rm -rf bin build

# The torch engine: setup-torch, build-torch, test-torch, bench-torch.
include mk/torch.mk
