package params

import (
	"reflect"
	"strings"
	"testing"
)

// TestParse: command-line values are typed as YAML types them; a quoted
// number stays a string; blank is the empty string; malformed YAML is an
// error naming the value.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want any
	}{
		{"8", 8}, {"0.5", 0.5}, {"1e-3", 0.001}, {"'1e-3'", "1e-3"}, {"true", true}, {"dps", "dps"},
		{"[1, 2]", []any{1, 2}}, {"null", nil}, {"  ", ""}, {"a=b", "a=b"},
	} {
		got, err := Parse(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
	if _, err := Parse("[1"); err == nil || !strings.Contains(err.Error(), `"[1"`) {
		t.Errorf("Parse([1): %v", err)
	}
}
