//go:build torch

package torch

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/diffinv/diffinv/internal/userfile"

	"github.com/sugarme/gotch/pickle"
	"gorgonia.org/tensor"

	"github.com/diffinv/diffinv/checkpoint"
	"github.com/diffinv/diffinv/config"
	"github.com/diffinv/diffinv/internal/tensors"
	"github.com/diffinv/diffinv/model"
)

// FormatKey and Format mark a checkpoint written by Import (metadata
// "format"); SourceKey records the file it came from.
const (
	FormatKey = "format"
	Format    = "diffinv-unet"
	SourceKey = "imported_from"
)

// wrapperKeys are the keys under which training scripts commonly nest the
// state dict in a bigger dict, tried in this order when the top level is not
// itself a state dict.
var wrapperKeys = []string{"state_dict", "model", "ema_model", "ema"}

// ReadStateDict reads a PyTorch state dict written by torch.save, in the zip
// format (PyTorch ≥ 1.6) or the legacy pickle format, with gotch's pickle
// reader (with its TUPLE3 bug worked around, see tuple3Fixer), and converts
// every tensor to float32 (float16 and float64 convert;
// other dtypes are errors). The tensors are read on the CPU whatever device
// they were saved from. A state dict nested under one of the keys
// "state_dict", "model", "ema_model" or "ema" is found too.
func ReadStateDict(path string) (sd map[string]*tensor.Dense, err error) {
	if err := checkMagic(path); err != nil {
		return nil, fmt.Errorf("reading PyTorch state dict: %w", err)
	}
	defer func() {
		// gotch's unpickler panics on some malformed input.
		if r := recover(); r != nil {
			sd, err = nil, fmt.Errorf("reading PyTorch state dict %s: malformed pickle: %v", path, r)
		}
	}()
	obj, err := pickle.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler {
		u := pickle.NewUnpickler(newTuple3Fixer(r))
		u.FindClass = findStorageClass
		return u
	})
	if err != nil {
		return nil, fmt.Errorf("reading PyTorch state dict %s (want a file written by torch.save): %w", path, err)
	}
	entries, keys, err := dictEntries(obj)
	if err != nil {
		return nil, fmt.Errorf("reading PyTorch state dict %s: top level: %w", path, err)
	}
	if !allTensors(entries) {
		found := false
		for _, k := range wrapperKeys {
			if inner, ok := entries[k]; ok {
				e, _, err := dictEntries(inner)
				if err == nil && allTensors(e) {
					entries, found = e, true
					break
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("reading PyTorch state dict %s: the top level is a dict with keys %s that is not a state dict (name → tensor) and holds none under %q", path, listNames(keys), wrapperKeys)
		}
	}
	sd = make(map[string]*tensor.Dense, len(entries))
	for name, v := range entries {
		st := v.(*pickle.StorageTensor)
		d, err := denseOf(st)
		if err != nil {
			return nil, fmt.Errorf("reading PyTorch state dict %s: tensor %s: %w", path, name, err)
		}
		sd[name] = d
	}
	return sd, nil
}

// checkMagic rejects files that are neither a zip archive (torch.save's
// format since PyTorch 1.6) nor a legacy pickle stream (opcode PROTO first).
// gotch's legacy reader loops forever on a file its tar probe reads as an
// empty archive (an empty file, say), so such files must not reach it.
func checkMagic(path string) error {
	// A regular file only (a device or pipe would hang the reader), at
	// most 16 GB.
	f, _, err := userfile.Open(path, "PyTorch checkpoint", 16<<30)
	if err != nil {
		return err
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	switch {
	case n == 4 && string(head[:]) == "PK\x03\x04":
		return nil
	case n >= 2 && head[0] == 0x80:
		return nil
	}
	return fmt.Errorf("%s is not a file written by torch.save (neither a zip archive nor a pickle stream; %d bytes read)", path, n)
}

// dictEntries returns the string-keyed entries of a pickled dict or
// OrderedDict and its keys in file order.
func dictEntries(obj interface{}) (map[string]interface{}, []string, error) {
	out := map[string]interface{}{}
	var keys []string
	add := func(k, v interface{}) error {
		s, ok := k.(string)
		if !ok {
			return fmt.Errorf("dict key %v of type %T, want string", k, k)
		}
		out[s] = v
		keys = append(keys, s)
		return nil
	}
	switch d := obj.(type) {
	case *pickle.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*pickle.OrderedDictEntry)
			if err := add(entry.Key, entry.Value); err != nil {
				return nil, nil, err
			}
		}
	case *pickle.Dict:
		for _, entry := range *d {
			if err := add(entry.Key, entry.Value); err != nil {
				return nil, nil, err
			}
		}
	default:
		return nil, nil, fmt.Errorf("a %T, want a dict or OrderedDict of tensors", obj)
	}
	return out, keys, nil
}

func allTensors(m map[string]interface{}) bool {
	if len(m) == 0 {
		return false
	}
	for _, v := range m {
		if _, ok := v.(*pickle.StorageTensor); !ok {
			return false
		}
	}
	return true
}

// denseOf copies a pickled (storage, offset, size, stride) tensor into a
// contiguous float32 tensor, checking every index against the storage.
func denseOf(st *pickle.StorageTensor) (*tensor.Dense, error) {
	var data []float32
	switch v := st.Source.GetData().(type) {
	case []float32: // FloatStorage, and HalfStorage (gotch widens it)
		data = v
	case []float64:
		data = make([]float32, len(v))
		for i, x := range v {
			data[i] = float32(x)
		}
	default:
		return nil, fmt.Errorf("storage of Go type %T, want a float16, float32 or float64 tensor", v)
	}
	size, stride := st.Size, st.Stride
	if len(size) != len(stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in length", size, stride)
	}
	// Bounds keep the products below overflow and the allocation near the
	// storage's size (a tensor with stride 0, an expanded one, may hold
	// more elements than its storage); the last index must then fall inside
	// the storage.
	const maxDim = 1 << 31
	maxElems := max(2*int64(len(data)), 1<<20)
	n := int64(1)
	last := st.StorageOffset
	for i, s := range size {
		if s <= 0 || s > maxDim || stride[i] < 0 || stride[i] > int64(len(data)) {
			return nil, fmt.Errorf("size %v, stride %v for a storage of %d: want positive sizes and strides in [0, %d]", size, stride, len(data), len(data))
		}
		if n *= s; n > maxElems {
			return nil, fmt.Errorf("size %v: more than %d elements for a storage of %d", size, maxElems, len(data))
		}
		last += (s - 1) * stride[i]
	}
	if st.StorageOffset < 0 || last >= int64(len(data)) {
		return nil, fmt.Errorf("size %v, stride %v, offset %d reach element %d of a storage of %d", size, stride, st.StorageOffset, last, len(data))
	}
	out := make([]float32, n)
	idx := make([]int64, len(size))
	for k := range out {
		off := st.StorageOffset
		for i := range idx {
			off += idx[i] * stride[i]
		}
		out[k] = data[off]
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < size[i] {
				break
			}
			idx[i] = 0
		}
	}
	if len(size) == 0 {
		return tensor.New(tensor.FromScalar(out[0])), nil
	}
	shape := make([]int, len(size))
	for i, s := range size {
		shape[i] = int(s)
	}
	return tensors.FromSlice(out, shape...), nil
}

// stripDataParallel removes the "module." prefix that torch.nn.DataParallel
// and DistributedDataParallel put before every name, when every name has it.
func stripDataParallel(sd map[string]*tensor.Dense) map[string]*tensor.Dense {
	const prefix = "module."
	for name := range sd {
		if !strings.HasPrefix(name, prefix) {
			return sd
		}
	}
	out := make(map[string]*tensor.Dense, len(sd))
	for name, t := range sd {
		out[strings.TrimPrefix(name, prefix)] = t
	}
	return out
}

// CheckStateDict checks sd against the parameters of the UNet cfg
// describes, under the names ConvertStateDict expects; the error names every
// missing, unexpected and misshaped tensor.
func CheckStateDict(sd map[string]*tensor.Dense, cfg config.Model) error {
	_, err := ConvertStateDict(sd, cfg)
	return err
}

// ConvertStateDict checks sd against the UNet cfg describes and returns its
// tensors under diffinv's parameter names (guided-diffusion's). With
// model.arch adm the names must be guided-diffusion's, one to one. With
// model.arch ddpm they must be those of the DDPM UNet (pytorch_diffusion's
// Model, as in DDIM, SDEdit, DDRM and DDNM: temb.dense, conv_in,
// down.L.block.B, mid.block_1, up.L.upsample, norm_out, ...), which
// model.FromDDPM renames (q, k and v concatenate into qkv). The error names
// every missing, unexpected and misshaped tensor, and says so when the
// state dict is of the other architecture.
func ConvertStateDict(sd map[string]*tensor.Dense, cfg config.Model) (map[string]*tensor.Dense, error) {
	params, err := ParamsFor(cfg)
	if err != nil {
		return nil, err
	}
	ddpmNames := model.LooksLikeDDPM(sd)
	if cfg.Arch == config.ArchDDPM {
		out, err := model.FromDDPM(sd, cfg)
		if err != nil && !ddpmNames {
			return nil, fmt.Errorf("%w (model.arch is ddpm, but this state dict has no temb.dense.0.weight and conv_in.weight: is it guided-diffusion's UNetModel? then use model.arch: adm)", err)
		}
		return out, err
	}
	if ddpmNames {
		return nil, fmt.Errorf("this is a state dict of the DDPM architecture (temb.dense, conv_in, down.*.block, ...: pytorch_diffusion's Model, as in DDIM, DDRM, SDEdit and DDNM's CelebA-HQ model), not guided-diffusion's UNetModel (model.arch %q): import it with model.arch: ddpm (configs/celebahq256.yaml is DDNM's CelebA-HQ model), which maps its names and uses its timestep embedding, Downsample padding and GroupNorm ε", cfg.Arch)
	}
	if err := checkTensors(sd, ParamShapes(params)); err != nil {
		return nil, err
	}
	return sd, nil
}

// Import reads the PyTorch state dict at from (names prefixed "module." by
// DataParallel lose the prefix when all have it), checks and renames it
// against cfg (ConvertStateDict: guided-diffusion's names for model.arch
// adm, the DDPM UNet's for ddpm) and writes a diffinv checkpoint (safetensors, float32) to out, with the model
// config under ConfigKey, FormatKey and SourceKey, and the extra metadata
// entries (which must not use those keys). It returns the number of tensors
// written.
func Import(from string, cfg config.Model, out string, extra map[string]string) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	cj, err := ConfigJSON(cfg)
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	meta := map[string]string{ConfigKey: cj, FormatKey: Format, SourceKey: filepath.Base(from)}
	for k, v := range extra {
		if _, ok := meta[k]; ok {
			return 0, fmt.Errorf("import: metadata key %q is reserved", k)
		}
		meta[k] = v
	}
	sd, err := ReadStateDict(from)
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	sd = stripDataParallel(sd)
	if sd, err = ConvertStateDict(sd, cfg); err != nil {
		return 0, fmt.Errorf("import: %s against the model config: %w", from, err)
	}
	if err := checkpoint.Save(out, sd, meta); err != nil {
		return 0, fmt.Errorf("import: writing %s: %w", out, err)
	}
	return len(sd), nil
}
