package op_test

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/inverse/op"
	"github.com/diffinv/diffinv/tensors"
)

// Build ×4 bicubic super-resolution from a config's name and parameters,
// measure a batch with DPS's noise level and reconstruct it naively.
func Example() {
	rng := rand.New(rand.NewSource(1))
	a, err := op.New("sr_bicubic", map[string]any{"factor": 4}, [3]int{3, 32, 32}, rng)
	if err != nil {
		fmt.Println(err)
		return
	}
	x := tensors.Randn(rng, 2, 3, 32, 32)
	ax, _ := a.Forward(x)
	noise, _ := op.NewNoise("gaussian", 0.05, 0)
	y, _ := noise.Sample(ax, rng)
	xhat, _ := a.(op.Linear).Pinv(y)
	s := a.(op.SVD)
	fmt.Println("y:", y.Shape(), "A†y:", xhat.Shape(), "singular values:", len(s.Singulars()))

	_, err = op.New("sr_bilinear", nil, [3]int{3, 32, 32}, rng)
	fmt.Println(err)
	// Output:
	// y: (2, 3, 8, 8) A†y: (2, 3, 32, 32) singular values: 192
	// unknown operator "sr_bilinear" (valid: blur_aniso, blur_file, blur_gauss, blur_motion, blur_nonuniform, blur_uniform, colorize, cs_block, cs_walsh, denoise, inpaint_box, inpaint_file, inpaint_random, phase_retrieval, sr_avgpool, sr_bicubic)
}
