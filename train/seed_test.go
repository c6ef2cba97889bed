package train

import (
	"sort"
	"testing"
)

func TestSeedsDistinctAndStable(t *testing.T) {
	seen := map[int64]string{}
	for _, s := range []int64{0, 1, 2} {
		for k := 0; k < 100; k++ {
			for name, v := range map[string]int64{"step": StepSeed(s, k), "epoch": EpochSeed(s, k)} {
				if prev, ok := seen[v]; ok {
					t.Fatalf("seed collision: %s(%d, %d) equals %s", name, s, k, prev)
				}
				seen[v] = name
			}
		}
	}
	if StepSeed(5, 7) != StepSeed(5, 7) || StepRand(5, 7).Int63() != StepRand(5, 7).Int63() {
		t.Error("step seeds are not reproducible")
	}
}

func TestBatchIndices(t *testing.T) {
	c := epochCache{seed: 9, n: 10, size: 3} // 3 steps per epoch, 1 image skipped
	for e := 0; e < 3; e++ {
		var got []int
		for j := 0; j < 3; j++ {
			got = append(got, c.BatchIndices(3*e+j)...)
		}
		order := EpochOrder(9, e, 10)
		for i, v := range got {
			if v != order[i] {
				t.Fatalf("epoch %d: indices %v, want the first 9 of %v", e, got, order)
			}
		}
		sort.Ints(order)
		for i, v := range order {
			if v != i {
				t.Fatalf("epoch %d order is not a permutation: %v", e, order)
			}
		}
	}
	// Random access gives the same batch as sequential access (resume).
	fresh := epochCache{seed: 9, n: 10, size: 3}
	a, b := fresh.BatchIndices(7), c.BatchIndices(7)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("batch 7: %v from a fresh cache, %v after walking", a, b)
		}
	}
	if x, y := EpochOrder(9, 0, 50), EpochOrder(9, 1, 50); equalInts(x, y) {
		t.Error("epochs 0 and 1 have the same order")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
