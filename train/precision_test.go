package train

import (
	"context"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/nn"
)

// runRecord runs a short fake training of cfg and returns its "run" record.
func runRecord(t *testing.T, cfg *config.Config, opts RunOptions) (Record, error) {
	t.Helper()
	opts.NewModel = fakeFactory(2, nil, nil)
	opts.Dataset = testData(t, 8)
	if err := Run(context.Background(), cfg, quiet(opts)); err != nil {
		return Record{}, err
	}
	recs, err := readLog(filepath.Join(cfg.Train.Out, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[0].Type != "run" {
		t.Fatalf("log records %+v, want a run record first", recs)
	}
	return recs[0], nil
}

// TestRunRecordsPrecision: the run record holds the precision that runs and
// the reason, resolved from engine.precision (or given by RunOptions, as
// the torch engine's float32-only rule is); bf16 where it cannot run stops
// the run before it starts, naming the key.
func TestRunRecordsPrecision(t *testing.T) {
	short := func() *config.Config {
		c := testConfig(t.TempDir())
		c.Train.Steps, c.Train.SampleEvery = 2, 0
		return c
	}
	bf16, _ := nn.BF16Available()
	for _, setting := range []string{"", "auto", "fp32", "bf16"} {
		cfg := short()
		cfg.Engine.Precision = setting
		rec, err := runRecord(t, cfg, RunOptions{})
		want, why, rerr := nn.ResolvePrecision(setting)
		if setting == "bf16" && !bf16 {
			if err == nil || !strings.Contains(err.Error(), "engine.precision") || !strings.Contains(err.Error(), "bf16 cannot run here") {
				t.Errorf("engine.precision bf16 without bf16 kernels: %v, want an error naming the key and why", err)
			}
			continue
		}
		if rerr != nil || err != nil {
			t.Fatalf("engine.precision %q: %v / %v", setting, rerr, err)
		}
		if rec.Precision != want.String() || rec.PrecisionReason != why || why == "" {
			t.Errorf("engine.precision %q: run record precision %q (%q), want %q (%q)", setting, rec.Precision, rec.PrecisionReason, want, why)
		}
	}
	rec, err := runRecord(t, short(), RunOptions{Precision: nn.FP32, PrecisionReason: "fp32 (auto): the torch engine runs float32 only"})
	if err != nil || rec.Precision != "fp32" || rec.PrecisionReason != "fp32 (auto): the torch engine runs float32 only" {
		t.Errorf("RunOptions precision: %v, record %q (%q)", err, rec.Precision, rec.PrecisionReason)
	}
}

// TestNewUNetPrecision: NewUNet and UNetSampler build their UNet in the
// precision engine.precision resolves to, before the training graph; a
// run whose RunOptions name another precision than the network runs in is
// refused rather than recorded wrongly.
func TestNewUNetPrecision(t *testing.T) {
	bf16, _ := nn.BF16Available()
	for _, setting := range []string{"fp32", "auto", "bf16"} {
		cfg := tinyUNetConfig(t.TempDir())
		cfg.Engine.Precision = setting
		want, _, rerr := nn.ResolvePrecision(setting)
		n, err := NewUNet(cfg, rand.New(rand.NewSource(1)))
		_, serr := UNetSampler(cfg, 2, 2, 1)
		if setting == "bf16" && !bf16 {
			for _, e := range []error{err, serr} {
				if e == nil || !strings.Contains(e.Error(), "engine.precision") {
					t.Errorf("bf16 without bf16 kernels: %v, want an error naming engine.precision", e)
				}
			}
			continue
		}
		if rerr != nil || err != nil || serr != nil {
			t.Fatalf("%s: %v / %v / %v", setting, rerr, err, serr)
		}
		u := n.(*UNet)
		if u.Precision() != want || u.Net.Precision() != want {
			t.Errorf("%s: graph %s, net %s, want %s", setting, u.Precision(), u.Net.Precision(), want)
		}
	}
	cfg := tinyUNetConfig(t.TempDir())
	cfg.Engine.Precision = "fp32"
	err := Run(context.Background(), cfg, quiet(RunOptions{NewModel: NewUNet, Dataset: testData(t, 10), Precision: nn.BF16, PrecisionReason: "bf16 as asked"}))
	if err == nil || !strings.Contains(err.Error(), "runs in fp32") {
		t.Errorf("RunOptions bf16 over an fp32 network: %v, want a refusal", err)
	}
}

// TestEngineIsNotStoredNorCompared: checkpoints and model files carry the
// run config without its engine section, their configs load with the
// default engine, and a resume may change engine.precision (it is no
// setting that must match the trained network).
func TestEngineIsNotStoredNorCompared(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Train.Steps, cfg.Train.SampleEvery = 4, 0
	cfg.Engine.Precision = "fp32"
	if _, err := runRecord(t, cfg, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{CheckpointPath(cfg.Train.Out, 4), filepath.Join(cfg.Train.Out, ModelFile)} {
		f, err := checkpoint.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if doc := f.Metadata[MetaRunConfig]; doc == "" || strings.Contains(doc, "engine") || strings.Contains(doc, "precision") {
			t.Errorf("%s: stored run config holds the engine section (or is empty):\n%s", p, doc)
		}
		_, c, err := LoadModel(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Engine.Precision != config.PrecisionAuto {
			t.Errorf("%s: loaded engine.precision %q, want the default auto", p, c.Engine.Precision)
		}
	}
	again := *cfg
	again.Engine.Precision = "auto"
	again.Train.Steps = 6
	if _, err := compatible(&again, cfg, nil); err != nil {
		t.Errorf("a resume with another engine.precision: %v", err)
	}
	if _, err := runRecord(t, &again, RunOptions{Resume: true}); err != nil {
		t.Errorf("resume with engine.precision auto after fp32: %v", err)
	}
}
