// Package checkpoint reads and writes safetensors files: named tensors plus a
// string metadata map, the format diffinv's checkpoints use (the model
// config that built the tensors travels in the metadata, so a checkpoint alone
// rebuilds its network).
//
// The format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length n, n bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// end of the header) plus an optional "__metadata__" object of strings, then
// the raw little-endian tensor bytes.
//
// diffinv works in float32: Save writes F32, and Load converts F64, F16, BF16
// and the integer types to float32 (so PyTorch checkpoints in half precision
// import). A float32 save → load round trip is bit-exact. Files are written
// atomically: temp file in the same folder, fsync, rename.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"sort"

	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/internal/atomicfile"
	"github.com/diffinv/diffinv/internal/userfile"
)

// MetadataKey is the reserved header key of the metadata map.
const MetadataKey = "__metadata__"

// maxHeader bounds the JSON header a reader accepts (100 MB, as the
// reference implementation does), so a corrupt length cannot exhaust memory.
const maxHeader = 100 << 20

// dtypeSize gives the element size in bytes of every dtype Load converts.
var dtypeSize = map[string]int{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}

// headerEntry is one tensor's header record.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Write writes tensors (float32, any shape, contiguous) and metadata to w in
// safetensors format, names sorted so the same input gives the same bytes.
func Write(w io.Writer, tensors map[string]*tensor.Dense, metadata map[string]string) error {
	return WriteAs(w, tensors, metadata, "F32")
}

// WriteAs is Write storing the values as dtype: "F32" (exact) or "F16"
// (IEEE binary16, each value rounded to the nearest, ties to even: a
// relative error of at most 2^-11 in the normal range, half the file size;
// Load reads either back as float32). A finite value beyond binary16's
// range (|v| ≥ 65520) is an error naming its tensor, not an infinity.
func WriteAs(w io.Writer, tensors map[string]*tensor.Dense, metadata map[string]string, dtype string) error {
	var width int64
	switch dtype {
	case "F32":
		width = 4
	case "F16":
		width = 2
	default:
		return fmt.Errorf("checkpoint: storage dtype %q, want F32 or F16", dtype)
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if name == MetadataKey {
			return fmt.Errorf("checkpoint: tensor name %q is reserved for the metadata", name)
		}
		if name == "" {
			return fmt.Errorf("checkpoint: empty tensor name")
		}
		names = append(names, name)
	}
	sort.Strings(names)
	header := make(map[string]any, len(names)+1)
	var off int64
	for _, name := range names {
		t := tensors[name]
		if t == nil {
			return fmt.Errorf("checkpoint: tensor %q is nil", name)
		}
		if t.Dtype() != tensor.Float32 {
			return fmt.Errorf("checkpoint: tensor %q has dtype %v, want float32", name, t.Dtype())
		}
		if t.RequiresIterator() {
			return fmt.Errorf("checkpoint: tensor %q is a non-contiguous view, want a contiguous tensor", name)
		}
		shape := []int(t.Shape().Clone())
		if t.IsScalar() {
			shape = []int{}
		}
		n := int64(len(values(t)))
		header[name] = headerEntry{DType: dtype, Shape: shape, DataOffsets: [2]int64{off, off + width*n}}
		off += width * n
		if dtype == "F16" {
			for i, v := range values(t) {
				if _, ok := float32ToHalf(v); !ok {
					return fmt.Errorf("checkpoint: tensor %q element %d is %g, beyond float16's range (|v| < 65520): store it as F32", name, i, v)
				}
			}
		}
	}
	if len(metadata) > 0 {
		header[MetadataKey] = metadata
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint: encoding header: %w", err)
	}
	// Pad with spaces to a multiple of 8 so the data is aligned.
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hb)))
	if _, err := w.Write(lenb[:]); err != nil {
		return fmt.Errorf("checkpoint: writing header length: %w", err)
	}
	if _, err := w.Write(hb); err != nil {
		return fmt.Errorf("checkpoint: writing header: %w", err)
	}
	buf := make([]byte, 0, 1<<16)
	for _, name := range names {
		for _, v := range values(tensors[name]) {
			if dtype == "F16" {
				h, _ := float32ToHalf(v)
				buf = binary.LittleEndian.AppendUint16(buf, h)
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
			if len(buf) >= cap(buf)-4 {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("checkpoint: writing tensor %q: %w", name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("checkpoint: writing tensor data: %w", err)
		}
	}
	return nil
}

// values returns t's float32 values (one for a scalar).
func values(t *tensor.Dense) []float32 {
	if t.IsScalar() {
		if v, ok := t.Data().(float32); ok {
			return []float32{v}
		}
	}
	return t.Data().([]float32)
}

// Save writes tensors and metadata to path atomically: a temporary file in
// the same folder is written, fsynced and renamed over path, so a reader
// never sees a partial checkpoint.
func Save(path string, tensors map[string]*tensor.Dense, metadata map[string]string) error {
	return SaveAs(path, tensors, metadata, "F32")
}

// SaveAs is Save storing the values as dtype (see WriteAs).
func SaveAs(path string, tensors map[string]*tensor.Dense, metadata map[string]string, dtype string) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return WriteAs(w, tensors, metadata, dtype) }); err != nil {
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	return nil
}

// Info describes one tensor of a file as stored, before conversion.
type Info struct {
	// DType is the stored safetensors dtype ("F32", "F16", "BF16", ...).
	DType string
	// Shape is the tensor's shape ([] for a scalar).
	Shape []int
}

// File is the content of a safetensors file, every tensor converted to float32.
type File struct {
	// Tensors maps each name to its float32 tensor.
	Tensors map[string]*tensor.Dense
	// Stored records each tensor's dtype and shape as found in the file.
	Stored map[string]Info
	// Metadata is the header's __metadata__ map (empty if absent).
	Metadata map[string]string
}

// MaxFileSize caps the safetensors files Load reads (64 GiB: far beyond
// any diffinv model, yet a bound), so a wrong path fails at once.
const MaxFileSize = 64 << 30

// Load reads a safetensors file, converting every tensor to float32. Only
// a regular file is read (a device such as /dev/zero or a named pipe would
// never end), and it must be exactly as long as its header says.
func Load(path string) (*File, error) {
	f, size, err := userfile.Open(path, "checkpoint", MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	defer f.Close()
	out, err := Read(f, size)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load %s: %w", path, err)
	}
	return out, nil
}

// rawEntry is one header record before decoding.
type rawEntry struct {
	name string
	msg  json.RawMessage
}

// parseHeader splits the header JSON into its records, strictly: one JSON
// object starting at the first byte, no duplicate keys, and nothing after
// it but the space padding the format allows.
func parseHeader(hb []byte) ([]rawEntry, error) {
	if len(hb) == 0 || hb[0] != '{' {
		return nil, fmt.Errorf("header does not start with '{' (a JSON object)")
	}
	body := bytes.TrimRight(hb, " ")
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return nil, fmt.Errorf("decoding JSON header: %w", err)
	}
	var out []rawEntry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("decoding JSON header: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("decoding JSON header: key %v is not a string", tok)
		}
		if seen[name] {
			return nil, fmt.Errorf("header names %q twice", name)
		}
		seen[name] = true
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("decoding JSON header at %q: %w", name, err)
		}
		out = append(out, rawEntry{name, msg})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, fmt.Errorf("decoding JSON header: %w", err)
	}
	if end := dec.InputOffset(); end != int64(len(body)) {
		return nil, fmt.Errorf("header length %d covers %d bytes after its JSON object (%d bytes), want only space padding", len(hb), int64(len(body))-end, end)
	}
	return out, nil
}

// entryInfo is a decoded, checked tensor record.
type entryInfo struct {
	name       string
	dtype      string
	shape      []int
	numel      int64
	begin, end int64
}

// decodeEntry decodes and checks one tensor record: a known dtype, a shape
// of non-negative dimensions whose product (and byte size) does not
// overflow, two offsets within the data region spanning exactly the bytes
// the shape needs.
func decodeEntry(name string, msg json.RawMessage, dataLen int64) (entryInfo, error) {
	if name == "" {
		return entryInfo{}, fmt.Errorf("header has a tensor with an empty name")
	}
	var e struct {
		DType       *string  `json:"dtype"`
		Shape       *[]int64 `json:"shape"`
		DataOffsets *[]int64 `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return entryInfo{}, fmt.Errorf("decoding header of tensor %q (want {\"dtype\", \"shape\", \"data_offsets\"}): %w", name, err)
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return entryInfo{}, fmt.Errorf("header of tensor %q lacks dtype, shape or data_offsets", name)
	}
	es, ok := dtypeSize[*e.DType]
	if !ok {
		return entryInfo{}, fmt.Errorf("tensor %q has dtype %q, want one of F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL", name, *e.DType)
	}
	info := entryInfo{name: name, dtype: *e.DType, shape: make([]int, len(*e.Shape)), numel: 1}
	for i, d := range *e.Shape {
		if d < 0 || d > math.MaxInt32 {
			return entryInfo{}, fmt.Errorf("tensor %q has dimension %d in shape %v, want 0 ≤ d ≤ %d", name, d, *e.Shape, math.MaxInt32)
		}
		hi, lo := bits.Mul64(uint64(info.numel), uint64(d))
		if hi != 0 || lo > math.MaxInt64/8 {
			return entryInfo{}, fmt.Errorf("tensor %q: shape %v has more elements than any file can hold", name, *e.Shape)
		}
		info.numel = int64(lo)
		info.shape[i] = int(d)
	}
	if len(*e.DataOffsets) != 2 {
		return entryInfo{}, fmt.Errorf("tensor %q has data_offsets %v, want [begin, end]", name, *e.DataOffsets)
	}
	info.begin, info.end = (*e.DataOffsets)[0], (*e.DataOffsets)[1]
	if info.begin < 0 || info.end < info.begin || info.end > dataLen {
		return entryInfo{}, fmt.Errorf("tensor %q has data offsets [%d, %d] outside the %d data bytes", name, info.begin, info.end, dataLen)
	}
	if want := info.numel * int64(es); info.end-info.begin != want {
		return entryInfo{}, fmt.Errorf("tensor %q: %d data bytes for shape %v of %s, want %d", name, info.end-info.begin, *e.Shape, info.dtype, want)
	}
	return info, nil
}

// Read reads a safetensors stream of the given total size from r, strictly
// by the format: the 8-byte header length must cover exactly one JSON
// object (plus space padding), at most 100 MB; every tensor record must be
// well-formed (decodeEntry); and the tensors' byte ranges, in offset order,
// must tile the data region exactly, with no gap, overlap or trailing
// bytes. A file that breaks any of these is an error naming the tensor or
// offset, never a silently shifted or zero-filled tensor.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("file of %d bytes is too short for a safetensors header (8 bytes at least)", size)
	}
	var lenb [8]byte
	if _, err := r.ReadAt(lenb[:], 0); err != nil {
		return nil, fmt.Errorf("reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenb[:])
	if n > maxHeader || n > uint64(size-8) {
		return nil, fmt.Errorf("header length %d is beyond the file (%d bytes) or the %d-byte limit", n, size, maxHeader)
	}
	hb := make([]byte, n)
	if _, err := r.ReadAt(hb, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	raw, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	dataStart := int64(8 + n)
	dataLen := size - dataStart
	out := &File{
		Tensors:  make(map[string]*tensor.Dense, len(raw)),
		Stored:   make(map[string]Info, len(raw)),
		Metadata: map[string]string{},
	}
	var infos []entryInfo
	for _, re := range raw {
		if re.name == MetadataKey {
			if err := json.Unmarshal(re.msg, &out.Metadata); err != nil {
				return nil, fmt.Errorf("decoding %s (want an object of strings): %w", MetadataKey, err)
			}
			if out.Metadata == nil {
				out.Metadata = map[string]string{}
			}
			continue
		}
		info, err := decodeEntry(re.name, re.msg, dataLen)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	// The byte ranges in offset order must tile [0, dataLen) exactly.
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].begin != infos[j].begin {
			return infos[i].begin < infos[j].begin
		}
		return infos[i].end < infos[j].end
	})
	var at int64
	for i, e := range infos {
		switch {
		case e.begin > at:
			return nil, fmt.Errorf("tensor %q starts at data offset %d, leaving bytes [%d, %d) unused; want the tensors contiguous", e.name, e.begin, at, e.begin)
		case e.begin < at:
			return nil, fmt.Errorf("tensor %q at data offsets [%d, %d] overlaps tensor %q, which ends at %d", e.name, e.begin, e.end, infos[i-1].name, at)
		}
		at = e.end
	}
	if at != dataLen {
		return nil, fmt.Errorf("the tensors cover %d of the %d data bytes; the file has %d bytes after them", at, dataLen, dataLen-at)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].name < infos[j].name })
	var buf []byte
	for _, e := range infos {
		nb := e.end - e.begin
		if int64(cap(buf)) < nb {
			buf = make([]byte, nb)
		}
		buf = buf[:nb]
		if _, err := r.ReadAt(buf, dataStart+e.begin); err != nil && nb > 0 {
			return nil, fmt.Errorf("reading tensor %q: %w", e.name, err)
		}
		vals := make([]float32, e.numel)
		decode(e.dtype, buf, vals)
		var t *tensor.Dense
		if len(e.shape) == 0 {
			t = tensor.New(tensor.FromScalar(vals[0]))
		} else {
			t = tensor.New(tensor.WithShape(e.shape...), tensor.WithBacking(vals))
		}
		out.Tensors[e.name] = t
		out.Stored[e.name] = Info{DType: e.dtype, Shape: append([]int{}, e.shape...)}
	}
	return out, nil
}

// decode converts little-endian values of dtype dt in b into dst.
func decode(dt string, b []byte, dst []float32) {
	le := binary.LittleEndian
	switch dt {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case "F16":
		for i := range dst {
			dst[i] = halfToFloat32(le.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
	case "I64":
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	case "I32":
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	case "I16":
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(b[2*i:])))
		}
	case "I8":
		for i := range dst {
			dst[i] = float32(int8(b[i]))
		}
	case "U8", "BOOL":
		for i := range dst {
			dst[i] = float32(b[i])
		}
	}
}

// halfToFloat32 converts an IEEE 754 binary16 value to float32 exactly
// (subnormals, infinities and NaN included).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant · 2^-24
		v := float32(mant) * float32(1.0/(1<<24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	}
}

// float32ToHalf rounds f to the nearest IEEE 754 binary16 value (ties to
// even; subnormals, infinities and NaN kept). ok is false when a finite f
// rounds beyond binary16's largest value (it would become an infinity).
func float32ToHalf(f float32) (h uint16, ok bool) {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff { // infinity or NaN (quiet, payload's top bits kept)
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13), true
		}
		return sign | 0x7c00, true
	}
	e := exp - 112 // binary16's biased exponent
	if e <= 0 {
		// A binary16 subnormal (or zero): the value is m·2^(exp−150) with
		// m the 24-bit significand, and the subnormal's mantissa counts
		// 2^−24, so it is m >> (14 − e), rounded. Below 2^−25 all is lost.
		shift := uint32(14 - e)
		if exp == 0 || shift > 24 {
			return sign, true
		}
		m := mant | 0x800000
		hm := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && hm&1 == 1) {
			hm++ // may become the smallest normal: the bits carry into the exponent
		}
		return sign | uint16(hm), true
	}
	v := uint32(e)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && v&1 == 1) {
		v++ // may carry into the exponent, up to infinity
	}
	if v >= 0x7c00 {
		return sign | 0x7c00, false
	}
	return sign | uint16(v), true
}

// Check compares tensors with the expected names and shapes and returns an
// error naming every missing, extra and misshaped tensor (nil if they match).
func Check(tensors map[string]*tensor.Dense, want map[string][]int) error {
	var missing, extra, bad []string
	for name, shape := range want {
		t, ok := tensors[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		got := []int(t.Shape())
		if t.IsScalar() {
			got = []int{}
		}
		if !slices.Equal(got, shape) {
			bad = append(bad, fmt.Sprintf("%s has shape %v, want %v", name, got, shape))
		}
	}
	for name := range tensors {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(missing)+len(extra)+len(bad) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(bad)
	msg := "checkpoint does not match the model:"
	if len(missing) > 0 {
		msg += fmt.Sprintf(" missing %d tensor(s) %s;", len(missing), list(missing))
	}
	if len(extra) > 0 {
		msg += fmt.Sprintf(" %d unexpected tensor(s) %s;", len(extra), list(extra))
	}
	if len(bad) > 0 {
		msg += fmt.Sprintf(" %d misshaped: %s;", len(bad), list(bad))
	}
	return fmt.Errorf("%s", msg[:len(msg)-1])
}

// list formats names for an error, eliding after the first ten.
func list(names []string) string {
	const max = 10
	if len(names) <= max {
		return fmt.Sprintf("%q", names)
	}
	return fmt.Sprintf("%q and %d more", names[:max], len(names)-max)
}

// LoadExpected loads path and checks it holds exactly the expected tensors
// (names and shapes), failing with an error that names each missing, extra
// or misshaped one.
func LoadExpected(path string, want map[string][]int) (*File, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := Check(f.Tensors, want); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return f, nil
}
