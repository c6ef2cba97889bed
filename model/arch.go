package model

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/diffinv/diffinv/config"
)

// initKind says how a parameter is initialised.
type initKind int

const (
	initUniform    initKind = iota // PyTorch's default for conv / linear: U(−1/√fan_in, 1/√fan_in)
	initZero                       // GroupNorm shift
	initZeroModule                 // zero_module'd layers: the residual and attention blocks' output projections, the final conv
	initOne                        // GroupNorm gain
)

// ParamSpec is one parameter of the network: its PyTorch state-dict name and
// shape (PyTorch layouts: Conv2d O×C×KH×KW, Conv1d O×C×1, Linear Out×In).
type ParamSpec struct {
	// Name is the state-dict key, e.g. "input_blocks.1.0.in_layers.2.weight".
	Name string
	// Shape is the PyTorch shape.
	Shape []int
	init  initKind
	fanIn int
}

// ZeroModule reports whether the parameter belongs to a layer that ADM's
// zero_module initialises to zero (guided_diffusion/unet.py): the last conv
// of each residual block (out_layers.3), each attention block's proj_out and
// the network's final conv (out.2). Their weights grow from zero through
// training, so an EMA lags them most (train.ZeroModuleNormRatio).
func (p ParamSpec) ZeroModule() bool { return p.init == initZeroModule }

// Size is the number of elements of the parameter.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// layer is one module of a TimestepEmbedSequential block.
type layer interface {
	// specs appends the layer's parameters in PyTorch's registration order.
	specs(add func(name string, shape []int, k initKind, fanIn int))
}

// convLayer is nn.Conv2d(in, out, k, stride, padding=k/2).
type convLayer struct {
	name           string
	in, out, k, st int
	zero           bool
}

func (l convLayer) specs(add func(string, []int, initKind, int)) {
	kind := initUniform
	if l.zero {
		kind = initZeroModule
	}
	fan := l.in * l.k * l.k
	add(l.name+".weight", []int{l.out, l.in, l.k, l.k}, kind, fan)
	add(l.name+".bias", []int{l.out}, kind, fan)
}

// normLayer is GroupNorm32(groups, ch).
type normLayer struct {
	name string
	ch   int
}

func (l normLayer) specs(add func(string, []int, initKind, int)) {
	add(l.name+".weight", []int{l.ch}, initOne, 0)
	add(l.name+".bias", []int{l.ch}, initZero, 0)
}

// linearLayer is nn.Linear(in, out).
type linearLayer struct {
	name    string
	in, out int
}

func (l linearLayer) specs(add func(string, []int, initKind, int)) {
	add(l.name+".weight", []int{l.out, l.in}, initUniform, l.in)
	add(l.name+".bias", []int{l.out}, initUniform, l.in)
}

// resBlock is guided-diffusion's ResBlock.
type resBlock struct {
	name       string
	in, out    int
	emb        int
	scaleShift bool
	up, down   bool
}

func (l resBlock) inNorm() normLayer { return normLayer{l.name + ".in_layers.0", l.in} }
func (l resBlock) inConv() convLayer {
	return convLayer{name: l.name + ".in_layers.2", in: l.in, out: l.out, k: 3, st: 1}
}
func (l resBlock) embOut() int {
	if l.scaleShift {
		return 2 * l.out
	}
	return l.out
}
func (l resBlock) embLinear() linearLayer {
	return linearLayer{l.name + ".emb_layers.1", l.emb, l.embOut()}
}
func (l resBlock) outNorm() normLayer { return normLayer{l.name + ".out_layers.0", l.out} }
func (l resBlock) outConv() convLayer {
	return convLayer{name: l.name + ".out_layers.3", in: l.out, out: l.out, k: 3, st: 1, zero: true}
}

// skip returns the 1×1 skip convolution, or false for the identity.
func (l resBlock) skip() (convLayer, bool) {
	if l.in == l.out {
		return convLayer{}, false
	}
	return convLayer{name: l.name + ".skip_connection", in: l.in, out: l.out, k: 1, st: 1}, true
}

func (l resBlock) specs(add func(string, []int, initKind, int)) {
	l.inNorm().specs(add)
	l.inConv().specs(add)
	l.embLinear().specs(add)
	l.outNorm().specs(add)
	l.outConv().specs(add)
	if s, ok := l.skip(); ok {
		s.specs(add)
	}
}

// attnBlock is guided-diffusion's AttentionBlock with QKVAttentionLegacy.
type attnBlock struct {
	name  string
	ch    int
	heads int
}

func (l attnBlock) specs(add func(string, []int, initKind, int)) {
	normLayer{l.name + ".norm", l.ch}.specs(add)
	add(l.name+".qkv.weight", []int{3 * l.ch, l.ch, 1}, initUniform, l.ch)
	add(l.name+".qkv.bias", []int{3 * l.ch}, initUniform, l.ch)
	add(l.name+".proj_out.weight", []int{l.ch, l.ch, 1}, initZeroModule, l.ch)
	add(l.name+".proj_out.bias", []int{l.ch}, initZeroModule, l.ch)
}

// downLayer is Downsample: a stride-2 3×3 conv ("op") or a 2×2 average pool.
// With padRB (arch ddpm) the conv pads one zero row and column at the bottom
// and right only, instead of one on every side.
type downLayer struct {
	name  string
	ch    int
	conv  bool
	padRB bool
}

func (l downLayer) specs(add func(string, []int, initKind, int)) {
	if l.conv {
		convLayer{name: l.name + ".op", in: l.ch, out: l.ch, k: 3, st: 2}.specs(add)
	}
}

// upLayer is Upsample: nearest 2× then an optional 3×3 conv ("conv").
type upLayer struct {
	name string
	ch   int
	conv bool
}

func (l upLayer) specs(add func(string, []int, initKind, int)) {
	if l.conv {
		convLayer{name: l.name + ".conv", in: l.ch, out: l.ch, k: 3, st: 1}.specs(add)
	}
}

// arch is the module tree of a UNetModel built from a config.
type arch struct {
	cfg        config.Model
	embDim     int // time_embed_dim = 4·num_channels
	outCh      int // in_channels, doubled with learn_sigma
	input      [][]layer
	middle     []layer
	output     [][]layer
	outCh0     int // channels entering out (out.0's GroupNorm)
	inputCh    int // channels of input_blocks.0, which out.2 reads (as guided-diffusion's input_ch)
	params     []ParamSpec
	paramIndex map[string]int
	ddpm       bool    // model.arch ddpm: DDPM embedding, Downsample padding and ε
	normEps    float64 // every GroupNorm's ε
}

// isDDPM reports whether cfg selects the DDPM variant; an empty arch (a
// checkpoint written before model.arch existed) is guided-diffusion's.
func isDDPM(cfg config.Model) bool { return cfg.Arch == config.ArchDDPM }

// Validate checks that cfg describes a buildable UNet: config.Model.Validate.
func Validate(cfg config.Model) error { return cfg.Validate() }

// newArch mirrors UNetModel.__init__ (guided-diffusion) to build the module
// tree and the ordered parameter list.
func newArch(cfg config.Model) (*arch, error) {
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	mc := cfg.NumChannels
	a := &arch{cfg: cfg, embDim: 4 * mc, outCh: cfg.InChannels, ddpm: isDDPM(cfg), normEps: normEps}
	if a.ddpm {
		a.normEps = ddpmNormEps
	}
	if cfg.LearnSigma {
		a.outCh = 2 * cfg.InChannels
	}
	attnAt := map[int]bool{}
	for _, r := range cfg.AttentionResolutions {
		attnAt[cfg.ImageSize/r] = true
	}
	heads := func(ch int) int {
		if cfg.NumHeadChannels > 0 {
			return ch / cfg.NumHeadChannels
		}
		return cfg.NumHeads
	}
	rb := func(name string, in, out int) resBlock {
		return resBlock{name: name, in: in, out: out, emb: a.embDim, scaleShift: cfg.UseScaleShiftNorm}
	}
	ch := cfg.ChannelMult[0] * mc
	inputCh := ch
	a.input = append(a.input, []layer{convLayer{name: "input_blocks.0.0", in: cfg.InChannels, out: ch, k: 3, st: 1}})
	chans := []int{ch}
	ds := 1
	for level, mult := range cfg.ChannelMult {
		for i := 0; i < cfg.NumResBlocks; i++ {
			p := fmt.Sprintf("input_blocks.%d", len(a.input))
			ls := []layer{rb(p+".0", ch, mult*mc)}
			ch = mult * mc
			if attnAt[ds] {
				ls = append(ls, attnBlock{p + ".1", ch, heads(ch)})
			}
			a.input = append(a.input, ls)
			chans = append(chans, ch)
		}
		if level != len(cfg.ChannelMult)-1 {
			p := fmt.Sprintf("input_blocks.%d.0", len(a.input))
			if cfg.ResblockUpdown {
				r := rb(p, ch, ch)
				r.down = true
				a.input = append(a.input, []layer{r})
			} else {
				a.input = append(a.input, []layer{downLayer{p, ch, cfg.ConvResample, a.ddpm}})
			}
			chans = append(chans, ch)
			ds *= 2
		}
	}
	a.middle = []layer{rb("middle_block.0", ch, ch), attnBlock{"middle_block.1", ch, heads(ch)}, rb("middle_block.2", ch, ch)}
	for level := len(cfg.ChannelMult) - 1; level >= 0; level-- {
		mult := cfg.ChannelMult[level]
		for i := 0; i <= cfg.NumResBlocks; i++ {
			ich := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			p := fmt.Sprintf("output_blocks.%d", len(a.output))
			ls := []layer{rb(p+".0", ch+ich, mc*mult)}
			ch = mc * mult
			if attnAt[ds] {
				ls = append(ls, attnBlock{fmt.Sprintf("%s.%d", p, len(ls)), ch, heads(ch)})
			}
			if level > 0 && i == cfg.NumResBlocks {
				q := fmt.Sprintf("%s.%d", p, len(ls))
				if cfg.ResblockUpdown {
					r := rb(q, ch, ch)
					r.up = true
					ls = append(ls, r)
				} else {
					ls = append(ls, upLayer{q, ch, cfg.ConvResample})
				}
				ds /= 2
			}
			a.output = append(a.output, ls)
		}
	}
	a.outCh0, a.inputCh = ch, inputCh

	a.paramIndex = map[string]int{}
	add := func(name string, shape []int, k initKind, fan int) {
		a.paramIndex[name] = len(a.params)
		a.params = append(a.params, ParamSpec{Name: name, Shape: shape, init: k, fanIn: fan})
	}
	linearLayer{"time_embed.0", mc, a.embDim}.specs(add)
	linearLayer{"time_embed.2", a.embDim, a.embDim}.specs(add)
	for _, blk := range a.input {
		for _, l := range blk {
			l.specs(add)
		}
	}
	for _, l := range a.middle {
		l.specs(add)
	}
	for _, blk := range a.output {
		for _, l := range blk {
			l.specs(add)
		}
	}
	normLayer{"out.0", ch}.specs(add)
	convLayer{name: "out.2", in: inputCh, out: a.outCh, k: 3, st: 1, zero: true}.specs(add)
	return a, nil
}

// initValues fills a parameter with PyTorch's default initialisation.
func (p ParamSpec) initValues(rng *rand.Rand, dst []float32) {
	switch p.init {
	case initZero, initZeroModule:
		for i := range dst {
			dst[i] = 0
		}
	case initOne:
		for i := range dst {
			dst[i] = 1
		}
	default:
		// kaiming_uniform_(a=√5) gives bound 1/√fan_in for weights; the
		// bias default is the same bound.
		bound := 1 / math.Sqrt(float64(p.fanIn))
		for i := range dst {
			dst[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
}
