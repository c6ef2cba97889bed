//go:build torch

package torch

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
)

// Param is one parameter of the network: its state-dict name (guided-
// diffusion's module path) and its shape in PyTorch's layout.
type Param struct {
	Name  string
	Shape []int
}

// Options choose where the network runs.
type Options struct {
	// Device is "cpu" (the default when empty), "cuda" or "cuda:N". CUDA
	// needs a CUDA build of libtorch; it was not tested on this project's
	// machines.
	Device string
	// Threads is libtorch's intra-op thread count for this network's calls
	// (at::set_num_threads on the calling OS thread); 0 keeps libtorch's
	// default (OMP_NUM_THREADS, else the core count).
	Threads int
}

// UNet is guided-diffusion's UNetModel (2-D, unconditional) on libtorch. It
// implements diffusion.Denoiser. Its parameters start at zero; Load fills
// them. Calls are serialised by a mutex; Close frees the libtorch memory.
type UNet struct {
	mu      sync.Mutex
	cfg     config.Model
	dev     gotch.Device
	threads int
	vs      *nn.VarStore
	params  []Param
	vars    map[string]*ts.Tensor
	outCh   int64

	timeEmbed [2]linear
	input     [][]layer
	middle    []layer
	output    [][]layer
	outNorm   norm
	outConv   conv
	drop      dropCtl // dropout of training passes (Trainer); off otherwise
	closed    bool
	// pull is the pending pullback (EpsPullback): its forward graph, kept
	// by libtorch's autograd until the next call on the UNet frees it.
	pull *pullback
}

var _ diffusion.Denoiser = (*UNet)(nil)

// parseDevice maps an Options.Device string to a gotch device.
func parseDevice(s string) (gotch.Device, error) {
	switch {
	case s == "" || s == "cpu":
		return gotch.CPU, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if s != "cuda" {
			if _, err := fmt.Sscanf(s, "cuda:%d", &idx); err != nil || idx < 0 {
				return gotch.Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N with N ≥ 0", s)
			}
		}
		if !gotch.CUDA.IsAvailable() {
			return gotch.Device{}, fmt.Errorf("device %q: libtorch reports no CUDA device (a CPU-only libtorch, or no GPU)", s)
		}
		if n := gotch.CUDA.DeviceCount(); int64(idx) >= n {
			return gotch.Device{}, fmt.Errorf("device %q: libtorch sees %d CUDA device(s)", s, n)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.Device{}, fmt.Errorf("device %q: want cpu, cuda or cuda:N", s)
}

// New builds the UNet described by cfg with zero parameters.
func New(cfg config.Model, opts Options) (*UNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dev, err := parseDevice(opts.Device)
	if err != nil {
		return nil, fmt.Errorf("torch engine: %w", err)
	}
	if opts.Threads < 0 {
		return nil, fmt.Errorf("torch engine: threads = %d, want ≥ 0 (0: libtorch's default)", opts.Threads)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b := &builder{vs: nn.NewVarStore(dev), vars: map[string]*ts.Tensor{}}
	u := &UNet{cfg: cfg, dev: dev, threads: opts.Threads, vs: b.vs}
	u.drop.dev = dev
	b.build(u)
	if b.err == nil {
		b.err = b.vs.Freeze()
	}
	if b.err != nil {
		b.free()
		return nil, fmt.Errorf("torch engine: building the UNet: %w", b.err)
	}
	u.params, u.vars = b.params, b.vars
	return u, nil
}

// ParamsFor lists the parameters of the UNet cfg describes, in PyTorch's
// registration order, without allocating them.
func ParamsFor(cfg config.Model) ([]Param, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &builder{}
	b.build(&UNet{cfg: cfg})
	return b.params, nil
}

// Config returns the model config the network was built from.
func (u *UNet) Config() config.Model { return u.cfg }

// Params lists the parameters in PyTorch's registration order.
func (u *UNet) Params() []Param {
	out := make([]Param, len(u.params))
	for i, p := range u.params {
		out[i] = Param{Name: p.Name, Shape: append([]int(nil), p.Shape...)}
	}
	return out
}

// Shapes maps every parameter name to its shape (checkpoint.Check's want).
func (u *UNet) Shapes() map[string][]int { return ParamShapes(u.params) }

// ParamShapes maps each parameter's name to its shape.
func ParamShapes(params []Param) map[string][]int {
	m := make(map[string][]int, len(params))
	for _, p := range params {
		m[p.Name] = append([]int(nil), p.Shape...)
	}
	return m
}

// Close frees the network's libtorch tensors; the UNet is unusable after.
func (u *UNet) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	u.closed = true
	u.pull.free()
	u.pull = nil
	for _, t := range u.vars {
		drop(t)
	}
	u.vars = nil
}

// builder creates the parameters in a gotch VarStore under their
// guided-diffusion names and assembles the layers.
type builder struct {
	vs     *nn.VarStore
	params []Param
	vars   map[string]*ts.Tensor
	err    error
}

func (b *builder) free() {
	for _, t := range b.vars {
		drop(t)
	}
}

// param adds a zero trainable variable named name ("a.b.c"); without a
// VarStore it only records the name and shape.
func (b *builder) param(name string, shape ...int64) *ts.Tensor {
	if b.err != nil {
		return nil
	}
	sh := make([]int, len(shape))
	for i, d := range shape {
		sh[i] = int(d)
	}
	b.params = append(b.params, Param{Name: name, Shape: sh})
	if b.vs == nil {
		return nil
	}
	parts := strings.Split(name, ".")
	p := b.vs.Root()
	for _, s := range parts[:len(parts)-1] {
		p = p.Sub(s)
	}
	t, err := p.Zeros(parts[len(parts)-1], shape)
	if err != nil {
		b.err = fmt.Errorf("parameter %s: %w", name, err)
		return nil
	}
	b.vars[name] = t
	return t
}

func (b *builder) conv2d(name string, in, out, k, stride int64) *conv {
	return &conv{name: name, w: b.param(name+".weight", out, in, k, k), b: b.param(name+".bias", out), stride: stride, pad: k / 2}
}

func (b *builder) conv1d(name string, in, out int64) conv {
	return conv{name: name, w: b.param(name+".weight", out, in, 1), b: b.param(name+".bias", out), oneD: true}
}

func (b *builder) norm(name string, ch, groups int64, eps float64) norm {
	return norm{name: name, w: b.param(name+".weight", ch), b: b.param(name+".bias", ch), groups: groups, eps: eps}
}

func (b *builder) linear(name string, in, out int64) linear {
	return linear{name: name, w: b.param(name+".weight", out, in), b: b.param(name+".bias", out)}
}

// build mirrors UNetModel.__init__ of guided-diffusion (bench/pytorch/unet.py);
// with model.arch ddpm the same modules compute the DDPM UNet's function
// (bench/pytorch/ddpm_unet.py): GroupNorm ε 1e-6 and Downsample padded at
// the bottom and right only (the timestep embedding is in forward.go).
func (b *builder) build(u *UNet) {
	cfg := u.cfg
	g := int64(cfg.NumGroups)
	mc := int64(cfg.NumChannels)
	embDim := 4 * mc
	u.outCh = int64(cfg.InChannels)
	if cfg.LearnSigma {
		u.outCh *= 2
	}
	ddpm := cfg.Arch == config.ArchDDPM
	eps := 1e-5 // guided-diffusion's GroupNorm32 (PyTorch's default)
	if ddpm {
		eps = 1e-6 // DDPM's Normalize
	}
	nrm := func(name string, ch int64) norm { return b.norm(name, ch, g, eps) }
	heads := func(ch int64) int64 {
		if cfg.NumHeadChannels > 0 {
			return ch / int64(cfg.NumHeadChannels)
		}
		return int64(cfg.NumHeads)
	}
	res := func(name string, in, out int64, up, down bool) *resBlock {
		embOut := out
		if cfg.UseScaleShiftNorm {
			embOut = 2 * out
		}
		r := &resBlock{
			name:       name,
			inNorm:     nrm(name+".in_layers.0", in),
			inConv:     *b.conv2d(name+".in_layers.2", in, out, 3, 1),
			emb:        b.linear(name+".emb_layers.1", embDim, embOut),
			outNorm:    nrm(name+".out_layers.0", out),
			outConv:    *b.conv2d(name+".out_layers.3", out, out, 3, 1),
			scaleShift: cfg.UseScaleShiftNorm,
			up:         up,
			down:       down,
			outCh:      out,
			drop:       &u.drop,
		}
		if in != out {
			r.skip = b.conv2d(name+".skip_connection", in, out, 1, 1)
		}
		return r
	}
	attn := func(name string, ch int64) *attnBlock {
		return &attnBlock{
			name:  name,
			norm:  nrm(name+".norm", ch),
			qkv:   b.conv1d(name+".qkv", ch, 3*ch),
			proj:  b.conv1d(name+".proj_out", ch, ch),
			heads: heads(ch),
		}
	}
	attnAt := map[int]bool{}
	for _, r := range cfg.AttentionResolutions {
		attnAt[cfg.ImageSize/r] = true
	}

	u.timeEmbed = [2]linear{b.linear("time_embed.0", mc, embDim), b.linear("time_embed.2", embDim, embDim)}
	ch := int64(cfg.ChannelMult[0]) * mc
	inputCh := ch
	u.input = [][]layer{{convLayer{b.conv2d("input_blocks.0.0", int64(cfg.InChannels), ch, 3, 1)}}}
	chans := []int64{ch}
	ds := 1
	for level, mult := range cfg.ChannelMult {
		for i := 0; i < cfg.NumResBlocks; i++ {
			p := fmt.Sprintf("input_blocks.%d", len(u.input))
			ls := []layer{res(p+".0", ch, int64(mult)*mc, false, false)}
			ch = int64(mult) * mc
			if attnAt[ds] {
				ls = append(ls, attn(p+".1", ch))
			}
			u.input = append(u.input, ls)
			chans = append(chans, ch)
		}
		if level != len(cfg.ChannelMult)-1 {
			p := fmt.Sprintf("input_blocks.%d.0", len(u.input))
			switch {
			case cfg.ResblockUpdown:
				u.input = append(u.input, []layer{res(p, ch, ch, false, true)})
			case cfg.ConvResample:
				d := downsample{c: b.conv2d(p+".op", ch, ch, 3, 2), padRB: ddpm, name: p}
				if ddpm {
					d.c.pad = 0
				}
				u.input = append(u.input, []layer{d})
			default:
				u.input = append(u.input, []layer{downsample{name: p}})
			}
			chans = append(chans, ch)
			ds *= 2
		}
	}
	u.middle = []layer{
		res("middle_block.0", ch, ch, false, false),
		attn("middle_block.1", ch),
		res("middle_block.2", ch, ch, false, false),
	}
	for level := len(cfg.ChannelMult) - 1; level >= 0; level-- {
		mult := int64(cfg.ChannelMult[level])
		for i := 0; i <= cfg.NumResBlocks; i++ {
			ich := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			p := fmt.Sprintf("output_blocks.%d", len(u.output))
			ls := []layer{res(p+".0", ch+ich, mc*mult, false, false)}
			ch = mc * mult
			if attnAt[ds] {
				ls = append(ls, attn(fmt.Sprintf("%s.%d", p, len(ls)), ch))
			}
			if level > 0 && i == cfg.NumResBlocks {
				q := fmt.Sprintf("%s.%d", p, len(ls))
				switch {
				case cfg.ResblockUpdown:
					ls = append(ls, res(q, ch, ch, true, false))
				case cfg.ConvResample:
					ls = append(ls, upsample{c: b.conv2d(q+".conv", ch, ch, 3, 1), name: q})
				default:
					ls = append(ls, upsample{name: q})
				}
				ds /= 2
			}
			u.output = append(u.output, ls)
		}
	}
	u.outNorm = nrm("out.0", ch)
	u.outConv = *b.conv2d("out.2", inputCh, u.outCh, 3, 1)
}

// Load copies tensors (float32, PyTorch layouts) into the parameters. The
// names and shapes must match Params exactly; the error names every
// missing, unexpected and misshaped tensor.
func (u *UNet) Load(tensors map[string]*tensor.Dense) error {
	if err := checkTensors(tensors, u.Shapes()); err != nil {
		return fmt.Errorf("torch engine: load: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return fmt.Errorf("torch engine: load: the UNet is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev, err := ts.GradSetEnabled(false)
	if err != nil {
		return fmt.Errorf("torch engine: load: %w", err)
	}
	defer ts.GradSetEnabled(prev)
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		src, err := toTorch(tensors[name], u.dev)
		if err != nil {
			return fmt.Errorf("torch engine: load %s: %w", name, err)
		}
		u.vars[name].Copy_(src)
		drop(src)
	}
	return nil
}

// State returns a copy of every parameter as a float32 tensor, by name.
func (u *UNet) State() (map[string]*tensor.Dense, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, fmt.Errorf("torch engine: state: the UNet is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out := make(map[string]*tensor.Dense, len(u.params))
	for _, p := range u.params {
		d, err := fromTorch(u.vars[p.Name])
		if err != nil {
			return nil, fmt.Errorf("torch engine: state %s: %w", p.Name, err)
		}
		out[p.Name] = d
	}
	return out, nil
}

// checkTensors reports missing, unexpected and misshaped tensors.
func checkTensors(got map[string]*tensor.Dense, want map[string][]int) error {
	var missing, extra, bad []string
	for name, shape := range want {
		t, ok := got[name]
		if !ok || t == nil {
			missing = append(missing, name)
			continue
		}
		if s := []int(t.Shape()); !slices.Equal(s, shape) {
			bad = append(bad, fmt.Sprintf("%s has shape %v, want %v", name, s, shape))
		} else if t.Dtype() != tensor.Float32 {
			bad = append(bad, fmt.Sprintf("%s has dtype %v, want float32", name, t.Dtype()))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(missing)+len(extra)+len(bad) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(bad)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("missing %d tensor(s) %s", len(missing), listNames(missing)))
	}
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("%d unexpected tensor(s) %s", len(extra), listNames(extra)))
	}
	if len(bad) > 0 {
		parts = append(parts, fmt.Sprintf("%d misshaped: %s", len(bad), strings.Join(bad, "; ")))
	}
	return fmt.Errorf("tensors do not match the model: %s", strings.Join(parts, "; "))
}

func listNames(names []string) string {
	const max = 10
	if len(names) <= max {
		return fmt.Sprintf("%q", names)
	}
	return fmt.Sprintf("%q and %d more", names[:max], len(names)-max)
}

// toTorch copies a float32 tensor into a new libtorch tensor on dev.
func toTorch(d *tensor.Dense, dev gotch.Device) (*ts.Tensor, error) {
	shape := make([]int64, len(d.Shape()))
	for i, s := range d.Shape() {
		shape[i] = int64(s)
	}
	vals := tensors.F32(d)
	if d.IsScalar() {
		shape = []int64{}
	}
	flat, err := ts.OfSlice(append([]float32(nil), vals...))
	if err != nil {
		return nil, err
	}
	t, err := flat.View(shape, true)
	if err != nil {
		return nil, err
	}
	if dev != gotch.CPU {
		return t.To(dev, true)
	}
	return t, nil
}

// fromTorch copies a float32 libtorch tensor into a new *tensor.Dense.
func fromTorch(t *ts.Tensor) (*tensor.Dense, error) {
	size, err := t.Size()
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(size))
	n := 1
	for i, s := range size {
		shape[i] = int(s)
		n *= int(s)
	}
	c, err := t.Detach(false)
	if err != nil {
		return nil, err
	}
	defer drop(c)
	cc, err := c.Contiguous(false)
	if err != nil {
		return nil, err
	}
	defer drop(cc)
	if cc.DType() != gotch.Float {
		return nil, fmt.Errorf("libtorch tensor has dtype %v, want float32", cc.DType())
	}
	out := make([]float32, n)
	if n > 0 {
		if err := cc.CopyData(out, uint(n)); err != nil {
			return nil, err
		}
	}
	if len(shape) == 0 {
		return tensor.New(tensor.FromScalar(out[0])), nil
	}
	return tensors.FromSlice(out, shape...), nil
}
