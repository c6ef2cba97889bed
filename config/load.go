package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/diffinv/diffinv/internal/params"
	"github.com/diffinv/diffinv/internal/userfile"
)

// EnvPrefix prefixes the environment variables that set config keys:
// DIFFINV_TRAIN_LR sets train.lr.
const EnvPrefix = "DIFFINV"

// Sources are the inputs of Load, from lowest to highest precedence after
// the defaults: presets < file < environment < layers < sets.
type Sources struct {
	// Presets are YAML documents applied in order below File (a task
	// preset such as configs/tasks/sr4.yaml, say); each may set any subset
	// of keys. Where a preset names the measurement operator and File's
	// measurement.operator names another, File's operator block is left
	// out: the preset chose the operator (the environment, layers and --set
	// still override it).
	Presets []Preset
	// File is a YAML config file; empty means none.
	File string
	// Env is the process environment as "KEY=value" strings (os.Environ());
	// only DIFFINV_* entries are read.
	Env []string
	// Layers are overrides that a program computed rather than a user
	// typed, applied in order above the environment and below Sets: each
	// maps a dotted key (solver.method, measurement.noise.sigma, an open
	// key such as solver.scale) to its value, already typed (a string, a
	// bool, a Go integer or float, or a list of them). A value is not
	// parsed again: 0.3 stays float64 and "1e-3" stays a string, where the
	// string "key=value" of Sets would read it as the number 0.001. It
	// then goes through the same strict checks as every other source (an
	// unknown key, a value of the wrong type or out of range is an error
	// naming the key). The experiment runner layers a cell's task and
	// method settings so.
	Layers []map[string]any
	// Sets are "key=value" overrides (the --set flag), applied in order.
	// Values are parsed as YAML (params.Parse): 0.0005, true, [1,2,2], "text".
	Sets []string
}

// NotConfigEnv lists diffinv's environment variables that are not config
// keys (DIFFINV_OPENBLAS_CORETYPE chooses BLAS kernels; DIFFINV_NO_DNNL
// keeps oneDNN unloaded and DIFFINV_DNNL_* chooses its threading;
// DIFFINV_CHECK_* turns on slow acceptance tests, DIFFINV_BASELINE_* writes
// tables, DIFFINV_EXPERIMENT_* drives the experiment runner's
// kill-and-resume test, DIFFINV_BENCH_* and DIFFINV_CURVE_* the model
// benchmarks and the bf16 loss-curve check); Load ignores them instead of
// rejecting them as unknown keys.
func NotConfigEnv() []string {
	return []string{"DIFFINV_OPENBLAS_CORETYPE", "DIFFINV_NO_DNNL", "DIFFINV_DNNL_", "DIFFINV_CHECK_", "DIFFINV_BASELINE_",
		"DIFFINV_EXPERIMENT_", "DIFFINV_BENCH_", "DIFFINV_CURVE_", "DIFFINV_MEM_AVAILABLE"}
}

func notConfig(name string) bool {
	for _, p := range NotConfigEnv() {
		if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
			return true
		}
	}
	return false
}

// Preset is a named YAML document of config keys.
type Preset struct {
	Name string // for errors, e.g. "task sr4 (configs/tasks/sr4.yaml)"
	YAML []byte
}

// Load merges defaults, the file, the environment and the overrides with
// viper, decodes the result into a Config and validates it. Unknown keys,
// values of the wrong type and out-of-range values are errors that name the
// key, the value and what was expected.
func Load(src Sources) (*Config, error) {
	return LoadOnto(Default(), src)
}

// LoadOnto is Load with other defaults (a checkpoint's config, say).
func LoadOnto(defaults Config, src Sources) (*Config, error) {
	schema := fields(reflect.ValueOf(&defaults).Elem(), "")
	v := viper.New()
	v.SetConfigType("yaml")
	for _, f := range schema {
		if f.open {
			for k, val := range f.val.Interface().(map[string]any) {
				v.SetDefault(f.key+"."+k, val)
			}
			continue
		}
		v.SetDefault(f.key, f.val.Interface())
	}

	docs := append([]Preset(nil), src.Presets...)
	if src.File != "" {
		// A regular file of at most 16 MB: /dev/zero would never end.
		raw, err := userfile.ReadFile(src.File, "config file", 16<<20)
		if err != nil {
			return nil, err
		}
		docs = append(docs, Preset{Name: "config file " + src.File, YAML: raw})
	}
	// level records the highest source that gave a key whose meaning
	// depends on another's (sigma and sigma_01): 1 a preset, 2 the file,
	// 3 the environment, 4 a layer, 5 --set.
	level := map[string]int{}
	noiseKeys := []string{"measurement.noise.sigma", "measurement.noise.sigma_01"}
	presetOp := "" // the operator the last preset naming one chose
	for i, d := range docs {
		lv := 1
		if src.File != "" && i == len(docs)-1 {
			lv = 2
		}
		if name := yamlString(d.YAML, opNameKey); name != "" && lv == 1 {
			presetOp = name
		} else if name != "" && presetOp != "" && name != presetOp {
			// The task preset chose the operator: the file's operator
			// block, written for another operator (configs/mnist.yaml's
			// sr_bicubic default, say), does not apply to it. Merged, it
			// kept the file's name with the preset's parameters ("sr_bicubic:
			// unknown parameter position" for `--config configs/mnist.yaml
			// --task inpaint-box`). A file block naming the preset's
			// operator, or none, still merges over it.
			if err := checkFileKeys(d.YAML, schema); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			doc, err := yamlWithout(d.YAML, "measurement", "operator")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			d.YAML = doc
		}
		for _, k := range noiseKeys {
			if yamlHasKey(d.YAML, k) {
				level[k] = lv
			}
		}
		if err := checkFileKeys(d.YAML, schema); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		if err := v.MergeConfig(bytes.NewReader(d.YAML)); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
	}

	// Environment: viper looks DIFFINV_SECTION_KEY up for every known key;
	// a DIFFINV_* variable that matches no key is an error, not ignored.
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	known := map[string]string{}
	for _, f := range schema {
		known[envName(f.key)] = f.key
	}
	for _, kv := range src.Env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		key, ok := known[name]
		if !ok && notConfig(name) {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("environment variable %s matches no config key (want %s_<SECTION>_<KEY>, e.g. %s)", name, EnvPrefix, envName("train.lr"))
		}
		if err := v.BindEnv(key); err != nil {
			return nil, fmt.Errorf("environment variable %s: %w", name, err)
		}
		parsed, err := params.Parse(val)
		if err != nil {
			return nil, fmt.Errorf("environment variable %s=%q: %w", name, val, err)
		}
		// Bound env values come back as strings; Set keeps the parsed value
		// while --set still wins because it is applied afterwards.
		v.Set(key, parsed)
		level[key] = 3
	}

	for i, layer := range src.Layers {
		keys := make([]string, 0, len(layer))
		for k := range layer {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			val := layer[key]
			if _, ok := lookup(schema, key); !ok && !openParent(schema, key) {
				return nil, fmt.Errorf("layer %d: %w", i, unknownKey(key, schema))
			}
			val, err := layerValue(val)
			if err != nil {
				return nil, fmt.Errorf("layer %d: config key %s: %w", i, key, err)
			}
			v.Set(key, val)
			level[key] = 4
		}
	}

	for _, s := range src.Sets {
		key, val, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("--set %q: want key=value, e.g. train.lr=0.0005", s)
		}
		if _, ok := lookup(schema, key); !ok && !openParent(schema, key) {
			return nil, unknownKey(key, schema)
		}
		parsed, err := params.Parse(val)
		if err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
		v.Set(key, parsed)
		level[key] = 5
	}

	cfg := defaults
	// Slices in defaults must not alias the decoded config.
	out := fields(reflect.ValueOf(&cfg).Elem(), "")
	all := v.AllSettings()
	for _, f := range out {
		if f.open {
			if err := assignOpen(f, out, all); err != nil {
				return nil, err
			}
			continue
		}
		if err := assign(f.key, f.val, v.Get(f.key)); err != nil {
			return nil, err
		}
	}
	if err := resolveNoiseSigma(&cfg.Measurement.Noise, level[noiseKeys[0]], level[noiseKeys[1]]); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// resolveNoiseSigma turns measurement.noise.sigma_01 (σ on [0, 1] images)
// into sigma (σ on [−1, 1]): sigma = 2·sigma_01. lSigma and l01 are the
// precedence levels of the sources that gave each key (0: only the
// defaults; then preset, file, environment, layer, --set). The key given at the
// higher level wins (a sigma given over a preset's sigma_01 clears it);
// both given at the same level must agree.
func resolveNoiseSigma(n *Noise, lSigma, l01 int) error {
	switch {
	case l01 > 0 && l01 == lSigma:
		if math.Abs(n.Sigma-2*n.Sigma01) > 1e-9*math.Max(1, math.Abs(n.Sigma)) {
			return fmt.Errorf("measurement.noise: sigma %v (on [-1, 1]) and sigma_01 %v (on [0, 1], so sigma %v) disagree: give one, or sigma = 2·sigma_01", n.Sigma, n.Sigma01, 2*n.Sigma01)
		}
	case l01 > lSigma || l01 == 0 && lSigma == 0 && n.Sigma01 != 0:
		n.Sigma = 2 * n.Sigma01
	case lSigma > l01:
		n.Sigma01 = 0
	}
	return nil
}

// yamlHasKey reports whether a YAML document sets the dotted key.
func yamlHasKey(raw []byte, key string) bool {
	_, ok := yamlLookup(raw, key)
	return ok
}

// yamlLookup returns the value at the dotted key of the YAML document raw
// (false when absent or raw does not parse).
func yamlLookup(raw []byte, key string) (any, bool) {
	var doc map[string]any
	if yaml.Unmarshal(raw, &doc) != nil {
		return nil, false
	}
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		m, ok := doc[p].(map[string]any)
		if !ok {
			return nil, false
		}
		doc = m
	}
	v, ok := doc[parts[len(parts)-1]]
	return v, ok
}

// opNameKey is the config key naming the measurement operator.
const opNameKey = "measurement.operator.name"

// yamlString returns the string at the dotted key of the YAML document raw
// ("" when absent, not a string or raw does not parse).
func yamlString(raw []byte, key string) string {
	v, _ := yamlLookup(raw, key)
	s, _ := v.(string)
	return s
}

// yamlWithout returns the YAML document raw without the entry
// section.key (re-encoded: comments and key order are not kept).
func yamlWithout(raw []byte, section, key string) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if m, ok := doc[section].(map[string]any); ok {
		delete(m, key)
		if len(m) == 0 {
			delete(doc, section)
		}
	}
	return yaml.Marshal(doc)
}

// YAML returns the config as a YAML document with the sections in order.
func (c *Config) YAML() ([]byte, error) {
	var node yaml.Node
	if err := node.Encode(c); err != nil {
		return nil, err
	}
	flowLists(&node)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// StoredYAML is YAML without the engine and classifier sections: the run
// config stored with weights (checkpoints, model files). How a machine ran
// the network (engine.precision) is not a property of the model, so it must
// not force itself on a later command that loads the file; the evaluation
// classifier's training settings have nothing to do with a diffusion
// model; and files without the sections stay readable by builds that
// predate them.
func (c *Config) StoredYAML() ([]byte, error) {
	s := *c
	s.Engine = Engine{}
	s.Classifier = Classifier{}
	return s.YAML()
}

// flowLists prints lists of scalars on one line: channel_mult: [1, 2, 2].
func flowLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		flowLists(c)
	}
}

// Flat returns "key: value" lines for every key, sorted by key.
func (c *Config) Flat() []string {
	fs := fields(reflect.ValueOf(c).Elem(), "")
	lines := make([]string, 0, len(fs))
	for _, f := range fs {
		if f.open {
			for k, val := range f.val.Interface().(map[string]any) {
				b, _ := yaml.Marshal(val)
				lines = append(lines, f.key+"."+k+": "+strings.TrimSpace(flow(string(b))))
			}
			continue
		}
		b, _ := yaml.Marshal(f.val.Interface())
		lines = append(lines, f.key+": "+strings.TrimSpace(flow(string(b))))
	}
	sort.Strings(lines)
	return lines
}

// Keys returns every known dotted key, sorted.
func Keys() []string {
	d := Default()
	var ks []string
	for _, f := range fields(reflect.ValueOf(&d).Elem(), "") {
		if f.open {
			ks = append(ks, f.key+".*")
			continue
		}
		ks = append(ks, f.key)
	}
	sort.Strings(ks)
	return ks
}

// flow turns a block YAML list into flow style for one-line output.
func flow(s string) string {
	if !strings.HasPrefix(s, "- ") {
		return s
	}
	var items []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		items = append(items, strings.TrimPrefix(l, "- "))
	}
	return "[" + strings.Join(items, ", ") + "]"
}

type field struct {
	key  string
	val  reflect.Value // settable leaf
	open bool          // an inline map: key is its parent, any sub-key goes in
}

// fields lists the leaves of a config struct by dotted yaml key.
func fields(v reflect.Value, prefix string) []field {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name := strings.Split(tag, ",")[0]
		if strings.HasSuffix(tag, ",inline") && v.Field(i).Kind() == reflect.Map {
			out = append(out, field{key: prefix, val: v.Field(i), open: true})
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			out = append(out, fields(fv, key)...)
			continue
		}
		out = append(out, field{key: key, val: fv})
	}
	return out
}

func lookup(schema []field, key string) (field, bool) {
	for _, f := range schema {
		if f.key == key && !f.open {
			return f, true
		}
	}
	return field{}, false
}

// openParent reports whether key is a direct sub-key of an open map, as
// measurement.operator.scale is.
func openParent(schema []field, key string) bool {
	i := strings.LastIndex(key, ".")
	if i < 0 {
		return false
	}
	for _, f := range schema {
		if f.open && f.key == key[:i] {
			return true
		}
	}
	return false
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func unknownKey(key string, schema []field) error {
	section, _, _ := strings.Cut(key, ".")
	var near []string
	for _, f := range schema {
		if strings.HasPrefix(f.key, section+".") {
			near = append(near, f.key)
		}
	}
	if len(near) == 0 {
		sections := map[string]bool{}
		for _, f := range schema {
			s, _, _ := strings.Cut(f.key, ".")
			sections[s] = true
		}
		for s := range sections {
			near = append(near, s)
		}
		sort.Strings(near)
		return fmt.Errorf("unknown config key %q: no section %q (sections: %s)", key, section, strings.Join(near, ", "))
	}
	return fmt.Errorf("unknown config key %q (keys of %s: %s)", key, section, strings.Join(near, ", "))
}

// checkFileKeys reports keys in a YAML file that the schema does not know.
func checkFileKeys(raw []byte, schema []field) error {
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	var walk func(m map[string]any, prefix string) error
	walk = func(m map[string]any, prefix string) error {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			if _, ok := lookup(schema, key); ok || openParent(schema, key) {
				continue
			}
			sub, isMap := m[k].(map[string]any)
			if !hasPrefix(schema, key+".") {
				return unknownKey(key, schema)
			}
			if !isMap && m[k] != nil {
				return fmt.Errorf("config key %s is a section: want a mapping of its keys, got %#v", key, m[k])
			}
			if err := walk(sub, key); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(doc, "")
}

func hasPrefix(schema []field, p string) bool {
	for _, f := range schema {
		if strings.HasPrefix(f.key, p) {
			return true
		}
	}
	return false
}

// assignOpen fills an open map with the merged sub-keys of its parent that
// are not fields of their own (measurement.operator.name is; .scale is not).
func assignOpen(f field, schema []field, all map[string]any) error {
	node := any(all)
	for _, part := range strings.Split(f.key, ".") {
		m, ok := node.(map[string]any)
		if !ok {
			node = nil
			break
		}
		node = m[part]
	}
	out := map[string]any{}
	if m, ok := node.(map[string]any); ok {
		for k, val := range m {
			if _, own := lookup(schema, f.key+"."+k); own {
				continue
			}
			if _, isMap := val.(map[string]any); isMap {
				return fmt.Errorf("config key %s.%s: a mapping, want a scalar or a list", f.key, k)
			}
			out[k] = val
		}
	}
	f.val.Set(reflect.ValueOf(out))
	return nil
}

// layerValue checks that a layer's value is what a config key holds: a
// string, a bool, a Go integer or float, or a list of those ([]any as YAML
// decodes one, or a typed slice, returned as []any as the other sources
// give lists).
func layerValue(v any) (any, error) {
	scalar := func(x any) bool {
		switch x.(type) {
		case string, bool:
			return true
		}
		_, ok := params.Number(x)
		return ok
	}
	if scalar(v) {
		return v, nil
	}
	if rv := reflect.ValueOf(v); v != nil && rv.Kind() == reflect.Slice {
		items := make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
			if !scalar(items[i]) {
				return nil, fmt.Errorf("list item %d is %#v (%T), want a string, bool or number", i, items[i], items[i])
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("value %#v (%T): want a string, bool, number or a list of them", v, v)
}

// assign stores raw into the leaf dst, converting strictly: no silent
// truncation of 2.5 into an int, no "abc" into a float.
func assign(key string, dst reflect.Value, raw any) error {
	bad := func(want string) error {
		return fmt.Errorf("config key %s: value %#v (%T) has the wrong type, want %s", key, raw, raw, want)
	}
	if s, ok := raw.(string); ok && dst.Kind() != reflect.String {
		// Values from files are typed by YAML already; strings reaching a
		// non-string key come from the environment or quoted YAML.
		p, err := params.Parse(s)
		if err != nil {
			return fmt.Errorf("config key %s: %w", key, err)
		}
		if _, still := p.(string); still {
			return bad(map[reflect.Kind]string{reflect.Bool: "true or false", reflect.Int: "an integer",
				reflect.Int64: "an integer", reflect.Float64: "a number", reflect.Slice: "a list"}[dst.Kind()])
		}
		raw = p
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return bad("a string")
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return bad("true or false")
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := toInt(raw)
		if err != nil {
			return bad("an integer")
		}
		dst.SetInt(n)
	case reflect.Float64:
		f, err := toFloat(raw)
		if err != nil {
			return bad("a number")
		}
		dst.SetFloat(f)
	case reflect.Slice:
		items, ok := raw.([]any)
		if !ok {
			if ints, ok2 := raw.([]int); ok2 { // defaults come back typed
				for _, x := range ints {
					items = append(items, x)
				}
			} else if n, err := toInt(raw); err == nil && dst.Type().Elem().Kind() == reflect.Int {
				items = []any{n} // a single value is a one-element list
			} else {
				return bad("a list of " + dst.Type().Elem().Kind().String())
			}
		}
		out := reflect.MakeSlice(dst.Type(), len(items), len(items))
		for i, it := range items {
			if err := assign(fmt.Sprintf("%s[%d]", key, i), out.Index(i), it); err != nil {
				return err
			}
		}
		dst.Set(out)
	default:
		return fmt.Errorf("config key %s: unsupported kind %s", key, dst.Kind())
	}
	return nil
}

func toInt(raw any) (int64, error) {
	if n, ok := params.Integer(raw); ok {
		return n, nil
	}
	return 0, errors.New("not an integer")
}

func toFloat(raw any) (float64, error) {
	if f, ok := params.Number(raw); ok {
		return f, nil
	}
	return 0, errors.New("not a number")
}

// FromYAML decodes a whole config document (as Config.YAML writes it, e.g.
// the run config stored in a checkpoint) onto the defaults, strictly: an
// unknown key is an error. It does not validate; LoadOnto does.
func FromYAML(doc []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config document: %w", err)
	}
	return cfg, nil
}
