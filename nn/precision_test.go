package nn

import (
	"strings"
	"testing"
)

// TestResolvePrecision: auto runs bf16 only on bf16 units (emulated bf16 is
// slower than fp32); an asked-for bf16 runs wherever oneDNN can, emulated
// or not, and is an error elsewhere; Arithmetic says which.
func TestResolvePrecision(t *testing.T) {
	ok, why := BF16Available()
	native := BF16Native()
	if native && !ok {
		t.Fatal("BF16Native without BF16Available")
	}
	t.Logf("bf16 available %v, native %v: %s", ok, native, why)
	for _, tc := range []struct {
		setting string
		want    Precision
		err     bool
		reason  string
	}{
		{"fp32", FP32, false, "fp32 as asked"},
		{"auto", map[bool]Precision{true: BF16, false: FP32}[native], false, map[bool]string{true: "bf16 (auto): ", false: "fp32 (auto): "}[native]},
		{"", map[bool]Precision{true: BF16, false: FP32}[native], false, map[bool]string{true: "bf16 (auto): ", false: "fp32 (auto): "}[native]},
		{"bf16", BF16, !ok, "bf16 as asked: "},
		{"fp16", FP32, true, ""},
	} {
		p, reason, err := ResolvePrecision(tc.setting)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v, want error %v", tc.setting, err, tc.err)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), tc.setting) {
				t.Errorf("%q: error %v does not name the setting", tc.setting, err)
			}
			continue
		}
		if p != tc.want || !strings.HasPrefix(reason, tc.reason) {
			t.Errorf("%q: %v %q, want %v with a reason starting %q", tc.setting, p, reason, tc.want, tc.reason)
		}
		if ok && !native && p == BF16 && !strings.Contains(reason, "emulated") {
			t.Errorf("%q: emulated bf16's reason %q does not say so", tc.setting, reason)
		}
		if ok && !native && tc.setting == "auto" && !strings.Contains(reason, "emulated") {
			t.Errorf("auto on emulated bf16: reason %q does not say why fp32", reason)
		}
	}
	switch a := Arithmetic(BF16); {
	case !ok && a != "bf16 (cannot run here)",
		ok && native && !strings.HasPrefix(a, "bf16 on "),
		ok && !native && a != "bf16 emulated on AVX-512":
		t.Errorf("Arithmetic(BF16) = %q with available %v, native %v", a, ok, native)
	}
	if a := Arithmetic(FP32); a != "fp32" {
		t.Errorf("Arithmetic(FP32) = %q", a)
	}
}
