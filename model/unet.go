package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"sync"

	"go.yaml.in/yaml/v3"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/sysmem"
	"github.com/diffinv/diffinv/nn"
)

// ConfigKey is the checkpoint metadata key holding the model config (JSON
// with config.Model's YAML keys).
const ConfigKey = "config"

// UNet is guided-diffusion's UNetModel on Gorgonia. Its parameters live in
// one name → tensor map shared by every graph built from it (one per batch
// size and purpose, built on first use and cached), so loading weights or an
// optimiser step is seen by all graphs.
//
// A UNet's methods may be called from several goroutines; calls that run a
// graph (TrainGraph.Step and each call of an EpsPullback function included)
// are serialised. An EpsPullback stays valid until the next such call,
// which revokes it. Writing into Params() while another goroutine runs a
// graph is a data race: update weights between runs.
type UNet struct {
	a      *arch
	params map[string]*tensor.Dense

	mu      sync.Mutex
	prec    nn.Precision // what the convolutions run in (SetPrecision)
	evals   map[int]*evalGraph
	vjps    map[int]*vjpGraph
	scratch struct{ emb []float32 }
	// pull is the EpsPullback whose forward pass the graphs hold, until the
	// next call that takes them (lock).
	pull *pullback
}

// lock takes mu for a call that runs a graph or changes the weights, the
// graphs or the precision, and revokes any pending pullback: its forward
// values may be overwritten from now on.
func (u *UNet) lock() {
	u.mu.Lock()
	u.pull = nil
}

// New builds a UNet from cfg with PyTorch's default initialisation drawn
// from rng: kaiming-uniform convolution and linear weights, uniform biases,
// GroupNorm gain 1 and shift 0, and zero output convolutions (out.2, every
// ResBlock's out_layers.3 and every attention proj_out), as guided-diffusion.
func New(cfg config.Model, rng *rand.Rand) (*UNet, error) {
	a, err := newArch(cfg)
	if err != nil {
		return nil, fmt.Errorf("model.New: %w", err)
	}
	if err := CheckMemory(cfg, 1); err != nil {
		return nil, fmt.Errorf("model.New: %w", err)
	}
	u := newUNet(a)
	for _, p := range a.params {
		p.initValues(rng, u.params[p.Name].Data().([]float32))
	}
	return u, nil
}

// NumParams returns the number of parameters of cfg's network without
// allocating it.
func NumParams(cfg config.Model) (int, error) {
	a, err := newArch(cfg)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range a.params {
		n += p.Size()
	}
	return n, nil
}

// CheckMemory returns an error naming the model keys when copies float32
// copies of cfg's weights (1 to hold a network, about 5 to train one:
// weights, gradients, EMA and Adam's two moments) would not fit in the
// memory this machine has available, so that an absurd config (say
// model.num_channels 100000) is refused before anything is allocated.
func CheckMemory(cfg config.Model, copies int) error {
	n, err := NumParams(cfg)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%d copies of the network's %d parameters (model.num_channels %d, model.channel_mult %v, model.num_res_blocks %d)",
		copies, n, cfg.NumChannels, cfg.ChannelMult, cfg.NumResBlocks)
	if copies == 1 {
		what = fmt.Sprintf("the network's %d parameters (model.num_channels %d, model.channel_mult %v, model.num_res_blocks %d)",
			n, cfg.NumChannels, cfg.ChannelMult, cfg.NumResBlocks)
	}
	return sysmem.Check(4*float64(n)*float64(copies), what)
}

func newUNet(a *arch) *UNet {
	u := &UNet{a: a, params: make(map[string]*tensor.Dense, len(a.params)), evals: map[int]*evalGraph{}, vjps: map[int]*vjpGraph{}}
	for _, p := range a.params {
		u.params[p.Name] = tensor.New(tensor.WithShape(p.Shape...), tensor.Of(tensor.Float32))
	}
	return u
}

// Config returns the model config the UNet was built from.
func (u *UNet) Config() config.Model {
	c := u.a.cfg
	c.ChannelMult = append([]int(nil), c.ChannelMult...)
	c.AttentionResolutions = append([]int(nil), c.AttentionResolutions...)
	return c
}

// OutChannels is the number of output channels: in_channels, or twice that
// with learn_sigma.
func (u *UNet) OutChannels() int { return u.a.outCh }

// ParamSpecs returns the parameters' names and shapes in PyTorch's
// state-dict order.
func (u *UNet) ParamSpecs() []ParamSpec {
	out := make([]ParamSpec, len(u.a.params))
	for i, p := range u.a.params {
		out[i] = ParamSpec{Name: p.Name, Shape: append([]int(nil), p.Shape...), init: p.init, fanIn: p.fanIn}
	}
	return out
}

// NumParams is the total number of parameter values.
func (u *UNet) NumParams() int {
	n := 0
	for _, p := range u.a.params {
		n += p.Size()
	}
	return n
}

// Params returns the live parameter map (name → float32 tensor, PyTorch
// shapes). The tensors are shared with every graph: write into their data to
// change the weights (an optimiser step does), never replace them.
func (u *UNet) Params() map[string]*tensor.Dense { return u.params }

// Expected returns the name → shape map a checkpoint of this UNet must match.
func (u *UNet) Expected() map[string][]int { return u.a.expected() }

func (a *arch) expected() map[string][]int {
	m := make(map[string][]int, len(a.params))
	for _, p := range a.params {
		m[p.Name] = append([]int(nil), p.Shape...)
	}
	return m
}

// NewFromTensors builds the UNet of cfg holding values (name → PyTorch-
// shaped float32 tensor). The names and shapes are checked against cfg's
// network before any parameter is allocated, so a file whose config claims
// a huge network but holds small tensors is an error, not an out-of-memory
// crash; non-finite values are an error naming the parameter.
func NewFromTensors(cfg config.Model, values map[string]*tensor.Dense) (*UNet, error) {
	a, err := newArch(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkpoint.Check(values, a.expected()); err != nil {
		return nil, err
	}
	if err := checkValues(values); err != nil {
		return nil, err
	}
	u := newUNet(a)
	for name, t := range values {
		copy(u.params[name].Data().([]float32), t.Data().([]float32))
	}
	return u, nil
}

// checkValues returns an error naming the first tensor of values (in name
// order) that is not a contiguous float32 tensor or holds a NaN or an
// infinity: weights of a corrupt file or a diverged run.
func checkValues(values map[string]*tensor.Dense) error {
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := values[name]
		if t.Dtype() != tensor.Float32 || t.RequiresIterator() {
			return fmt.Errorf("parameter %s has dtype %v (or is a view), want a contiguous float32 tensor", name, t.Dtype())
		}
		for i, v := range t.Data().([]float32) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("parameter %s holds %v at index %d: the weights are not finite (a corrupt file or a diverged run)", name, v, i)
			}
		}
	}
	return nil
}

// SetParams copies values into the parameters, after checking that they are
// exactly the expected names and shapes (the error names every missing,
// extra or misshaped tensor).
func (u *UNet) SetParams(values map[string]*tensor.Dense) error {
	if err := checkpoint.Check(values, u.Expected()); err != nil {
		return err
	}
	if err := checkValues(values); err != nil {
		return err
	}
	u.lock()
	defer u.mu.Unlock()
	for name, t := range values {
		copy(u.params[name].Data().([]float32), t.Data().([]float32))
	}
	return nil
}

// ReleaseGraphs drops the cached forward and VJP graphs (and their
// buffers); the next call builds them again. TrainGraphs are owned by their
// caller and are not affected.
func (u *UNet) ReleaseGraphs() {
	u.lock()
	defer u.mu.Unlock()
	u.evals = map[int]*evalGraph{}
	u.vjps = map[int]*vjpGraph{}
}

// SetPrecision sets the arithmetic of the network's convolutions (nn.FP32,
// the default, or nn.BF16: mixed precision with float32 master weights) and
// drops the cached graphs so that the next call builds them in it. BF16 is
// an error where it cannot run (nn.BF16Available). TrainGraphs built before
// the call keep their precision.
func (u *UNet) SetPrecision(p nn.Precision) error {
	if p == nn.BF16 {
		if ok, why := nn.BF16Available(); !ok {
			return fmt.Errorf("model.SetPrecision: bf16 cannot run here: %s", why)
		}
	} else if p != nn.FP32 {
		return fmt.Errorf("model.SetPrecision: unknown precision %d, want nn.FP32 or nn.BF16", p)
	}
	u.lock()
	defer u.mu.Unlock()
	if u.prec != p {
		u.prec = p
		u.evals = map[int]*evalGraph{}
		u.vjps = map[int]*vjpGraph{}
	}
	return nil
}

// Precision returns the arithmetic the network's convolutions run in.
func (u *UNet) Precision() nn.Precision {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.prec
}

// CopyParamsFrom copies every parameter value of src (same config) into u.
func (u *UNet) CopyParamsFrom(src *UNet) error { return u.SetParams(src.params) }

// EncodeConfig returns cfg as JSON with config.Model's YAML keys, the form
// stored in checkpoint metadata.
func EncodeConfig(cfg config.Model) (string, error) {
	var node yaml.Node
	if err := node.Encode(cfg); err != nil {
		return "", fmt.Errorf("encoding model config: %w", err)
	}
	var m map[string]any
	if err := node.Decode(&m); err != nil {
		return "", fmt.Errorf("encoding model config: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encoding model config: %w", err)
	}
	return string(b), nil
}

// DecodeConfig parses a model config written by EncodeConfig (or by
// bench/pytorch/unet_goldens.py); unknown keys are an error, and a missing
// arch (checkpoints written before model.arch existed) is "adm".
func DecodeConfig(s string) (config.Model, error) {
	var cfg config.Model
	dec := yaml.NewDecoder(bytes.NewReader([]byte(s)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return config.Model{}, fmt.Errorf("decoding model config %q: %w", s, err)
	}
	if cfg.Arch == "" {
		cfg.Arch = config.ArchADM // written before model.arch existed
	}
	return cfg, nil
}

// Save writes the parameters and the model config to path (SaveFile).
func (u *UNet) Save(path string, extra map[string]string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return SaveFile(path, u.params, u.a.cfg, extra)
}

// SaveFile is the one writer of model files (what Load, prior.Open and
// every command read): the weights under their parameter names and the
// model config under ConfigKey, plus the extra metadata entries (a
// training run adds its run config, step and seed: train.SaveModel),
// written atomically (safetensors, temporary file, fsync, rename). An
// extra entry named ConfigKey is an error.
func SaveFile(path string, weights map[string]*tensor.Dense, cfg config.Model, extra map[string]string) error {
	return SaveFileAs(path, weights, cfg, extra, "F32")
}

// SaveFileAs is SaveFile storing the weights as dtype, "F32" or "F16"
// (checkpoint.WriteAs: half the size, each weight rounded to binary16).
func SaveFileAs(path string, weights map[string]*tensor.Dense, cfg config.Model, extra map[string]string, dtype string) error {
	cs, err := EncodeConfig(cfg)
	if err != nil {
		return err
	}
	meta := map[string]string{}
	for k, v := range extra {
		if k == ConfigKey {
			return fmt.Errorf("model.SaveFile: metadata key %q is reserved for the model config", k)
		}
		meta[k] = v
	}
	meta[ConfigKey] = cs
	return checkpoint.SaveAs(path, weights, meta, dtype)
}

// Load rebuilds a UNet from a checkpoint: the config from its metadata, the
// weights from its tensors, which must match the config's parameters
// exactly (an error names every missing, extra or misshaped tensor).
func Load(path string) (*UNet, map[string]string, error) {
	f, err := checkpoint.Load(path)
	if err != nil {
		return nil, nil, err
	}
	cs, ok := f.Metadata[ConfigKey]
	if !ok {
		return nil, nil, fmt.Errorf("model.Load %s: no %q entry in the metadata, so the network cannot be rebuilt (use LoadInto with a config)", path, ConfigKey)
	}
	cfg, err := DecodeConfig(cs)
	if err != nil {
		return nil, nil, fmt.Errorf("model.Load %s: %w", path, err)
	}
	u, err := NewFromTensors(cfg, f.Tensors)
	if err != nil {
		return nil, nil, fmt.Errorf("model.Load %s: %w", path, err)
	}
	return u, f.Metadata, nil
}

// LoadInto copies the weights of a checkpoint into u, ignoring any config
// in its metadata; names and shapes must match u's exactly.
func (u *UNet) LoadInto(path string) error {
	f, err := checkpoint.Load(path)
	if err != nil {
		return err
	}
	if err := u.SetParams(f.Tensors); err != nil {
		return fmt.Errorf("model.LoadInto %s: %w", path, err)
	}
	return nil
}
