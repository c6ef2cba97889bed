package nn

import (
	"time"

	G "gorgonia.org/gorgonia"
)

// convStats counts one conv op's runs and time.
type convStats struct {
	flop    float64
	elapsed time.Duration
	runs    int
}

// add records one run of a convolution of geometry g taking d.
func (s *convStats) add(geo *convGeom, d time.Duration) {
	s.flop += 2 * float64(geo.n) * float64(geo.o) * float64(geo.k) * float64(geo.p)
	s.elapsed += d
	s.runs++
}

// ConvPass is one of the three GEMM passes of a convolution.
type ConvPass int

const (
	// ConvForward is the forward pass y = w ⋆ x (+ b).
	ConvForward ConvPass = iota
	// ConvBackwardData is the input gradient dx from (w, dy).
	ConvBackwardData
	// ConvBackwardWeights is the weight gradient dw from (x, dy).
	ConvBackwardWeights
	numConvPasses
)

// ConvPasses lists the passes in the order ConvStatsByPass returns them.
var ConvPasses = [numConvPasses]ConvPass{ConvForward, ConvBackwardData, ConvBackwardWeights}

// String returns "forward", "backward-data" or "backward-weights".
func (p ConvPass) String() string {
	switch p {
	case ConvForward:
		return "forward"
	case ConvBackwardData:
		return "backward-data"
	case ConvBackwardWeights:
		return "backward-weights"
	}
	return "unknown"
}

// ConvStat is what ConvStatsByPass reports for one pass: the nominal
// floating-point operations of its runs, the wall time spent in them and the
// number of runs.
type ConvStat struct {
	Flop    float64
	Elapsed time.Duration
	Runs    int
}

// GFLOPS returns Flop/Elapsed in GFLOP/s, or 0 when nothing ran.
func (s ConvStat) GFLOPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return s.Flop / s.Elapsed.Seconds() / 1e9
}

// ConvStats returns, summed over the Conv2d nodes of g and their backward
// nodes (input and weight gradients), the nominal floating-point operations
// of their runs (2·N·O·C·KH·KW·OH·OW per forward or backward GEMM pass) and
// the wall time spent in them since the graph was built or ResetConvStats:
// flop/elapsed is the conv throughput to compare with the sgemm peak
// (blas.MeasureSgemm). ConvStatsByPass splits the same sums by pass.
func ConvStats(g *G.ExprGraph) (flop float64, elapsed time.Duration) {
	for _, n := range g.AllNodes() {
		if s, _ := statsOf(n.Op()); s != nil {
			flop += s.flop
			elapsed += s.elapsed
		}
	}
	return flop, elapsed
}

// ConvStatsByPass returns ConvStats's sums split by pass, indexed by
// ConvPass: the forward convolutions, the input-gradient (backward-data) and
// the weight-gradient (backward-weights) nodes of g.
func ConvStatsByPass(g *G.ExprGraph) [numConvPasses]ConvStat {
	var r [numConvPasses]ConvStat
	for _, n := range g.AllNodes() {
		if s, p := statsOf(n.Op()); s != nil {
			r[p].Flop += s.flop
			r[p].Elapsed += s.elapsed
			r[p].Runs += s.runs
		}
	}
	return r
}

// ResetConvStats zeroes the counters ConvStats and ConvStatsByPass read.
func ResetConvStats(g *G.ExprGraph) {
	for _, n := range g.AllNodes() {
		if s, _ := statsOf(n.Op()); s != nil {
			*s = convStats{}
		}
	}
}

// statsOf returns the counters of a conv op and which pass it is, or nil.
func statsOf(op G.Op) (*convStats, ConvPass) {
	switch o := op.(type) {
	case *convOp:
		return &o.stats, ConvForward
	case *convBwdData:
		return &o.stats, ConvBackwardData
	case *convBwdFilter:
		return &o.stats, ConvBackwardWeights
	case *convNHWCOp:
		return &o.stats, ConvForward
	case *convNHWCBwd:
		if o.data {
			return &o.stats, ConvBackwardData
		}
		return &o.stats, ConvBackwardWeights
	}
	return nil, 0
}
