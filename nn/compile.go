package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// HashCollisionError reports two distinct nodes of a graph with the same
// 32-bit gorgonia hash.
//
// Why it matters: gorgonia's tape compiler (v0.9.18 analysis.go, dataflow.vn)
// numbers values by Node.Hashcode alone, without an equality check, so of two
// colliding nodes the later one is never executed: its consumers read the
// earlier node's value (a silently wrong result) and its own Value stays nil.
// A graph of n nodes collides with probability about n²/2³³, and the nodes
// downstream of ops named by pointer (the backward ops here, dropout) hash
// differently on every build, so a collision is a rare, random event: one
// train step in CI once failed with a nil parameter gradient. Callers that
// can rename their graph's inputs rebuild it (model does); others report it.
type HashCollisionError struct {
	A, B string // the two nodes, as gorgonia prints them
	Hash uint32
}

func (e *HashCollisionError) Error() string {
	return fmt.Sprintf("nn: graph nodes %s and %s share the hash %#08x, which gorgonia's compiler would merge", e.A, e.B, e.Hash)
}

// CheckHashes returns a *HashCollisionError when two distinct nodes of g
// share a Hashcode (see HashCollisionError), else nil. Equal nodes never
// appear twice: gorgonia's AddNode already merges them.
func CheckHashes(g *G.ExprGraph) error {
	nodes := g.AllNodes()
	seen := make(map[uint32]*G.Node, len(nodes))
	for _, n := range nodes {
		h := n.Hashcode()
		if o, ok := seen[h]; ok && o != n {
			return &HashCollisionError{A: o.String(), B: n.String(), Hash: h}
		}
		seen[h] = n
	}
	return nil
}

// NewTapeMachine is gorgonia's NewTapeMachine after CheckHashes: it returns
// the machine, or a *HashCollisionError instead of a machine that would
// compute a colliding node wrongly. The machine's tensors use the package's
// engine (engine.go: gorgonia's own gradient sums run vectorised); opts may
// name another with G.WithEngine.
func NewTapeMachine(g *G.ExprGraph, opts ...G.VMOpt) (G.VM, error) {
	if err := CheckHashes(g); err != nil {
		return nil, err
	}
	return G.NewTapeMachine(g, append([]G.VMOpt{G.WithEngine(fastEngine)}, opts...)...), nil
}
