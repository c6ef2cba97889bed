package model

import (
	"errors"
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// ErrStalePullback is returned by the vjp function of UNet.EpsPullback once
// another call on the UNet has taken the graphs over: the forward pass it
// would differentiate is gone.
var ErrStalePullback = errors.New("model: stale pullback: the UNet ran another call since EpsPullback; call EpsPullback again")

// replay executes the nodes of a VJP graph (the subgraph of out and ∂/∂x)
// directly, op by op in topological order, split into the forward part
// (out and its ancestors) and the rest. A TapeMachine can only run its whole
// program; replay runs the forward once and then the backward part alone as
// often as asked, each time for the cotangent currently bound to the v node,
// reading the forward values the first part left in the nodes' slots (the
// nn ops return op-owned buffers that only their next run overwrites).
type replay struct {
	vals   []G.Value // one slot per node, in execution order
	inputs []slot    // input nodes: their bound values, refreshed per run
	fwd    []step    // ancestors of out
	bwd    []step    // the remaining nodes: the backward ops
	out    int       // slot of the network output
	grad   int       // slot of vᵀ∂out/∂x
}

// slot names a node and its index in replay.vals.
type slot struct {
	node *G.Node
	i    int
}

// step is one op node: its op, its input slots in argument order and its
// output slot.
type step struct {
	node *G.Node
	op   G.Op
	ins  []int
	out  int
	args []G.Value // argument scratch, reused
}

// newReplay orders the nodes of the subgraph of {out, grad} of g and
// resolves every op's arguments to slots.
func newReplay(g *G.ExprGraph, out, grad *G.Node) (*replay, error) {
	order, args, err := nn.ExecOrder(g.SubgraphRoots(out, grad))
	if err != nil {
		return nil, fmt.Errorf("model: ordering the VJP graph: %w", err)
	}
	inFwd := map[*G.Node]bool{}
	for _, n := range g.SubgraphRoots(out).AllNodes() {
		inFwd[n] = true
	}
	idx := make(map[*G.Node]int, len(order))
	for i, n := range order {
		idx[n] = i
	}
	r := &replay{vals: make([]G.Value, len(order)), out: idx[out], grad: idx[grad]}
	for i, n := range order {
		if n.Op() == nil {
			if n.Value() == nil {
				return nil, fmt.Errorf("model: internal error: input node %v of the VJP graph has no value", n)
			}
			r.inputs = append(r.inputs, slot{node: n, i: i})
			continue
		}
		s := step{node: n, op: n.Op(), out: i, ins: args[i]}
		if a := s.op.Arity(); a >= 0 && a != len(s.ins) {
			return nil, fmt.Errorf("model: internal error: %v has %d arguments, its op takes %d", n, len(s.ins), a)
		}
		s.args = make([]G.Value, len(s.ins))
		if inFwd[n] {
			r.fwd = append(r.fwd, s)
		} else {
			r.bwd = append(r.bwd, s)
		}
	}
	return r, nil
}

// run executes steps after reading the current values of the input nodes.
// Ops that can write into a preallocated value (gorgonia's own, the
// gradient sums) reuse the one they returned in the previous run, as the
// TapeMachine does with its registers; a value returned by a step is never
// another slot's, so the reuse overwrites nothing still needed.
func (r *replay) run(steps []step) error {
	for _, in := range r.inputs {
		r.vals[in.i] = in.node.Value()
	}
	for k := range steps {
		s := &steps[k]
		for a, j := range s.ins {
			s.args[a] = r.vals[j]
		}
		var v G.Value
		var err error
		if pd, ok := s.op.(G.UsePreallocDoer); ok && r.vals[s.out] != nil {
			if v, err = pd.UsePreallocDo(r.vals[s.out], s.args...); err != nil {
				v, err = s.op.Do(s.args...)
			}
		} else {
			v, err = s.op.Do(s.args...)
		}
		if err != nil {
			return fmt.Errorf("model: running %v: %w", s.node, err)
		}
		r.vals[s.out] = v
	}
	return nil
}

// dense returns slot i as a *tensor.Dense.
func (r *replay) dense(i int) (*tensor.Dense, error) {
	d, ok := r.vals[i].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("model: internal error: graph value is %T, want *tensor.Dense", r.vals[i])
	}
	return d, nil
}

// pullback is the state of one EpsPullback: the graph whose forward pass it
// ran. It owns the UNet's graphs (UNet.pull) until another call takes them.
type pullback struct {
	u  *UNet
	g  *vjpGraph
	xt tensor.Shape
}

// EpsPullback returns ε(x_t, t) and a function v ↦ vᵀ∂ε/∂x_t at that same
// point (inverse/solve.Pullbacker): one forward pass, whose activations the
// function reuses, so each call runs only the backward ops. DPS, MCG and
// ΠGDM need ε before they know v; moment matching calls the function once
// per CG iteration. The results are bit for bit those of Eps and EpsVJP.
//
// The pullback is valid until the next call on the UNet (any method that
// runs a graph or changes the weights, graphs or precision): that call
// takes over the graph the forward pass lives in, and the function then
// returns ErrStalePullback. Nothing is left running in between, so an
// abandoned pullback holds no lock and needs no clean-up; each call of the
// function takes the UNet's lock like any other method, so concurrent
// callers are serialised. Writing into Params() invalidates it too, without
// the function noticing (as for any run: update weights between runs).
func (u *UNet) EpsPullback(xt *tensor.Dense, t []int) (eps *tensor.Dense, vjp func(v *tensor.Dense) (*tensor.Dense, error), err error) {
	n, err := u.checkInput(xt, t)
	if err != nil {
		return nil, nil, fmt.Errorf("model.EpsPullback: %w", err)
	}
	u.lock()
	defer u.mu.Unlock()
	g, err := u.vjpFor(n)
	if err != nil {
		return nil, nil, err
	}
	if g.replay == nil {
		if g.replay, err = newReplay(g.net.g, g.net.out, g.gradX); err != nil {
			return nil, nil, err
		}
	}
	if err := g.net.setInputs(xt, t); err != nil {
		return nil, nil, fmt.Errorf("model.EpsPullback: %w", err)
	}
	if err := g.replay.run(g.replay.fwd); err != nil {
		return nil, nil, fmt.Errorf("model.EpsPullback: %w", err)
	}
	out, err := g.replay.dense(g.replay.out)
	if err != nil {
		return nil, nil, err
	}
	p := &pullback{u: u, g: g, xt: xt.Shape().Clone()}
	u.pull = p
	return splitChannels(out, 0, u.a.cfg.InChannels), p.vjp, nil
}

// vjp runs the backward ops of p's graph for cotangent v.
func (p *pullback) vjp(v *tensor.Dense) (*tensor.Dense, error) {
	if v == nil {
		return nil, fmt.Errorf("model.EpsPullback: v is nil")
	}
	if !v.Shape().Eq(p.xt) {
		return nil, fmt.Errorf("model.EpsPullback: v has shape %v, want x_t's %v", []int(v.Shape()), []int(p.xt))
	}
	if v.Dtype() != tensor.Float32 || v.RequiresIterator() {
		return nil, fmt.Errorf("model.EpsPullback: v must be a contiguous float32 tensor, got %v", v.Dtype())
	}
	u := p.u
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pull != p {
		return nil, ErrStalePullback
	}
	u.setCotangent(p.g, v)
	if err := p.g.replay.run(p.g.replay.bwd); err != nil {
		return nil, fmt.Errorf("model.EpsPullback: %w", err)
	}
	gx, err := p.g.replay.dense(p.g.replay.grad)
	if err != nil {
		return nil, err
	}
	return tensors.Clone(gx), nil
}
