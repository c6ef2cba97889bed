package nn

import (
	"fmt"
	"slices"
	"sort"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Buffer sharing. Every op of this package writes its value into an output
// buffer it owns for the graph's life (op.go), so a graph holds one tensor
// per node: a CelebA 64 training graph at batch 8 holds 2.3 GB of them,
// forward and backward, where PyTorch's autograd frees each activation and
// gradient after its last use. NewSharedTapeMachine closes most of that gap
// without touching the ops: it orders the graph as gorgonia's tape does,
// finds for each op's output buffer the span of steps in which its contents
// can still be read, and lets buffers whose spans do not overlap share one
// slab of memory (interval allocation, best fit by size).
//
// A value can be read after its node's last consumer ran when another value
// aliases it. The ops of this package never alias their inputs (bufferedOp
// and freshOp say so); gorgonia's own ops (the loss, the gradient sums) may:
// their unsafe forms overwrite an input, and the tape writes an op that can
// use a preallocated value into whatever its register held, which may be
// the output buffer of an earlier node. So the value of any other op is
// taken to alias its inputs and its register's previous value, transitively,
// and a buffer stays reserved until the last read of every value that may
// alias it. Values read after the run (the graph's roots and the nodes the
// caller names) stay reserved to the end.

// bufferedOp is an op whose value is its output buffer, written whole by
// every Do (reading it first is a bug that poisonBuffers exposes) and never
// aliasing an input. Ops implement it by embedding outBuffer.
type bufferedOp interface{ output() *buffer }

// outBuffer is the output buffer of an op (its field out) and makes the op
// a bufferedOp.
type outBuffer struct{ out buffer }

func (o *outBuffer) output() *buffer { return &o.out }

// freshOp is an op whose value never aliases an input nor an output buffer
// of another op (it is op-internal memory).
type freshOp interface{ fresh() }

// fresh implements freshOp: the picked value is a backward op's internal
// buffer (the group-norm parameter gradients), not an output buffer.
func (o *pickOp) fresh() {}

// partialReader is an op that, on float32 values, does not read the
// arguments at the positions unread returns (it only needs their place in
// the graph): their buffers may be reused before it runs.
type partialReader interface{ unread() []int }

// slab is memory shared by the output buffers of several nodes.
type slab struct {
	bytes int // the largest output assigned to it
	gen   int // bumped when the backing array is replaced
	f32   []float32
	f64   []float64
}

// cut returns a tensor of dtype dt and the given shape over the slab's
// memory, growing it when needed.
func (s *slab) cut(dt tensor.Dtype, shape tensor.Shape) *tensor.Dense {
	n := shape.TotalSize()
	switch dt {
	case tensor.Float64:
		if len(s.f64) < n {
			s.f64 = make([]float64, max(n, s.bytes/8))
			s.gen++
		}
		return tensor.New(tensor.WithBacking(s.f64[:n]), tensor.WithShape(shape.Clone()...), tensor.WithEngine(fastEngine))
	default:
		if len(s.f32) < n {
			s.f32 = make([]float32, max(n, s.bytes/4))
			s.gen++
		}
		return tensor.New(tensor.WithBacking(s.f32[:n]), tensor.WithShape(shape.Clone()...), tensor.WithEngine(fastEngine))
	}
}

// contains reports whether d's data lies in the slab's memory.
func (s *slab) contains(d *tensor.Dense) bool {
	p := uintptr(d.Uintptr())
	var lo, hi uintptr
	switch {
	case d.Dtype() == tensor.Float64 && len(s.f64) > 0:
		lo = uintptr(unsafe.Pointer(&s.f64[0]))
		hi = lo + uintptr(len(s.f64))*8
	case d.Dtype() == tensor.Float32 && len(s.f32) > 0:
		lo = uintptr(unsafe.Pointer(&s.f32[0]))
		hi = lo + uintptr(len(s.f32))*4
	default:
		return false
	}
	return p >= lo && p+uintptr(d.MemSize()) <= hi
}

// SharePlan is the outcome of NewSharedTapeMachine: which output buffers
// share memory, and how much that saves.
type SharePlan struct {
	Outputs int   // op output buffers planned
	Slabs   int   // slabs they share
	Before  int64 // bytes of the output buffers, one each
	After   int64 // bytes of the slabs

	owners      []*G.Node
	slabOf      []*slab
	Debug       [][2]int
	DebugNodes  []*G.Node
	DebugLastBy []*G.Node
}

func (p *SharePlan) String() string {
	return fmt.Sprintf("%d output buffers in %d shared slabs: %.1f MB instead of %.1f MB", p.Outputs, p.Slabs, float64(p.After)/1e6, float64(p.Before)/1e6)
}

// Verify checks, after a run, that every planned node's value lies in its
// slab (an op that returned memory of its own would still be correct, but
// the plan would not describe it).
func (p *SharePlan) Verify() error {
	for i, n := range p.owners {
		d, ok := n.Value().(*tensor.Dense)
		if !ok {
			return fmt.Errorf("nn: shared buffers: %v has no dense value (%T)", n, n.Value())
		}
		if !p.slabOf[i].contains(d) {
			return fmt.Errorf("nn: shared buffers: the value of %v is not in its slab", n)
		}
	}
	return nil
}

// NewSharedTapeMachine is NewTapeMachine with the output buffers of g's ops
// sharing memory where their lifetimes allow (see the comment at the top of
// share.go). The values of g's roots and of keep stay valid after a run;
// every other node's value is scratch, overwritten later in the same run.
// A graph is planned once; the plan is for this machine's order only, so
// run g with no other machine.
func NewSharedTapeMachine(g *G.ExprGraph, keep G.Nodes, opts ...G.VMOpt) (G.VM, *SharePlan, error) {
	if err := CheckHashes(g); err != nil {
		return nil, nil, err
	}
	prog, locMap, err := G.Compile(g)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: compiling the graph: %w", err)
	}
	order, args, err := ExecOrder(g)
	if err != nil {
		return nil, nil, err
	}
	reg := make(map[*G.Node]any, len(locMap))
	for n, r := range locMap {
		reg[n] = r
	}
	plan, err := planSharing(g, order, args, reg, keep)
	if err != nil {
		return nil, nil, err
	}
	vm := G.NewTapeMachine(g, append(append([]G.VMOpt{G.WithEngine(fastEngine)}, opts...), G.WithPrecompiled(prog, locMap))...)
	return vm, plan, nil
}

// ExecOrder returns g's nodes in the order gorgonia's tape compiler runs
// them (the reverse of Sort's deterministic, stabilised topological
// order) and, per node, the positions of its arguments in that order, in
// argument order.
func ExecOrder(g *G.ExprGraph) (order []*G.Node, args [][]int, err error) {
	sorted, err := G.Sort(g)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: ordering the graph: %w", err)
	}
	order = make([]*G.Node, len(sorted))
	for i, n := range sorted {
		order[len(sorted)-1-i] = n
	}
	pos := make(map[*G.Node]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	args = make([][]int, len(order))
	for i, n := range order {
		for it := g.From(n.ID()); it.Next(); {
			c, ok := it.Node().(*G.Node)
			if !ok {
				return nil, nil, fmt.Errorf("nn: internal error: argument %v of %v is not a *gorgonia.Node", it.Node(), n)
			}
			j, ok := pos[c]
			if !ok || j >= i {
				return nil, nil, fmt.Errorf("nn: internal error: argument %v of %v does not run before it", c, n)
			}
			args[i] = append(args[i], j)
		}
	}
	return order, args, nil
}

// planSharing assigns the output buffers of the ops in order (the
// execution order, children each node's argument positions; reg gives
// each node's register, whose previous value an op may reuse) to slabs and
// installs them.
func planSharing(g *G.ExprGraph, order []*G.Node, children [][]int, reg map[*G.Node]any, keep G.Nodes) (*SharePlan, error) {
	pos := make(map[*G.Node]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	never := len(order) // "read after the run"
	end := make([]int, len(order))
	for i := range end {
		end[i] = i
	}
	for i, n := range order {
		var unread []int
		if pr, ok := n.Op().(partialReader); ok && n.Dtype() == tensor.Float32 {
			unread = pr.unread()
		}
		for a, j := range children[i] {
			if !slices.Contains(unread, a) {
				end[j] = max(end[j], i)
			}
		}
		if g.To(n.ID()).Len() == 0 {
			end[i] = never
		}
	}
	for _, n := range keep {
		i, ok := pos[n]
		if !ok {
			return nil, fmt.Errorf("nn: shared buffers: node %v to keep is not in the graph", n)
		}
		end[i] = never
	}

	// Owners and the owners each value may alias.
	owner := make([]int, len(order)) // owner index of node i, or -1
	var owners []int                 // node indices
	alias := make([][]int, len(order))
	prevInReg := map[any]int{}
	for i, n := range order {
		owner[i] = -1
		switch n.Op().(type) {
		case nil:
		case bufferedOp:
			owner[i] = len(owners)
			owners = append(owners, i)
			alias[i] = []int{owner[i]}
		case freshOp:
		default:
			var set []int
			for _, j := range children[i] {
				set = append(set, alias[j]...)
			}
			if r, ok := reg[n]; ok {
				if j, ok := prevInReg[r]; ok {
					set = append(set, alias[j]...)
				}
			}
			alias[i] = dedupe(set)
		}
		if r, ok := reg[n]; ok {
			prevInReg[r] = i
		}
	}
	last := make([]int, len(owners))
	for k, i := range owners {
		last[k] = i
	}
	for i := range order {
		for _, k := range alias[i] {
			last[k] = max(last[k], end[i])
		}
	}

	// Greedy by size (the strategy of TensorFlow Lite's arena planner):
	// the largest output first, each into the smallest slab whose members'
	// lifetimes it does not overlap, else into a new slab of its size.
	plan := &SharePlan{Outputs: len(owners)}
	size := make([]int, len(owners))
	bySize := make([]int, len(owners))
	for k, i := range owners {
		n := order[i]
		size[k] = n.Shape().TotalSize() * int(n.Dtype().Size())
		bySize[k] = k
		plan.Before += int64(size[k])
	}
	sort.SliceStable(bySize, func(a, b int) bool { return size[bySize[a]] > size[bySize[b]] })
	type member struct{ from, to int }
	type slot struct {
		s       *slab
		members []member
	}
	var slots []*slot
	slotOf := make([]*slot, len(owners))
	for _, k := range bySize {
		m := member{owners[k], last[k]}
		var best *slot
	search:
		for _, sl := range slots {
			if best != nil && sl.s.bytes >= best.s.bytes {
				continue
			}
			for _, o := range sl.members {
				if m.from <= o.to && o.from <= m.to {
					continue search
				}
			}
			best = sl
		}
		if best == nil {
			best = &slot{s: &slab{bytes: size[k]}}
			slots = append(slots, best)
		}
		best.members = append(best.members, m)
		slotOf[k] = best
	}
	for k, i := range owners {
		n := order[i]
		b := n.Op().(bufferedOp).output()
		b.slab, b.t, b.gen = slotOf[k].s, nil, 0
		plan.owners = append(plan.owners, n)
		plan.slabOf = append(plan.slabOf, slotOf[k].s)
	}
	plan.Slabs = len(slots)
	for _, sl := range slots {
		plan.After += int64(sl.s.bytes)
	}
	return plan, nil
}

// dedupe sorts s and removes repeats.
func dedupe(s []int) []int {
	if len(s) < 2 {
		return s
	}
	sort.Ints(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}
