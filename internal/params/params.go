// Package params reads the untyped key/value maps that configs decode to
// (map[string]any from YAML, JSON or --set) into typed settings: one
// reader for the operator registry's parameters and the solver registry's
// options, so that both accept the same spellings of a number (any Go
// integer or float type; an integer setting refuses fractions) and report
// a wrong type or an unknown key the same way.
//
// A decoder calls Float, Int, Bool or Str once per key it knows, with the
// default to use when the key is absent, then Done: the first type error,
// or an error naming the first unknown key and listing the known ones.
// Keys returns the keys a decoder asked for, so a registry can list its
// entries' settings by running their decoders on an empty map.
//
// Parse is the one reader of a value typed on a command line or in the
// environment (config's --set and DIFFINV_*, the experiment file's --set
// and --sweep): a YAML scalar or flow list, so that "1e-3" is a number
// wherever it is typed and '"1e-3"' a string.
package params

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads one command-line or environment value as YAML reads a
// scalar or a flow list: "8" is an int, "0.5" and "1e-3" are float64,
// "true" is a bool, "[1, 2]" is a []any, a quoted or any other text is a
// string, "null" is nil; an empty or blank value is the empty string.
// Text YAML cannot read ("[1", "{") is an error naming it.
func Parse(s string) (any, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("value %q is not a YAML scalar or list: %w", s, err)
	}
	return v, nil
}

// Reader reads one entry's settings from m.
type Reader struct {
	// Subject names the entry in errors, e.g. `operator "blur_gauss"` or
	// `solve: dps`.
	Subject string
	// Noun is what a key is called in errors ("parameter", "option").
	Noun string
	m    map[string]any
	used map[string]bool
	err  error
}

// New returns a reader of m (nil reads as empty).
func New(subject, noun string, m map[string]any) *Reader {
	return &Reader{Subject: subject, Noun: noun, m: m, used: map[string]bool{}}
}

// Fail records the first error of the decoder: key's value v is not what
// the setting wants (a description such as "a number ≥ 0").
func (r *Reader) Fail(key string, v any, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %s %q: got %T %v, want %s", r.Subject, r.Noun, key, v, v, want)
	}
}

// Failf records the first error of the decoder, formatted.
func (r *Reader) Failf(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: "+format, append([]any{r.Subject}, a...)...)
	}
}

// Has reports whether key is set (and marks it known).
func (r *Reader) Has(key string) bool {
	r.used[key] = true
	_, ok := r.m[key]
	return ok
}

// Number converts any Go integer or float type to float64.
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	}
	return 0, false
}

// Integer converts any Go integer type, or a float holding an integer of
// magnitude ≤ 2^53 (YAML and JSON decoders give numbers as float64), to
// int64; a fraction, a larger float or another type is refused.
func Integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	f, ok := Number(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// Float returns key's number, def when absent.
func (r *Reader) Float(key string, def float64) float64 {
	r.used[key] = true
	v, ok := r.m[key]
	if !ok {
		return def
	}
	if x, ok := Number(v); ok {
		return x
	}
	r.Fail(key, v, "a number")
	return def
}

// Int returns key's integer, def when absent; a fraction is an error.
func (r *Reader) Int(key string, def int) int {
	r.used[key] = true
	v, ok := r.m[key]
	if !ok {
		return def
	}
	if x, ok := Integer(v); ok && x > -1<<31 && x < 1<<31 {
		return int(x)
	}
	r.Fail(key, v, "an integer")
	return def
}

// Bool returns key's switch, def when absent.
func (r *Reader) Bool(key string, def bool) bool {
	r.used[key] = true
	v, ok := r.m[key]
	if !ok {
		return def
	}
	if b, ok := v.(bool); ok {
		return b
	}
	r.Fail(key, v, "true or false")
	return def
}

// Str returns key's string, def when absent.
func (r *Reader) Str(key, def string) string {
	r.used[key] = true
	v, ok := r.m[key]
	if !ok {
		return def
	}
	if s, ok := v.(string); ok {
		return s
	}
	r.Fail(key, v, "a string")
	return def
}

// Keys returns the keys asked for so far, sorted.
func (r *Reader) Keys() []string {
	out := make([]string, 0, len(r.used))
	for k := range r.used {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Err returns the first error recorded so far (nil if none).
func (r *Reader) Err() error { return r.err }

// Done returns the first error recorded, or an error naming the first
// unknown key (in sorted order) with the known ones.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	var unknown []string
	for k := range r.m {
		if !r.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	valid := strings.Join(r.Keys(), ", ")
	if valid == "" {
		valid = "none"
	}
	return fmt.Errorf("%s: unknown %s %q (valid: %s)", r.Subject, r.Noun, unknown[0], valid)
}
