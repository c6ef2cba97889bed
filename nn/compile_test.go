package nn

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// collidingNames finds two names whose float32 vector leaves of length 2
// share gorgonia's 32-bit node hash (a birthday search, ~10⁵ names).
func collidingNames(t *testing.T) (string, string) {
	t.Helper()
	g := G.NewGraph()
	seen := map[uint32]string{}
	for i := 0; i < 1<<20; i++ {
		name := fmt.Sprintf("v%d", i)
		n := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName(name))
		if o, ok := seen[n.Hashcode()]; ok {
			return o, name
		}
		seen[n.Hashcode()] = name
	}
	t.Fatal("no hash collision among 2²⁰ names")
	return "", ""
}

// TestHashCollision: two distinct leaves with the same hash make gorgonia's
// own tape machine compute one as the other (the hazard), and
// NewTapeMachine refuses the graph with a HashCollisionError naming both.
func TestHashCollision(t *testing.T) {
	a, b := collidingNames(t)
	g := G.NewGraph()
	va := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName(a), G.WithValue(tensor.New(tensor.WithBacking([]float32{1, 2}))))
	vb := G.NewVector(g, tensor.Float32, G.WithShape(2), G.WithName(b), G.WithValue(tensor.New(tensor.WithBacking([]float32{10, 20}))))
	sa, err := G.Sum(va)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := G.Sum(vb)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := []any{sa.Value(), sb.Value()}
	if fmt.Sprint(got) == "[3 30]" {
		t.Errorf("gorgonia computed both sums right (%v): the compiler no longer merges colliding nodes; CheckHashes may be dropped", got)
	}
	_, err = NewTapeMachine(g)
	var he *HashCollisionError
	if !errors.As(err, &he) || he.Hash != va.Hashcode() {
		t.Fatalf("NewTapeMachine on colliding leaves %s, %s: %v, want a HashCollisionError", a, b, err)
	}
	for _, name := range []string{a, b} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}

	// Without the collision the machine is built and right.
	g2 := G.NewGraph()
	v := G.NewVector(g2, tensor.Float32, G.WithShape(2), G.WithName("v"), G.WithValue(tensor.New(tensor.WithBacking([]float32{1, 2}))))
	s, _ := G.Sum(v)
	m, err := NewTapeMachine(g2)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RunAll(); err != nil || fmt.Sprint(s.Value()) != "3" {
		t.Errorf("sum %v (%v), want 3", s.Value(), err)
	}
}
