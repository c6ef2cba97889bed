package bench

import (
	"fmt"
	"math/rand"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/nn"
)

// convShape is a 3×3, stride-1, pad-1 convolution of a UNet.
type convShape struct {
	cin, cout, size int
}

// flop returns its nominal floating-point operations per image and pass.
func (c convShape) flop() float64 {
	return 2 * float64(c.cin) * float64(c.cout) * 9 * float64(c.size*c.size)
}

func (c convShape) label(n int) string {
	return fmt.Sprintf("%d×%d×%d×%d 3×3→%d", n, c.cin, c.size, c.size, c.cout)
}

// heaviestConv returns the 3×3 stride-1 convolution of cfg's UNet with the
// most FLOPs (the first of equals, in network order). For the adm
// architecture it walks the network as guided-diffusion's UNetModel builds
// it (bench/pytorch/unet.py): the input convolution, two per ResBlock (the
// first after the up/down resampling of a resblock_updown block), the
// Upsample convolution after nearest upsampling, and the output
// convolution; strided Downsample and 1×1 skip convolutions are lighter and
// not counted. Other architectures get the first level's C→C convolution
// at full resolution.
func heaviestConv(cfg config.Model) convShape {
	mc, s := cfg.NumChannels, cfg.ImageSize
	first := convShape{mc * cfg.ChannelMult[0], mc * cfg.ChannelMult[0], s}
	if cfg.Arch != "" && cfg.Arch != "adm" {
		return first
	}
	best := convShape{}
	add := func(cin, cout, size int) {
		if c := (convShape{cin, cout, size}); c.flop() > best.flop() {
			best = c
		}
	}
	ch := mc * cfg.ChannelMult[0]
	add(cfg.InChannels, ch, s)
	chans := []int{ch}
	last := len(cfg.ChannelMult) - 1
	for level, mult := range cfg.ChannelMult {
		for i := 0; i < cfg.NumResBlocks; i++ {
			out := mult * mc
			add(ch, out, s)
			add(out, out, s)
			ch = out
			chans = append(chans, ch)
		}
		if level != last {
			s /= 2
			if cfg.ResblockUpdown { // ResBlock(down): both convolutions at the lower size
				add(ch, ch, s)
				add(ch, ch, s)
			}
			chans = append(chans, ch)
		}
	}
	for i := 0; i < 2; i++ { // the middle block's two ResBlocks
		add(ch, ch, s)
		add(ch, ch, s)
	}
	for level := last; level >= 0; level-- {
		mult := cfg.ChannelMult[level]
		for i := 0; i <= cfg.NumResBlocks; i++ {
			ich := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			out := mc * mult
			add(ch+ich, out, s)
			add(out, out, s)
			ch = out
			if level > 0 && i == cfg.NumResBlocks {
				s *= 2
				if cfg.ResblockUpdown { // ResBlock(up): both convolutions at the higher size
					add(ch, ch, s)
					add(ch, ch, s)
				} else if cfg.ConvResample {
					add(ch, ch, s)
				}
			}
		}
	}
	out := cfg.InChannels
	if cfg.LearnSigma {
		out *= 2
	}
	add(ch, out, s)
	return best
}

// passRates are GFLOP/s by nn.ConvPass (forward, backward-data,
// backward-weights); 0 where not measured.
type passRates [3]float64

// convRates times one convolution of shape c at batch n, forward and both
// backward passes (the gradient of sum(y) to x and w), warmup runs then
// iters, and returns each pass's GFLOP/s from nn.ConvStatsByPass. conv
// builds the op (nn.Conv2d, or ConvBF16).
func convRates(conv func(x, w, b *G.Node, stride, pad int) (*G.Node, error), c convShape, n, warmup, iters int, seed int64) (passRates, error) {
	rng := rand.New(rand.NewSource(seed))
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, c.cin, c.size, c.size), G.WithName("x"), G.WithValue(tensors.Randn(rng, n, c.cin, c.size, c.size)))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(c.cout, c.cin, 3, 3), G.WithName("w"), G.WithValue(tensors.Randn(rng, c.cout, c.cin, 3, 3)))
	b := G.NewTensor(g, tensor.Float32, 1, G.WithShape(c.cout), G.WithName("b"), G.WithValue(tensors.Randn(rng, c.cout)))
	y, err := conv(x, w, b, 1, 1)
	if err != nil {
		return passRates{}, err
	}
	loss, err := G.Sum(y)
	if err != nil {
		return passRates{}, err
	}
	if _, err := G.Grad(loss, x, w, b); err != nil {
		return passRates{}, err
	}
	vm, err := nn.NewTapeMachine(g)
	if err != nil {
		return passRates{}, err
	}
	defer vm.Close()
	run := func() error {
		vm.Reset()
		return vm.RunAll()
	}
	for i := 0; i < warmup; i++ {
		if err := run(); err != nil {
			return passRates{}, err
		}
	}
	nn.ResetConvStats(g)
	for i := 0; i < iters; i++ {
		if err := run(); err != nil {
			return passRates{}, err
		}
	}
	var r passRates
	for _, p := range nn.ConvPasses {
		r[p] = nn.ConvStatsByPass(g)[p].GFLOPS()
	}
	return r, nil
}
