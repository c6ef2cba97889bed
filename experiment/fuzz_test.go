package experiment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and an
// accepted experiment that also validates must expand into cells with
// distinct IDs whose count is tasks × methods × sweep points × seeds less
// the exclusions, or for a training experiment its training points × seeds
// × (1 + the solve cells of each model) (bounded here, so the fuzzer does
// not build huge sweeps).
// Seeds: the committed experiment files, testdata/example.yaml, the
// package's test file, f.Add below and testdata/fuzz/FuzzDecode; `go test`
// runs them all.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../experiments/*.yaml")
	files = append(files, "testdata/example.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(testYAML))
	f.Add([]byte(trainSpec))
	f.Add([]byte(trainSpec + "dataset: {name: mnist-test, n: 2}\ntasks: [{name: sr4}]\nmethods: [{name: ddnm}]\n"))
	f.Add([]byte("name: x\n---\nname: y\n"))
	f.Add([]byte("tasks: [{name: a, set: {k: [1, 2]}}]\n"))
	f.Add([]byte("sweep: {solver.k: [1, 1.0]}\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Decode(strings.NewReader(string(in)))
		if err != nil {
			if e != nil {
				t.Fatalf("non-nil experiment with error %v", err)
			}
			return
		}
		if e.Validate() != nil {
			return
		}
		n := len(e.Tasks) * len(e.Methods) * len(e.Seeds)
		nTrain, nSolve := 1, 1 // a training experiment's sweep points
		for k, vs := range e.Sweep {
			n *= len(vs)
			if isTrainKey(k) {
				nTrain *= len(vs)
			} else {
				nSolve *= len(vs)
			}
		}
		if n > 4096 || nTrain*len(e.Seeds) > 4096 {
			return
		}
		e.Checkpoint = "" // never hash a file named by fuzz input
		cells, err := e.Cells()
		if err != nil {
			t.Fatalf("validated experiment does not expand: %v", err)
		}
		excluded := 0
		for _, tk := range e.Tasks {
			for _, m := range e.Methods {
				if e.excluded(tk, m) {
					excluded++
				}
			}
		}
		pairs := len(e.Tasks)*len(e.Methods) - excluded
		var want int
		if e.Train != nil {
			// Each training cell, then its model's solve cells.
			want = nTrain * len(e.Seeds) * (1 + pairs*nSolve)
		} else {
			want = n / (len(e.Tasks) * len(e.Methods)) * pairs
		}
		if len(cells) != want {
			t.Fatalf("%d cells, want %d", len(cells), want)
		}
		seen := map[string]bool{}
		for _, c := range cells {
			if seen[c.ID] {
				t.Fatalf("duplicate cell ID %s", c.ID)
			}
			seen[c.ID] = true
		}
	})
}
