package nn

// Temporary stand-ins until the native channels-last ops land: each runs the
// NCHW op between transpositions.

import G "gorgonia.org/gorgonia"

func viaNCHW(x *G.Node, f func(*G.Node) (*G.Node, error)) (*G.Node, error) {
	y, err := ToNCHW(x)
	if err != nil {
		return nil, err
	}
	if y, err = f(y); err != nil {
		return nil, err
	}
	return ToNHWC(y)
}

func GroupNormNHWC(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error) {
	return viaNCHW(x, func(x *G.Node) (*G.Node, error) { return GroupNorm(x, gamma, beta, groups, eps) })
}
func GroupNormSiLUNHWC(x, gamma, beta *G.Node, groups int, eps float64) (*G.Node, error) {
	return viaNCHW(x, func(x *G.Node) (*G.Node, error) { return GroupNormSiLU(x, gamma, beta, groups, eps) })
}
