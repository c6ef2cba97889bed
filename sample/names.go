package sample

// Predictors lists the predictor names of PCOptions (None included).
func Predictors() []string {
	return []string{ReverseDiffusion, EulerMaruyamaPredictor, AncestralPredictor, None}
}

// Correctors lists the corrector names of PCOptions (None included).
func Correctors() []string { return []string{Langevin, None} }

// ODEMethods lists the step methods of ODEOptions.
func ODEMethods() []string { return []string{Euler, Heun, RK4} }
