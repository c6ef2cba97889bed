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
func Upsample2xNHWC(x *G.Node) (*G.Node, error) { return viaNCHW(x, Upsample2x) }
func AvgPool2xNHWC(x *G.Node) (*G.Node, error)  { return viaNCHW(x, AvgPool2x) }
func ConcatNHWC(a, b *G.Node) (*G.Node, error) {
	bb, err := ToNCHW(b)
	if err != nil {
		return nil, err
	}
	return viaNCHW(a, func(a *G.Node) (*G.Node, error) { return Concat(a, bb) })
}
func Pad2dNHWC(x *G.Node, t, b, l, r int) (*G.Node, error) {
	return viaNCHW(x, func(x *G.Node) (*G.Node, error) { return Pad2d(x, t, b, l, r) })
}
func AddChannelNHWC(x, e *G.Node) (*G.Node, error) {
	return viaNCHW(x, func(x *G.Node) (*G.Node, error) { return AddChannel(x, e) })
}
func ScaleShiftNHWC(x, sc, sh *G.Node) (*G.Node, error) {
	return viaNCHW(x, func(x *G.Node) (*G.Node, error) { return ScaleShift(x, sc, sh) })
}
