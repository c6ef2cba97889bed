//go:build torch

package torch

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/pickle"
)

// floatStorage replaces gotch v0.7.0's float storages, which read with
// io.Reader.Read (a short read silently leaves garbage) and convert float16
// subnormals wrongly (its half→float tables never normalise them), and
// which lack bfloat16. tuple3Fixer renames the pickle's GLOBAL
// "torch <Kind>Storage" to "diffinv <Kind>Storage", and the STACK_GLOBAL
// name "<Kind>Storage" to "diffinv_<Kind>Storage", for the four float
// kinds, so gotch's class lookup falls through to findStorageClass.
type floatStorage struct {
	kind string // "Float", "Half", "BFloat16" or "Double"
	size int
	data []float32
}

// storageClass makes floatStorages of one kind.
type storageClass struct{ kind string }

// New implements pickle.StorageClass.
func (c storageClass) New(size int, _ string) pickle.Storage {
	return &floatStorage{kind: c.kind, size: size}
}

// floatKinds maps each replaced storage kind to its element size in bytes.
var floatKinds = map[string]int{"Float": 4, "Half": 2, "BFloat16": 2, "Double": 8}

// findStorageClass is the unpickler's FindClass fallback for the renamed
// storage classes.
func findStorageClass(module, name string) (interface{}, error) {
	if module == fixModule || module == "torch" && strings.HasPrefix(name, stackGlobalPrefix) {
		name = strings.TrimPrefix(name, stackGlobalPrefix)
		for k := range floatKinds {
			if name == k+"Storage" {
				return storageClass{kind: k}, nil
			}
		}
	}
	return nil, fmt.Errorf("pickled class %s.%s is not supported (a state dict holds tensors and dicts only)", module, name)
}

// SetFromFile reads a legacy-format storage: an int64 element count, then
// the elements.
func (s *floatStorage) SetFromFile(r io.Reader) error {
	var nb [8]byte
	if _, err := io.ReadFull(r, nb[:]); err != nil {
		return fmt.Errorf("%sStorage: reading its size: %w", s.kind, err)
	}
	n := binary.LittleEndian.Uint64(nb[:])
	if n > 1<<50 {
		return fmt.Errorf("%sStorage: %d elements", s.kind, n)
	}
	return s.SetFromFileWithSize(r, int(n))
}

// SetFromFileWithSize reads size little-endian elements and converts them
// to float32.
// The slice grows with the data actually read, so a corrupt element count
// cannot make it allocate more than the file holds.
func (s *floatStorage) SetFromFileWithSize(r io.Reader, size int) error {
	if size < 0 {
		return fmt.Errorf("%sStorage: %d elements", s.kind, size)
	}
	es := floatKinds[s.kind]
	data := make([]float32, 0, min(size, 1<<20))
	buf := make([]byte, 1<<16)
	per := len(buf) / es
	for len(data) < size {
		n := min(per, size-len(data))
		b := buf[:n*es]
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("%sStorage: reading %d elements: %w", s.kind, size, err)
		}
		for i := 0; i < n; i++ {
			data = append(data, decodeFloat(s.kind, b[i*es:]))
		}
	}
	s.data = data
	return nil
}

// decodeFloat converts one little-endian element to float32.
func decodeFloat(kind string, b []byte) float32 {
	switch kind {
	case "Half":
		return halfToFloat32(binary.LittleEndian.Uint16(b))
	case "BFloat16":
		return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16)
	case "Double":
		return float32(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b))
}

// halfToFloat32 converts IEEE 754 binary16 to float32 exactly, subnormals,
// infinities and NaN included.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0: // ±0
		return math.Float32frombits(sign)
	}
	// subnormal: man · 2^-24
	v := float32(man) * float32(math.Ldexp(1, -24))
	if sign != 0 {
		v = -v
	}
	return v
}

// DType implements pickle.Storage: the data is converted to float32.
func (s *floatStorage) DType() gotch.DType { return gotch.Float }

// GetData implements pickle.Storage.
func (s *floatStorage) GetData() interface{} { return s.data }

// Device implements pickle.Storage: the data is read on the CPU whatever
// device it was saved from.
func (s *floatStorage) Device() gotch.Device { return gotch.CPU }
