package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/model"
	"github.com/diffinv/diffinv/nn"
)

// errTorchFP32 is what an explicit bf16 gets on the torch engine, which
// runs float32 only (no autocast).
var errTorchFP32 = errors.New("the torch engine runs float32 only; use --precision fp32 or auto")

// precisionFlag is --precision, the arithmetic the network runs in: it
// overrides the config key engine.precision (the highest layer, above
// --set). Precision is a property of the machine and the run, not of the
// model: commands that load a checkpoint never take it from the run config
// stored there (loadCheckpoint).
type precisionFlag struct {
	value string // "" when not given: engine.precision decides
}

func (p *precisionFlag) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.value, "precision", "", "network arithmetic: auto (bf16 where the CPU has AMX/AVX512-BF16 and oneDNN loads, else fp32), bf16 (emulated, slower, on AVX-512 without bf16 units) or fp32 (sets engine.precision, default auto)")
}

// check reports a --precision value that is none of nn.PrecisionNames.
func (p *precisionFlag) check() error {
	if p.value != "" && !slices.Contains(nn.PrecisionNames, p.value) {
		return fmt.Errorf("--precision %q: want one of %s", p.value, strings.Join(nn.PrecisionNames, ", "))
	}
	return nil
}

// set checks --precision and, when given, appends it to cf's --set values
// so that it beats the file, DIFFINV_ENGINE_PRECISION and --set.
func (p *precisionFlag) set(cf *configFlags) error {
	if err := p.check(); err != nil {
		return err
	}
	if p.value != "" {
		cf.sets = append(cf.sets, "engine.precision="+p.value)
	}
	return nil
}

// source names where the setting came from, for errors.
func (p *precisionFlag) source(setting string) string {
	if p.value != "" {
		return "--precision " + p.value
	}
	if setting == "" {
		setting = config.PrecisionAuto
	}
	return "config key engine.precision " + setting
}

// resolvePrecision turns a setting (auto, bf16, fp32; "" is auto) into the
// precision that runs on engine ("native" or "" for the native engine,
// "torch") and a one-line reason. The native engine follows
// nn.ResolvePrecision; the torch engine does no autocast, so it runs fp32
// under auto and refuses an explicit bf16.
func resolvePrecision(setting, engine string) (nn.Precision, string, error) {
	if engine == "torch" {
		switch setting {
		case config.PrecisionBF16:
			return nn.FP32, "", errTorchFP32
		case config.PrecisionFP32:
			return nn.FP32, "fp32 as asked: the torch engine (libtorch, float32)", nil
		case config.PrecisionAuto, "":
			return nn.FP32, "fp32 (auto): the torch engine runs float32 only (no autocast)", nil
		}
		return nn.FP32, "", fmt.Errorf("precision %q: want one of %s", setting, strings.Join(nn.PrecisionNames, ", "))
	}
	return nn.ResolvePrecision(setting)
}

// use resolves cfg's engine.precision (which --precision has set when
// given) for engine, sets it on the native UNets in nets (graphs are built
// afterwards, in it), and prints one line to w naming the precision that
// runs and why: "precision: fp32 (auto): ...". An error names the flag or
// the key it came from and why the precision cannot run.
func (p *precisionFlag) use(w io.Writer, cfg *config.Config, engine string, nets ...*model.UNet) (nn.Precision, string, error) {
	setting := cfg.Engine.Precision
	prec, why, err := resolvePrecision(setting, engine)
	if err != nil {
		return prec, "", fmt.Errorf("%s: %w", p.source(setting), err)
	}
	for _, net := range nets {
		if net == nil {
			continue
		}
		if err := net.SetPrecision(prec); err != nil {
			return prec, "", fmt.Errorf("%s: %w", p.source(setting), err)
		}
	}
	fmt.Fprintf(w, "precision: %s\n", why)
	return prec, why, nil
}
