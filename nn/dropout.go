package nn

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Dropout zeroes elements with probability p and scales the survivors by
// 1/(1−p) while training (inverted dropout, PyTorch's nn.Dropout); in
// evaluation it is the identity. One Dropout controls every node made by its
// Apply, so a graph built once switches between training and evaluation with
// SetTraining. Masks come from the *rand.Rand it was made with: each forward
// run draws one seed from it and expands the mask from that seed, so runs
// are reproducible from the rng's seed. It starts in evaluation mode.
type Dropout struct {
	p        float64
	rng      *rand.Rand
	training bool
}

// NewDropout returns a Dropout with drop probability p ∈ [0, 1) drawing its
// masks from rng.
func NewDropout(p float64, rng *rand.Rand) (*Dropout, error) {
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("nn.NewDropout: p %g, want 0 ≤ p < 1", p)
	}
	if rng == nil && p > 0 {
		return nil, fmt.Errorf("nn.NewDropout: nil rng with p %g > 0", p)
	}
	return &Dropout{p: p, rng: rng}, nil
}

// SetTraining switches between training (masks drawn) and evaluation
// (identity) for the next runs.
func (d *Dropout) SetTraining(on bool) { d.training = on }

// Training reports whether d is in training mode.
func (d *Dropout) Training() bool { return d.training }

// Apply returns the dropout of x (any shape) as a node.
func (d *Dropout) Apply(x *G.Node) (*G.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("nn.Dropout: input is nil")
	}
	if _, err := dtypeOf("nn.Dropout", x); err != nil {
		return nil, err
	}
	s := x.Shape()
	o := &dropoutOp{ctl: d}
	// the pointer makes every Apply a distinct node: two dropouts of the
	// same x draw different masks.
	o.baseOp = baseOp{name: fmt.Sprintf("Dropout(%v p=%g %p)", s, d.p, o), arity: 1, typ: fnType(len(s), len(s)), shape: s.Clone()}
	return G.ApplyOp(o, x)
}

type dropoutOp struct {
	baseOp
	ctl    *Dropout
	backOp *dropoutOp // nil for the forward op
	mask   []uint8    // 1 = kept, valid when active
	active bool       // the last forward run dropped (training, p > 0)
	outBuffer
}

func (o *dropoutOp) Do(vs ...G.Value) (G.Value, error) {
	ds, dt, err := denseAll(&o.baseOp, vs)
	if err != nil {
		return nil, err
	}
	fwd := o
	if o.backOp != nil {
		fwd = o.backOp
	} else {
		o.active = o.ctl.training && o.ctl.p > 0
		if o.active {
			o.drawMask(ds[0].Shape().TotalSize())
		}
	}
	y := o.out.get(dt, o.shape)
	scale := 1 / (1 - o.ctl.p)
	if dt == tensor.Float32 {
		dropoutRun(data[float32](ds[0]), data[float32](y), fwd.mask, fwd.active, float32(scale))
	} else {
		dropoutRun(data[float64](ds[0]), data[float64](y), fwd.mask, fwd.active, scale)
	}
	return y, nil
}

// drawMask fills the mask from one seed drawn from the controller's rng,
// expanded by splitmix64, which is counter-based: element i's draw depends
// only on the seed and i, so the mask is filled in parallel and does not
// depend on the worker count.
func (o *dropoutOp) drawMask(n int) {
	if len(o.mask) != n {
		o.mask = make([]uint8, n)
	}
	seed := uint64(o.ctl.rng.Int63())
	thr := uint64(o.ctl.p * (1 << 53))
	parallel(n, elemWorkers(n), func(_, lo, hi int) { dropMask(o.mask, lo, hi, seed, thr) })
}

// dropMaskGo fills mask[lo:hi]: element i is dropped when the top 53 bits
// of splitmix64(seed + (i+1)·φ) are below thr (dropMask runs it in C).
func dropMaskGo(mask []uint8, lo, hi int, seed, thr uint64) {
	for i := lo; i < hi; i++ {
		z := seed + uint64(i+1)*0x9e3779b97f4a7c15
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		if z>>11 < thr {
			mask[i] = 0
		} else {
			mask[i] = 1
		}
	}
}

func dropoutRun[T float](x, y []T, mask []uint8, active bool, scale T) {
	parallel(len(x), elemWorkers(len(x)), func(_, lo, hi int) {
		if !active {
			copy(y[lo:hi], x[lo:hi])
			return
		}
		if x32, ok := any(x).([]float32); ok {
			dropoutF32(x32[lo:hi], any(y).([]float32)[lo:hi], mask[lo:hi], float32(scale))
			return
		}
		for i := lo; i < hi; i++ {
			y[i] = x[i] * scale * T(mask[i])
		}
	})
}

func (o *dropoutOp) DiffWRT(int) []bool { return []bool{true} }

func (o *dropoutOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &dropoutOp{ctl: o.ctl, backOp: o}
	b.baseOp = baseOp{name: fmt.Sprintf("DropoutBwd(%p)", o), arity: 1, typ: o.typ, shape: o.shape}
	d, err := G.ApplyOp(b, grad)
	if err != nil {
		return nil, fmt.Errorf("nn.Dropout backward: %w", err)
	}
	return G.Nodes{d}, nil
}
