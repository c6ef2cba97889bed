package model

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// benchBatch is the batch of the speed benchmarks (the figure;
// DIFFINV_BENCH_BATCH overrides it).
var benchBatch = envInt("DIFFINV_BENCH_BATCH", 64)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchModel builds config.Default().Model (the MNIST model) with random
// weights and a batch of inputs.
func benchModel(b *testing.B) (*UNet, []int) {
	b.Helper()
	u, ts := benchModelFP32(b)
	if os.Getenv("DIFFINV_BENCH_PRECISION") == "bf16" {
		if err := u.SetPrecision(nn.BF16); err != nil {
			b.Skip(err)
		}
	}
	return u, ts
}

// benchModelFP32 is benchModel in float32 (DIFFINV_BENCH_PRECISION=bf16
// makes benchModel run in bf16; DIFFINV_BENCH_CONFIG=celeba64 builds
// configs/celeba64.yaml's UNet, at DIFFINV_BENCH_BATCH images).
func benchModelFP32(b *testing.B) (*UNet, []int) {
	b.Helper()
	cfg := config.Default().Model
	if os.Getenv("DIFFINV_BENCH_CONFIG") == "celeba64" {
		c, err := config.Load(config.Sources{File: "../configs/celeba64.yaml"})
		if err != nil {
			b.Fatal(err)
		}
		cfg = c.Model
	}
	rng := rand.New(rand.NewSource(1))
	u, err := New(cfg, rng)
	if err != nil {
		b.Fatal(err)
	}
	randomise(u, rng)
	ts := make([]int, benchBatch)
	for i := range ts {
		ts[i] = rng.Intn(1000)
	}
	return u, ts
}

// BenchmarkEps times the forward pass of the MNIST model at batch 64.
func BenchmarkEps(b *testing.B) {
	u, ts := benchModel(b)
	cfg := u.Config()
	x := tensors.Randn(rand.New(rand.NewSource(2)), benchBatch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	if _, err := u.Eps(x, ts); err != nil { // build the graph outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := u.Eps(x, ts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEpsVJP times ε and vᵀ∂ε/∂x (the DPS step) of the MNIST model at
// batch 64.
func BenchmarkEpsVJP(b *testing.B) {
	u, ts := benchModel(b)
	cfg := u.Config()
	rng := rand.New(rand.NewSource(2))
	x := tensors.Randn(rng, benchBatch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	v := tensors.Randn(rng, benchBatch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	if _, _, err := u.EpsVJP(x, ts, v); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := u.EpsVJP(x, ts, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrainStep times forward and backward with every parameter
// gradient (no optimiser) of the MNIST model at batch 64, dropout on.
func BenchmarkTrainStep(b *testing.B) {
	u, ts := benchModel(b)
	cfg := u.Config()
	rng := rand.New(rand.NewSource(2))
	x := tensors.Randn(rng, benchBatch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	eps := tensors.Randn(rng, benchBatch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	tg, err := u.NewTrainGraph(benchBatch, rng)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tg.Step(x, ts, eps); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tg.Step(x, ts, eps); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEpsVJPMemory runs EpsVJP b.N times on a tiny model (use
// -benchtime=1000x) and reports the growth of the live heap between call 10
// and the end as heap-growth-B: it must stay near zero.
func BenchmarkEpsVJPMemory(b *testing.B) {
	rng := rand.New(rand.NewSource(12))
	u, err := New(tinyConfig(), rng)
	if err != nil {
		b.Fatal(err)
	}
	x := tensors.Randn(rng, 2, 2, 8, 8)
	v := tensors.Randn(rng, 2, 2, 8, 8)
	ts := []int{1, 2}
	for i := 0; i < 10; i++ {
		if _, _, err := u.EpsVJP(x, ts, v); err != nil {
			b.Fatal(err)
		}
	}
	base := heapAfterGC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts[0] = i % 1000
		if _, _, err := u.EpsVJP(x, ts, v); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(int64(heapAfterGC())-int64(base)), "heap-growth-B")
}

// shippedBatch is the batch of the pullback benchmark (make check-solvers'
// batch).
const shippedBatch = 16

// BenchmarkShippedPullback times one guided step's network work on the
// shipped MNIST model at batch 16, both ways in each iteration (in
// alternating order, so that load on a shared machine hits both alike):
// "eps+vjp" is what DPS, MCG and ΠGDM run without a Pullbacker (Eps, then
// EpsVJP: two forward passes), "pullback" is EpsPullback and one call of
// its function (one forward pass). The 3vjp case takes three cotangents
// (moment matching's CG iterations: EpsVJP each time, or three calls of one
// pullback's function). ns/op is the sum of both; the metrics are each
// way's seconds per op and their ratio. Run briefly (-benchtime=5x): an
// iteration takes seconds.
func BenchmarkShippedPullback(b *testing.B) {
	u, _, err := Load(filepath.Join("..", "models", "mnist", "model.safetensors"))
	if err != nil {
		b.Skipf("shipped model: %v", err)
	}
	cfg := u.Config()
	rng := rand.New(rand.NewSource(2))
	shape := []int{shippedBatch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
	x := tensors.Randn(rng, shape...)
	vs := []*tensor.Dense{tensors.Randn(rng, shape...), tensors.Randn(rng, shape...), tensors.Randn(rng, shape...)}
	ts := make([]int, shippedBatch)
	for i := range ts {
		ts[i] = rng.Intn(1000)
	}
	plain := func(nv int) error {
		if _, err := u.Eps(x, ts); err != nil {
			return err
		}
		for _, v := range vs[:nv] {
			if _, _, err := u.EpsVJP(x, ts, v); err != nil {
				return err
			}
		}
		return nil
	}
	pull := func(nv int) error {
		_, vjp, err := u.EpsPullback(x, ts)
		if err != nil {
			return err
		}
		for _, v := range vs[:nv] {
			if _, err := vjp(v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := plain(1); err != nil { // build the graphs outside the timing
		b.Fatal(err)
	}
	if err := pull(1); err != nil {
		b.Fatal(err)
	}
	for _, nv := range []int{1, 3} {
		b.Run(fmt.Sprintf("%dvjp", nv), func(b *testing.B) {
			var tPlain, tPull time.Duration
			timed := func(f func(int) error, acc *time.Duration) {
				start := time.Now()
				if err := f(nv); err != nil {
					b.Fatal(err)
				}
				*acc += time.Since(start)
			}
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					timed(plain, &tPlain)
					timed(pull, &tPull)
				} else {
					timed(pull, &tPull)
					timed(plain, &tPlain)
				}
			}
			b.ReportMetric(tPlain.Seconds()/float64(b.N), "eps+vjp-s/op")
			b.ReportMetric(tPull.Seconds()/float64(b.N), "pullback-s/op")
			b.ReportMetric(tPlain.Seconds()/tPull.Seconds(), "speedup")
		})
	}
}
