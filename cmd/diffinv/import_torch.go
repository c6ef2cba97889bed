//go:build torch

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	torchengine "github.com/diffinv/diffinv/engine/torch"
)

// newImportCmd is `diffinv import` (torch builds only): a PyTorch
// guided-diffusion state dict to a diffinv checkpoint.
func newImportCmd() *cobra.Command {
	var (
		cf        configFlags
		from, out string
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Convert a PyTorch guided-diffusion or DDPM state dict (.pt) into a diffinv checkpoint",
		Long: `import reads a state dict written by torch.save (zip or legacy format; float32,
float16, bfloat16 or float64 tensors, saved from any device) and writes a
diffinv checkpoint (safetensors, float32) that both engines load.

The names map one to one: with model.arch adm the state dict must hold
exactly the parameters of guided-diffusion's UNetModel built from the model
section of --config, with the same shapes; with model.arch ddpm those of the
DDPM UNet (pytorch_diffusion's Model, as in DDIM, SDEdit, DDRM and DDNM:
temb.dense, conv_in, down.L.block.B, mid, up, norm_out, conv_out), renamed to
guided-diffusion's (q, k, v concatenate into qkv). DataParallel's "module."
prefix is dropped when every name has it; a missing, unexpected or misshaped
tensor is an error that names it. The whole config (--config, DIFFINV_* and
--set over the defaults; model and diffusion sections) is stored in the
checkpoint, so sample and solve use the matching diffusion settings.

--checkpoint and --config are the flags of every command; the older --from and
--arch still work (deprecated).`,
		Example: `  diffinv import --checkpoint ffhq_10m.pt --config configs/ffhq256-adm.yaml --out ffhq256.safetensors
  diffinv import --checkpoint celeba_hq.ckpt --config configs/celebahq256.yaml --out celebahq256.safetensors
  diffinv import --checkpoint model.pt --config configs/celeba64.yaml --set model.learn_sigma=true --out c.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case from == "":
				return fmt.Errorf("--checkpoint is required: the PyTorch state dict (.pt) to import")
			case cf.file == "":
				return fmt.Errorf("--config is required: a YAML config whose model section matches the state dict (see configs/)")
			case out == "":
				return fmt.Errorf("--out is required: the diffinv checkpoint to write")
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("--out %s exists; pass --force to overwrite it", out)
			}
			cfg, err := cf.load()
			if err != nil {
				return fmt.Errorf("--config %s: %w (the whole config must validate: give it a data section that matches the model, e.g. data.dataset: folder for RGB images)", cf.file, err)
			}
			if err := loaded(cmd, cfg); err != nil {
				return err
			}
			run, err := cfg.StoredYAML() // without engine: no precision is stored with weights
			if err != nil {
				return err
			}
			n, err := torchengine.Import(from, cfg.Model, out, map[string]string{RunConfigKey: string(run)})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d tensors from %s into %s\n", n, from, out)
			return nil
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&from, "checkpoint", "", "PyTorch state dict written by torch.save (.pt, .pth, .ckpt)")
	f.StringVar(&from, "from", "", "PyTorch state dict (use --checkpoint)")
	f.StringVar(&cf.file, "arch", "", "YAML config of the network (use --config)")
	f.MarkDeprecated("from", "use --checkpoint, as every command")
	f.MarkDeprecated("arch", "use --config, as every command")
	f.StringVar(&out, "out", "", "diffinv checkpoint to write (.safetensors)")
	f.BoolVar(&force, "force", false, "overwrite --out if it exists")
	return cmd
}
