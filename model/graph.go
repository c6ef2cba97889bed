package model

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/nn"
)

// normEps is GroupNorm's ε (PyTorch's default, guided-diffusion's value);
// ddpmNormEps is the DDPM UNet's (model.arch ddpm).
const (
	normEps     = 1e-5
	ddpmNormEps = 1e-6
)

// boundParam is a graph node bound to (a view of) a parameter tensor:
// elements [off, off+size) of the parameter's data, in the node's shape.
type boundParam struct {
	name string
	off  int
	node *G.Node
}

// net is one UNet graph of a fixed batch size.
type net struct {
	g      *G.ExprGraph
	batch  int
	x      *G.Node       // N×C×H×W input image
	emb    *G.Node       // N×num_channels sinusoidal timestep embedding
	xv     *tensor.Dense // value bound to x (refilled each call)
	embv   *tensor.Dense // value bound to emb
	out    *G.Node       // N×outCh×H×W network output
	params []boundParam
	// drop controls every dropout node (training graphs with dropout > 0).
	drop *nn.Dropout
	ts   []float64 // timestep scratch for the embedding
	ddpm bool      // DDPM's timestep embedding (model.arch ddpm)
	// salt renames every input node (leaf) when > 0: a rebuild after a
	// hash collision (see compiled).
	salt int
	// keep lists the nodes besides out whose values are read after a run
	// of a graph with shared buffers; plan is that graph's sharing.
	keep G.Nodes
	plan *nn.SharePlan
}

// leaf returns the node name of input name: name itself, or with the
// graph's salt appended.
func (nt *net) leaf(name string) string {
	if nt.salt == 0 {
		return name
	}
	return fmt.Sprintf("%s~%d", name, nt.salt)
}

// builder assembles a net.
type builder struct {
	u    *UNet
	n    *net
	nhwc bool // activations are N×H×W×C (bf16 graphs), else N×C×H×W
}

// param returns a node bound to elements [off, off+prod(shape)) of
// parameter name, in the given shape (PyTorch's when shape is nil). The
// node shares memory with the parameter tensor, so every graph sees the
// current weights.
func (b *builder) param(name string, off int, shape ...int) (*G.Node, error) {
	t, ok := b.u.params[name]
	if !ok {
		return nil, fmt.Errorf("model: internal error: no parameter %q", name)
	}
	if shape == nil {
		shape = []int(t.Shape().Clone())
	}
	size := 1
	for _, d := range shape {
		size *= d
	}
	data := t.Data().([]float32)
	if off+size > len(data) {
		return nil, fmt.Errorf("model: internal error: view [%d, %d) of %s beyond its %d values", off, off+size, name, len(data))
	}
	view := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data[off:off+size]))
	node := G.NewTensor(b.n.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(b.n.leaf(fmt.Sprintf("%s@%d", name, off))), G.WithValue(view))
	b.n.params = append(b.n.params, boundParam{name: name, off: off, node: node})
	return node, nil
}

// weightBias returns layer name's whole weight and bias parameters.
func (b *builder) weightBias(name string) (w, bias *G.Node, err error) {
	if w, err = b.param(name+".weight", 0); err != nil {
		return nil, nil, err
	}
	if bias, err = b.param(name+".bias", 0); err != nil {
		return nil, nil, err
	}
	return w, bias, nil
}

// conv applies convLayer l (stride l.st, padding k/2).
func (b *builder) conv(l convLayer, x *G.Node) (*G.Node, error) { return b.convPad(l, x, l.k/2) }

// convPad applies convLayer l with padding pad on every side.
func (b *builder) convPad(l convLayer, x *G.Node, pad int) (*G.Node, error) {
	w, bias, err := b.weightBias(l.name)
	if err != nil {
		return nil, err
	}
	y, err := b.conv2d(x, w, bias, l.st, pad)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return y, nil
}

// conv1x1 applies a PyTorch Conv1d(kernel 1) parameter pair (weight O×C×1)
// to x N×C×H×W, reading the weight as O×C×1×1; rows [r0, r1) of the output
// channels only.
func (b *builder) conv1x1(name string, x *G.Node, in, r0, r1 int) (*G.Node, error) {
	w, err := b.param(name+".weight", r0*in, r1-r0, in, 1, 1)
	if err != nil {
		return nil, err
	}
	bias, err := b.param(name+".bias", r0, r1-r0)
	if err != nil {
		return nil, err
	}
	y, err := b.conv2d(x, w, bias, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return y, nil
}

// norm applies GroupNorm (with SiLU when act) of layer l.
func (b *builder) norm(l normLayer, x *G.Node, act bool) (*G.Node, error) {
	gamma, beta, err := b.weightBias(l.name)
	if err != nil {
		return nil, err
	}
	y, err := b.groupNorm(x, gamma, beta, act)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return y, nil
}

// normScaleShiftSiLU is SiLU(GroupNorm(x)·(1 + scale) + shift) with the
// GroupNorm of layer l: one fused op in channels-last (bf16) graphs
// (nn.GroupNormScaleShiftSiLUNHWC), the three ops otherwise.
func (b *builder) normScaleShiftSiLU(l normLayer, x, scale, shift *G.Node) (*G.Node, error) {
	if b.nhwc {
		gamma, beta, err := b.weightBias(l.name)
		if err != nil {
			return nil, err
		}
		return nn.GroupNormScaleShiftSiLUNHWC(x, gamma, beta, scale, shift, b.u.a.cfg.NumGroups, b.u.a.normEps)
	}
	h, err := b.norm(l, x, false)
	if err != nil {
		return nil, err
	}
	if h, err = nn.ScaleShift(h, scale, shift); err != nil {
		return nil, err
	}
	return nn.SiLU(h)
}

// linearRows applies rows [r0, r1) of linear layer name (weight Out×In) to
// x N×In: y = x·W[r0:r1]ᵀ + b[r0:r1], N×(r1−r0).
func (b *builder) linearRows(name string, x *G.Node, in, r0, r1 int) (*G.Node, error) {
	w, err := b.param(name+".weight", r0*in, r1-r0, in)
	if err != nil {
		return nil, err
	}
	bias, err := b.param(name+".bias", r0, r1-r0)
	if err != nil {
		return nil, err
	}
	y, err := b.linear(x, w, bias)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return y, nil
}

// dropout applies the graph's dropout (training graphs only).
func (b *builder) dropout(x *G.Node) (*G.Node, error) {
	if b.n.drop == nil {
		return x, nil
	}
	return b.n.drop.Apply(x)
}

// resBlock applies ResBlock l to x with the SiLU'd embedding semb (N×E).
func (b *builder) resBlock(l resBlock, x, semb *G.Node) (*G.Node, error) {
	var h *G.Node
	var err error
	if h, err = b.norm(l.inNorm(), x, true); err != nil {
		return nil, err
	}
	if l.up || l.down {
		resample := b.avgPool2
		if l.up {
			resample = b.upsample2
		}
		if h, err = resample(h); err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		if x, err = resample(x); err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
	}
	if h, err = b.conv(l.inConv(), h); err != nil {
		return nil, err
	}
	el := l.embLinear()
	if l.scaleShift {
		scale, err := b.linearRows(el.name, semb, el.in, 0, l.out)
		if err != nil {
			return nil, err
		}
		shift, err := b.linearRows(el.name, semb, el.in, l.out, 2*l.out)
		if err != nil {
			return nil, err
		}
		if h, err = b.normScaleShiftSiLU(l.outNorm(), h, scale, shift); err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
	} else {
		e, err := b.linearRows(el.name, semb, el.in, 0, l.out)
		if err != nil {
			return nil, err
		}
		if h, err = b.addChannel(h, e); err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		if h, err = b.norm(l.outNorm(), h, true); err != nil {
			return nil, err
		}
	}
	if h, err = b.dropout(h); err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	if h, err = b.conv(l.outConv(), h); err != nil {
		return nil, err
	}
	if s, ok := l.skip(); ok {
		if x, err = b.conv(s, x); err != nil {
			return nil, err
		}
	}
	y, err := nn.Add(x, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return y, nil
}

// attnBlock applies AttentionBlock l to x.
func (b *builder) attnBlock(l attnBlock, x *G.Node) (*G.Node, error) {
	h, err := b.norm(normLayer{l.name + ".norm", l.ch}, x, false)
	if err != nil {
		return nil, err
	}
	qkv, err := b.conv1x1(l.name+".qkv", h, l.ch, 0, 3*l.ch)
	if err != nil {
		return nil, err
	}
	a, err := b.qkvAttention(qkv, l.heads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	p, err := b.conv1x1(l.name+".proj_out", a, l.ch, 0, l.ch)
	if err != nil {
		return nil, err
	}
	y, err := nn.Add(x, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return y, nil
}

// layer applies one module of a TimestepEmbedSequential.
func (b *builder) layer(l layer, x, semb *G.Node) (*G.Node, error) {
	switch l := l.(type) {
	case convLayer:
		return b.conv(l, x)
	case resBlock:
		return b.resBlock(l, x, semb)
	case attnBlock:
		return b.attnBlock(l, x)
	case downLayer:
		if !l.conv {
			return b.avgPool2(x)
		}
		cl := convLayer{name: l.name + ".op", in: l.ch, out: l.ch, k: 3, st: 2}
		if !l.padRB {
			return b.conv(cl, x)
		}
		xp, err := b.pad2d(x, 0, 1, 0, 1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		return b.convPad(cl, xp, 0)
	case upLayer:
		y, err := b.upsample2(x)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		if l.conv {
			return b.conv(convLayer{name: l.name + ".conv", in: l.ch, out: l.ch, k: 3, st: 1}, y)
		}
		return y, nil
	}
	return nil, fmt.Errorf("model: internal error: unknown layer %T", l)
}

// build builds the UNet graph for batch size n; a non-nil drop (training
// graphs) applies dropout before each ResBlock's last convolution.
func (u *UNet) build(n int, drop *nn.Dropout, salt int) (*net, error) {
	if n < 1 {
		return nil, fmt.Errorf("model: batch size %d, want ≥ 1", n)
	}
	a := u.a
	cfg := a.cfg
	s := cfg.ImageSize
	nt := &net{g: G.NewGraph(), batch: n, drop: drop, ts: make([]float64, n), ddpm: a.ddpm, salt: salt}
	b := &builder{u: u, n: nt, nhwc: u.prec == nn.BF16}
	nt.xv = tensor.New(tensor.WithShape(n, cfg.InChannels, s, s), tensor.Of(tensor.Float32))
	nt.embv = tensor.New(tensor.WithShape(n, cfg.NumChannels), tensor.Of(tensor.Float32))
	nt.x = G.NewTensor(nt.g, tensor.Float32, 4, G.WithShape(n, cfg.InChannels, s, s), G.WithName(nt.leaf("x")), G.WithValue(nt.xv))
	nt.emb = G.NewMatrix(nt.g, tensor.Float32, G.WithShape(n, cfg.NumChannels), G.WithName(nt.leaf("timestep_embedding")), G.WithValue(nt.embv))

	// time_embed: Linear, SiLU, Linear; every ResBlock's emb_layers starts
	// with SiLU, computed once here.
	e, err := b.linearRows("time_embed.0", nt.emb, cfg.NumChannels, 0, a.embDim)
	if err != nil {
		return nil, err
	}
	if e, err = nn.SiLU(e); err != nil {
		return nil, err
	}
	if e, err = b.linearRows("time_embed.2", e, a.embDim, 0, a.embDim); err != nil {
		return nil, err
	}
	semb, err := nn.SiLU(e)
	if err != nil {
		return nil, err
	}

	h := nt.x
	if b.nhwc {
		// bf16 graphs keep activations channels-last from the first
		// convolution to the last (see ops.go).
		if h, err = nn.ToNHWC(h); err != nil {
			return nil, err
		}
	}
	var hs []*G.Node
	for _, blk := range a.input {
		for _, l := range blk {
			if h, err = b.layer(l, h, semb); err != nil {
				return nil, err
			}
		}
		hs = append(hs, h)
	}
	for _, l := range a.middle {
		if h, err = b.layer(l, h, semb); err != nil {
			return nil, err
		}
	}
	for _, blk := range a.output {
		skip := hs[len(hs)-1]
		hs = hs[:len(hs)-1]
		if h, err = b.concat(h, skip); err != nil {
			return nil, err
		}
		for _, l := range blk {
			if h, err = b.layer(l, h, semb); err != nil {
				return nil, err
			}
		}
	}
	if h, err = b.norm(normLayer{"out.0", a.outCh0}, h, true); err != nil {
		return nil, err
	}
	if h, err = b.conv(convLayer{name: "out.2", in: a.inputCh, out: a.outCh, k: 3, st: 1}, h); err != nil {
		return nil, err
	}
	if b.nhwc {
		if h, err = nn.ToNCHW(h); err != nil {
			return nil, err
		}
	}
	nt.out = h
	return nt, nil
}

// maxPeriod is the timestep embedding's longest period (guided-diffusion's).
const maxPeriod = 10000

// setInputs copies x into the bound input and writes the sinusoidal
// timestep embedding of t (computed in float32 like PyTorch):
// guided-diffusion's, or DDPM's with model.arch ddpm.
func (nt *net) setInputs(x *tensor.Dense, t []int) error {
	copy(nt.xv.Data().([]float32), x.Data().([]float32))
	if nt.ddpm {
		return ddpmEmbeddingInto(nt.embv, t)
	}
	for i, v := range t {
		nt.ts[i] = float64(v)
	}
	return nn.TimestepEmbeddingInto(nt.embv, nt.ts, maxPeriod)
}

// maxSalts bounds the builds of one graph: each rebuild after a hash
// collision renames the inputs, which changes every node's hash.
const maxSalts = 4

// checkedTape compiles a graph, refusing one with a hash collision
// (nn.HashCollisionError); a variable so tests can inject collisions. With
// share, the op outputs share memory (nn.NewSharedTapeMachine) and only the
// values of keep and of the graph's roots are valid after a run. Every
// UNet graph shares: the forward-only and training graphs keep only their
// outputs, the VJP graph also its forward values (EpsPullback's replay
// reads them again).
var checkedTape = func(g *G.ExprGraph, share bool, keep G.Nodes) (G.VM, *nn.SharePlan, error) {
	if share {
		return nn.NewSharedTapeMachine(g, keep)
	}
	vm, err := nn.NewTapeMachine(g)
	return vm, nil, err
}

// compiled builds the network for batch n, lets finish add its nodes and
// return the graph to run (the whole graph or a subgraph), and compiles it;
// with share, its op outputs share memory (checkedTape) and only the values
// of the output, the graph's roots and the nodes finish puts in net.keep
// are valid after a run.
// gorgonia's compiler silently merges distinct nodes whose 32-bit hashes
// collide (nn.HashCollisionError says why and how often), so on a collision
// it builds again with renamed inputs: the same computation, other hashes.
func (u *UNet) compiled(n int, drop *nn.Dropout, share bool, finish func(*net) (*G.ExprGraph, error)) (*net, G.VM, error) {
	var last error
	for salt := 0; salt < maxSalts; salt++ {
		nt, err := u.build(n, drop, salt)
		if err != nil {
			return nil, nil, err
		}
		g := nt.g
		if finish != nil {
			if g, err = finish(nt); err != nil {
				return nil, nil, err
			}
		}
		vm, plan, err := checkedTape(g, share, append(G.Nodes{nt.out}, nt.keep...))
		nt.plan = plan
		var he *nn.HashCollisionError
		if errors.As(err, &he) {
			last = err
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("model: compiling the batch-%d graph: %w", n, err)
		}
		return nt, vm, nil
	}
	return nil, nil, fmt.Errorf("model: %d builds of the batch-%d graph all had hash collisions: %w", maxSalts, n, last)
}
