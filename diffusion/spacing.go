package diffusion

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Spacing kinds accepted by SpacedTimesteps.
const (
	// SpacingUniform is the DDIM repository's "uniform" skip: range(0, T, T/K).
	SpacingUniform = "uniform"
	// SpacingQuad is the DDIM repository's "quad" skip: ⌊(linspace(0, √(0.8T), K))²⌋.
	SpacingQuad = "quad"
)

// SpacedTimesteps returns the ascending timesteps of a K-step subsequence of
// 0..T−1, as the DDIM repository chooses them:
//
//   - "uniform": 0, s, 2s, … below T with stride s = ⌊T/K⌋. This is exactly
//     K steps when K divides T, and can be more otherwise (T = 1000, K = 30
//     gives stride 33 and 31 steps), as in the DDIM code.
//   - "quad": ⌊(linspace(0, √(0.8·T), K))²⌋; small values repeat, and
//     repeats are dropped, so the result can have fewer than K steps.
//
// K must be in 1..T.
func SpacedTimesteps(T, K int, kind string) ([]int, error) {
	if T <= 0 {
		return nil, fmt.Errorf("diffusion: spacing T = %d, want > 0", T)
	}
	if K <= 0 || K > T {
		return nil, fmt.Errorf("diffusion: spacing of %d steps over T = %d, want 1..%d steps", K, T, T)
	}
	var out []int
	switch kind {
	case SpacingUniform:
		stride := T / K
		for t := 0; t < T; t += stride {
			out = append(out, t)
		}
	case SpacingQuad:
		end := math.Sqrt(0.8 * float64(T))
		for i := 0; i < K; i++ {
			u := 0.0
			if K > 1 {
				u = end * float64(i) / float64(K-1)
			}
			t := int(u * u)
			if len(out) == 0 || out[len(out)-1] != t {
				out = append(out, t)
			}
		}
	default:
		return nil, fmt.Errorf("diffusion: unknown spacing %q, want %q or %q", kind, SpacingUniform, SpacingQuad)
	}
	return out, nil
}

// ParseSpacing returns the timesteps of 0..T−1 named by a guided-diffusion
// timestep_respacing string:
//
//   - "" : all T timesteps;
//   - "ddimK": the stride s ≥ 1 for which range(0, T, s) has exactly K
//     elements (an error when none does);
//   - "n1,n2,…": T is cut into len(list) near-equal sections and n_j
//     timesteps are taken evenly (rounded half to even, as Python does) from
//     section j.
//
// The result is ascending and without duplicates.
func ParseSpacing(T int, spec string) ([]int, error) {
	if T <= 0 {
		return nil, fmt.Errorf("diffusion: spacing T = %d, want > 0", T)
	}
	spec = strings.TrimSpace(spec)
	if spec == "" {
		all := make([]int, T)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	if strings.HasPrefix(spec, "ddim") {
		k, err := strconv.Atoi(spec[len("ddim"):])
		if err != nil || k <= 0 {
			return nil, fmt.Errorf("diffusion: spacing %q, want ddimK with K a positive integer", spec)
		}
		for s := 1; s < T; s++ {
			if (T+s-1)/s == k {
				var out []int
				for t := 0; t < T; t += s {
					out = append(out, t)
				}
				return out, nil
			}
		}
		return nil, fmt.Errorf("diffusion: spacing %q: no integer stride gives exactly %d of T = %d timesteps", spec, k, T)
	}
	parts := strings.Split(spec, ",")
	counts := make([]int, len(parts))
	for i, p := range parts {
		c, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || c < 0 {
			return nil, fmt.Errorf("diffusion: spacing %q: section count %q, want a non-negative integer", spec, p)
		}
		counts[i] = c
	}
	sizePer, extra := T/len(counts), T%len(counts)
	start := 0
	seen := map[int]bool{}
	var out []int
	for i, c := range counts {
		size := sizePer
		if i < extra {
			size++
		}
		if size < c {
			return nil, fmt.Errorf("diffusion: spacing %q: section %d has %d timesteps, cannot take %d", spec, i, size, c)
		}
		stride := 1.0
		if c > 1 {
			stride = float64(size-1) / float64(c-1)
		}
		cur := 0.0
		for j := 0; j < c; j++ {
			t := start + int(math.RoundToEven(cur))
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
			cur += stride
		}
		start += size
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("diffusion: spacing %q selects no timesteps", spec)
	}
	return out, nil
}

// SpacedSchedule returns base respaced to K steps with SpacedTimesteps(
// base.Len(), K, kind); K = base.Len() with "uniform" returns base itself.
func SpacedSchedule(base *Schedule, K int, kind string) (*Schedule, error) {
	if base == nil {
		return nil, fmt.Errorf("diffusion: spaced schedule of a nil schedule")
	}
	ts, err := SpacedTimesteps(base.Len(), K, kind)
	if err != nil {
		return nil, err
	}
	if len(ts) == base.Len() {
		return base, nil
	}
	return Respace(base, ts)
}
