package nn

import (
	"time"

	G "gorgonia.org/gorgonia"
)

// convStats counts one conv op's runs and time.
type convStats struct {
	flop    float64
	elapsed time.Duration
}

// add records one run of a convolution of geometry g taking d.
func (s *convStats) add(geo *convGeom, d time.Duration) {
	s.flop += 2 * float64(geo.n) * float64(geo.o) * float64(geo.k) * float64(geo.p)
	s.elapsed += d
}

// ConvStats returns, summed over the Conv2d nodes of g and their backward
// nodes (input and weight gradients), the nominal floating-point operations
// of their runs (2·N·O·C·KH·KW·OH·OW per forward or backward GEMM pass) and
// the wall time spent in them since the graph was built or ResetConvStats:
// flop/elapsed is the conv throughput to compare with the sgemm peak
// (blas.MeasureSgemm).
func ConvStats(g *G.ExprGraph) (flop float64, elapsed time.Duration) {
	for _, n := range g.AllNodes() {
		if s := statsOf(n.Op()); s != nil {
			flop += s.flop
			elapsed += s.elapsed
		}
	}
	return flop, elapsed
}

// ResetConvStats zeroes the counters ConvStats reads.
func ResetConvStats(g *G.ExprGraph) {
	for _, n := range g.AllNodes() {
		if s := statsOf(n.Op()); s != nil {
			*s = convStats{}
		}
	}
}

func statsOf(op G.Op) *convStats {
	switch o := op.(type) {
	case *convOp:
		return &o.stats
	case *convBwdData:
		return &o.stats
	case *convBwdFilter:
		return &o.stats
	case *convNHWCOp:
		return &o.stats
	case *convNHWCBwd:
		return &o.stats
	}
	return nil
}
