package blas

import "strings"

// coreRank orders OpenBLAS x86-64 kernel families by the instructions they
// use; a preset OPENBLAS_CORETYPE below what the CPU supports wastes speed.
var coreRank = map[string]int{
	"prescott": 0, "core2": 0, "penryn": 0, "dunnington": 0, "nehalem": 0, "atom": 0, "opteron": 0, "barcelona": 0,
	"sandybridge": 1, "bulldozer": 1, "piledriver": 1, "steamroller": 1, "excavator": 1,
	"haswell": 2, "zen": 2,
	"skylakex": 3, "cooperlake": 3, "sapphirerapids": 3,
}

// ChooseCoreType decides the OPENBLAS_CORETYPE to load with, from the
// DIFFINV_OPENBLAS_CORETYPE override (forced), the inherited
// OPENBLAS_CORETYPE (env) and what CPUID supports (cpuid, see CoreTypeFor).
// It returns the value and whether to set it over an inherited one:
//
//   - forced "auto" uses cpuid; any other forced value is used as is;
//   - an inherited value naming an older kernel family than cpuid's (the
//     Haswell that some images preset on AVX-512 machines, say) is
//     replaced by cpuid's, since it would only make the program slower;
//   - any other inherited value (same family, or a name not known here) is
//     kept;
//   - with nothing inherited, cpuid's choice is set ("" lets OpenBLAS
//     detect).
func ChooseCoreType(forced, env, cpuid string) (want string, override bool) {
	switch {
	case forced != "" && strings.EqualFold(forced, "auto"):
		return cpuid, cpuid != ""
	case forced != "":
		return forced, true
	case env == "":
		return cpuid, false
	}
	re, okE := coreRank[strings.ToLower(env)]
	rc, okC := coreRank[strings.ToLower(cpuid)]
	if okE && okC && re < rc {
		return cpuid, true
	}
	return env, false
}
