package solve

import (
	"math/rand"
	"reflect"
	"testing"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/diffusion"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// The native UNet is a Pullbacker.
var _ Pullbacker = (*model.UNet)(nil)

// countedUNet is the native UNet with its calls counted.
type countedUNet struct {
	*model.UNet
	eps, vjps, pulls int
}

func (c *countedUNet) Eps(xt *tensor.Dense, t []int) (*tensor.Dense, error) {
	c.eps++
	return c.UNet.Eps(xt, t)
}

func (c *countedUNet) EpsVJP(xt *tensor.Dense, t []int, v *tensor.Dense) (*tensor.Dense, *tensor.Dense, error) {
	c.vjps++
	return c.UNet.EpsVJP(xt, t, v)
}

func (c *countedUNet) EpsPullback(xt *tensor.Dense, t []int) (*tensor.Dense, func(*tensor.Dense) (*tensor.Dense, error), error) {
	c.pulls++
	return c.UNet.EpsPullback(xt, t)
}

// smallUNet is a random-weight UNet on the tests' 1×4×4 images, with
// attention, scale-shift norm and conv resampling.
func smallUNet(t *testing.T) *model.UNet {
	t.Helper()
	cfg := config.Model{
		ImageSize: imgShape[1], InChannels: imgShape[0], NumChannels: 8, ChannelMult: []int{1, 2},
		NumResBlocks: 1, AttentionResolutions: []int{2}, NumHeads: 2, NumHeadChannels: -1,
		NumGroups: 4, UseScaleShiftNorm: true, ConvResample: true,
	}
	rng := rand.New(rand.NewSource(4))
	u, err := model.New(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range u.Params() {
		d := tensors.F32(p)
		for i := range d {
			d[i] = float32(0.2 * rng.NormFloat64())
		}
	}
	return u
}

// TestPullbackerUNet: on the native UNet (a Pullbacker), DPS, MCG, ΠGDM
// and moment matching give the same bits as through a wrapper that hides
// EpsPullback (Eps, then EpsVJP for each cotangent), with exactly one
// EpsPullback and no Eps or EpsVJP call per step: moment matching's CG
// iterations all use the step's one pullback.
func TestPullbackerUNet(t *testing.T) {
	A := boxInpaint(t)
	s := newSetup(t, A, 0.05, true, 1)
	u := smallUNet(t)
	for _, m := range []string{"dps", "mcg", "pigdm", "moment-matching"} {
		t.Run(m, func(t *testing.T) {
			o := mustOptions(t, m, map[string]any{"steps": 10})
			plain := &countedUNet{UNet: u}
			want, err := Solve(m, Prior{Den: struct{ diffusion.Denoiser }{plain}, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(2)}, o, diffusion.ImageRNGs(3, 0, 2), nil)
			if err != nil {
				t.Fatal(err)
			}
			if plain.pulls != 0 || plain.eps == 0 || plain.vjps == 0 {
				t.Fatalf("plain path: %d Eps, %d EpsVJP, %d EpsPullback calls", plain.eps, plain.vjps, plain.pulls)
			}
			pb := &countedUNet{UNet: u}
			got, err := Solve(m, Prior{Den: pb, Sched: s.sched}, Measurement{A: A, Noise: s.noise, Y: s.batchY(2)}, o, diffusion.ImageRNGs(3, 0, 2), func(st diffusion.Step) {
				step := st.Step
				if pb.pulls != step || pb.eps != 0 || pb.vjps != 0 {
					t.Errorf("after step %d: %d EpsPullback, %d Eps, %d EpsVJP calls; want %d, 0, 0", step, pb.pulls, pb.eps, pb.vjps, step)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tensors.F32(want), tensors.F32(got)) {
				t.Errorf("the Pullbacker path differs from the Eps + EpsVJP path")
			}
		})
	}
}
