package metrics

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/data"
)

// ConfidenceThreshold is the classifier probability at or above which a
// sample counts as recognisably a digit in a SampleReport.
const ConfidenceThreshold = 0.9

// Reference holds the classifier features of a reference set (the MNIST
// test set for the quality gate) and their Gaussian fit, computed once and
// reused for every SampleReport.
type Reference struct {
	Features *mat.Dense
	Gaussian Gaussian
}

// NewReference runs the classifier over ds (1×28×28 images) and keeps its
// features and their Gaussian fit.
func NewReference(c *Classifier, ds *data.Dataset) (*Reference, error) {
	if c == nil {
		return nil, fmt.Errorf("metrics.NewReference: nil classifier")
	}
	out, err := c.DatasetForward(ds, 0)
	if err != nil {
		return nil, fmt.Errorf("metrics.NewReference: %w", err)
	}
	g, err := FitGaussian(out.Features)
	if err != nil {
		return nil, fmt.Errorf("metrics.NewReference: %w", err)
	}
	return &Reference{Features: out.Features, Gaussian: g}, nil
}

// SampleReport scores a set of generated digits against a reference set.
type SampleReport struct {
	// N is the number of samples scored, RefN the reference set's size.
	N, RefN int
	// FID is the classifier-feature FID of the samples against the
	// reference (biased at small N: compare only at equal N).
	FID float64
	// KID is the classifier-feature KID (cubic kernel, subsets).
	KID KIDResult
	// Confident is the share of samples whose top class probability is
	// ≥ ConfidenceThreshold.
	Confident float64
	// Histogram counts the samples by predicted (arg-max) class; Share is
	// Histogram / N.
	Histogram [NumClasses]int
	Share     [NumClasses]float64
	// Label and TopProb are each sample's predicted class and its
	// probability, in sample order (for looking at the unconfident ones:
	// LeastConfident).
	Label   []int
	TopProb []float64
}

// LeastConfident returns the indices of the k samples with the lowest
// top-class probability, least confident first (ties by index); all of
// them when k exceeds N.
func (r SampleReport) LeastConfident(k int) []int {
	idx := make([]int, len(r.TopProb))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return r.TopProb[idx[a]] < r.TopProb[idx[b]] })
	return idx[:max(0, min(k, len(idx)))]
}

// NewSampleReport classifies samples (N×1×28×28 float32 in [-1, 1]; values
// outside are clamped to [-1, 1] first, as writing them to PNG would) and
// scores them against ref: FID, KID (subsets drawn from rng, opts as for
// KID), the confident share and the class histogram. N ≥ 2.
func NewSampleReport(c *Classifier, samples *tensor.Dense, ref *Reference, kid KIDOptions, rng *rand.Rand) (SampleReport, error) {
	const op = "metrics.NewSampleReport"
	if c == nil || ref == nil || ref.Features == nil {
		return SampleReport{}, fmt.Errorf("%s: nil classifier or reference", op)
	}
	n, err := checkImages(samples)
	if err != nil {
		return SampleReport{}, fmt.Errorf("%s: samples: %w", op, err)
	}
	if n < 2 {
		return SampleReport{}, fmt.Errorf("%s: %d sample(s), want at least 2 for FID and KID", op, n)
	}
	src := samples.Data().([]float32)
	clamped := make([]float32, len(src))
	for i, v := range src {
		clamped[i] = min(max(v, -1), 1) // NaN stays NaN and is caught below
	}
	x := tensor.New(tensor.WithShape(samples.Shape().Clone()...), tensor.WithBacking(clamped))
	out, err := c.Forward(x)
	if err != nil {
		return SampleReport{}, fmt.Errorf("%s: %w", op, err)
	}
	rep := SampleReport{N: n, RefN: ref.Gaussian.N}
	g, err := FitGaussian(out.Features)
	if err != nil {
		return SampleReport{}, fmt.Errorf("%s: samples: %w", op, err)
	}
	if rep.FID, err = FrechetDistance(g, ref.Gaussian); err != nil {
		return SampleReport{}, fmt.Errorf("%s: %w", op, err)
	}
	if rep.KID, err = KID(out.Features, ref.Features, kid, rng); err != nil {
		return SampleReport{}, fmt.Errorf("%s: %w", op, err)
	}
	rep.Histogram, rep.Confident = classShares(out.Probs)
	rep.Label = Predict(out.Probs)
	rep.TopProb = make([]float64, n)
	for i, k := range rep.Label {
		rep.TopProb[i] = out.Probs.At(i, k)
	}
	for k, h := range rep.Histogram {
		rep.Share[k] = float64(h) / float64(n)
	}
	return rep, nil
}

// classShares returns how many rows of probs predict each class and the
// share of rows whose predicted class has probability ≥ ConfidenceThreshold.
func classShares(probs *mat.Dense) (hist [NumClasses]int, confident float64) {
	n, _ := probs.Dims()
	conf := 0
	for i, k := range Predict(probs) {
		hist[k]++
		if probs.At(i, k) >= ConfidenceThreshold {
			conf++
		}
	}
	return hist, float64(conf) / float64(n)
}

// String formats the report as a few human-readable lines.
func (r SampleReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "samples %d vs reference %d\n", r.N, r.RefN)
	fmt.Fprintf(&b, "FID %.3f\n", r.FID)
	fmt.Fprintf(&b, "KID %s\n", r.KID)
	fmt.Fprintf(&b, "confident (p ≥ %.2g) %.1f%%\n", ConfidenceThreshold, 100*r.Confident)
	b.WriteString("classes")
	for k, s := range r.Share {
		fmt.Fprintf(&b, " %d:%.1f%%", k, 100*s)
	}
	b.WriteString("\n")
	return b.String()
}

// Gate is a quality gate for generated digits (issue 4's gate for the
// shipped MNIST model, with MaxFID set from a reference FID).
type Gate struct {
	// MaxFID is the largest acceptable FID (0: not checked).
	MaxFID float64
	// MinConfident is the smallest acceptable share of confident samples.
	MinConfident float64
	// MinShare and MaxShare bound every class's share of the samples.
	MinShare, MaxShare float64
}

// DefaultGate is the gate: FID within factor× refFID (compare at
// equal sample counts: see models/classifier/README.md), ≥ 90% of samples
// confident, every class between 5% and 15%.
func DefaultGate(refFID, factor float64) Gate {
	return Gate{MaxFID: factor * refFID, MinConfident: 0.9, MinShare: 0.05, MaxShare: 0.15}
}

// Check returns one line per failed criterion of g (none when r passes).
func (r SampleReport) Check(g Gate) []string {
	var fails []string
	if g.MaxFID > 0 && !(r.FID <= g.MaxFID) {
		fails = append(fails, fmt.Sprintf("FID %.3f above %.3f", r.FID, g.MaxFID))
	}
	if r.Confident < g.MinConfident {
		fails = append(fails, fmt.Sprintf("%.1f%% of samples confident, want ≥ %.1f%%", 100*r.Confident, 100*g.MinConfident))
	}
	for k, s := range r.Share {
		if s < g.MinShare || (g.MaxShare > 0 && s > g.MaxShare) {
			fails = append(fails, fmt.Sprintf("class %d is %.1f%% of samples, want %.1f%%–%.1f%%", k, 100*s, 100*g.MinShare, 100*g.MaxShare))
		}
	}
	return fails
}
