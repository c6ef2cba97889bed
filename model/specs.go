package model

import "github.com/diffinv/diffinv/config"

// Specs lists the parameters (names and shapes, in state-dict order) of
// the UNet that cfg describes, without allocating them: what an import or a
// size estimate needs.
func Specs(cfg config.Model) ([]ParamSpec, error) {
	a, err := newArch(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]ParamSpec, len(a.params))
	for i, p := range a.params {
		out[i] = ParamSpec{Name: p.Name, Shape: append([]int(nil), p.Shape...), init: p.init, fanIn: p.fanIn}
	}
	return out, nil
}
