// Package config holds diffinv's typed configuration: the sections model,
// diffusion, train, sample, data, measurement, solver, classifier and
// engine, their defaults, and their validation.
//
// Configs are decoded once, at the edge (cmd/diffinv, through Load), into
// these structs; every other package takes the structs and never sees viper.
// Every key can be set in a YAML file, by a DIFFINV_* environment variable
// (DIFFINV_TRAIN_LR for train.lr) or by --set train.lr=0.0005, with
// precedence --set > environment > file > defaults.
package config

// Config is the whole configuration of a diffinv run.
type Config struct {
	Model     Model     `yaml:"model"`
	Diffusion Diffusion `yaml:"diffusion"`
	Train     Train     `yaml:"train"`
	Sample    Sample    `yaml:"sample"`
	Data      Data      `yaml:"data"`
	// Measurement is the forward model y = A(x) + n of inverse problems.
	Measurement Measurement `yaml:"measurement"`
	// Solver is the inverse-problem method and its options.
	Solver Solver `yaml:"solver"`
	// Classifier is the training of an evaluation classifier
	// (train-classifier, train-attr-classifier).
	Classifier Classifier `yaml:"classifier,omitempty"`
	// Engine is how this machine runs the network (the arithmetic), not
	// what the network is: it is never stored with weights (StoredYAML)
	// and never taken from a checkpoint.
	Engine Engine `yaml:"engine,omitempty"`
}

// The values of Engine.Precision (nn.PrecisionNames).
const (
	// PrecisionAuto runs bf16 where the CPU and oneDNN can, else fp32.
	PrecisionAuto = "auto"
	// PrecisionBF16 runs the convolutions in bfloat16 with float32
	// accumulation (mixed precision); an error where it cannot run.
	PrecisionBF16 = "bf16"
	// PrecisionFP32 runs every op in float32.
	PrecisionFP32 = "fp32"
)

// Engine describes how the network runs on this machine. It is a property
// of the run, not of the model: sample, solve and eval take it from the
// command (defaults, file, DIFFINV_ENGINE_*, --set, --precision), never
// from the run config stored in a checkpoint.
type Engine struct {
	// Precision is the arithmetic of the network's heavy ops: "auto" (the
	// default: bf16 where the CPU has AMX-BF16 or AVX512-BF16 and oneDNN
	// loads, else fp32), "bf16" or "fp32". Empty means auto. The
	// --precision flag of train, sample, solve, eval, experiment run, demo
	// and bench unet overrides it.
	Precision string `yaml:"precision"`
}

// Solver names an inverse-problem method and holds its options: every key
// beside method and baseline (e.g. solver.scale, solver.steps) goes to
// Options, and the method checks them (`diffinv solve --help` lists them).
type Solver struct {
	// Method is the solver's registry name, e.g. dps or ddnm.
	Method string `yaml:"method"`
	// Baseline is the classical reconstruction reported beside it: auto
	// (A†y for linear operators, ADMM-TV without a pseudo-inverse, HIO for
	// phase retrieval), pinv, tikhonov, admm_tv, hio, er or none.
	Baseline string `yaml:"baseline"`
	// BatchSize is the number of images solved at once.
	BatchSize int `yaml:"batch_size"`
	// Seed seeds the inverse problem's random draws: the operator's random
	// parts (masks, kernels), the measurement noise and the solver's noise
	// (the --seed of solve, measure and demo; an experiment's seeds list
	// sets it per cell).
	Seed int64 `yaml:"seed"`
	// Options are the method's own options.
	Options map[string]any `yaml:",inline"`
}

// Measurement describes the operator A and the noise n of y = A(x) + n.
type Measurement struct {
	Operator Operator `yaml:"operator"`
	Noise    Noise    `yaml:"noise"`
}

// Operator names a measurement operator and holds its parameters: every
// key beside name (e.g. measurement.operator.scale) goes to Params, and the
// operator registry checks them (`diffinv measure --help` lists operators).
type Operator struct {
	// Name is the operator's registry name, e.g. sr_bicubic or inpaint_box.
	Name string `yaml:"name"`
	// Params are the operator's own parameters.
	Params map[string]any `yaml:",inline"`
}

// Noise describes the measurement noise.
type Noise struct {
	// Name is clean, gaussian or poisson.
	Name string `yaml:"name"`
	// Sigma is the Gaussian noise std on diffinv's [-1, 1] image scale
	// (DPS's σ_y = 0.05 is on this scale). After Load it always holds the
	// std in use, also when the config gave Sigma01.
	Sigma float64 `yaml:"sigma"`
	// Sigma01 is the same std stated on [0, 1] images, the convention of
	// DDRM's and DDNM's papers and command lines (DDNM's code doubles its
	// --sigma_y "to account for scaling to [-1,1]"): Load sets
	// Sigma = 2·Sigma01. Giving both sigma and sigma_01 is an error unless
	// sigma = 2·sigma_01. Zero (absent) when the config did not use it.
	Sigma01 float64 `yaml:"sigma_01,omitempty" json:",omitempty"`
	// Rate is the Poisson rate (photon count at full intensity).
	Rate float64 `yaml:"rate"`
}

// Model describes the UNet, with the options and names of guided-diffusion's
// UNetModel so that its checkpoints map onto ours one to one.
type Model struct {
	// Arch is the network family: "adm" (guided-diffusion's UNetModel, the
	// default) or "ddpm" (the DDPM UNet of Ho et al. as ported to PyTorch by
	// pytorch_diffusion and used by DDIM, SDEdit, DDRM and DDNM: timestep
	// embedding [sin, cos] with frequencies 10000^(−i/(half−1)), Downsample
	// padded right and bottom only, GroupNorm ε 1e-6; it needs one attention
	// head, no scale-shift norm, no ResBlock up/down, no learn_sigma and
	// channel_mult[0] = 1). Both keep guided-diffusion's parameter names; an
	// empty value (checkpoints written before the key existed) means "adm".
	Arch string `yaml:"arch"`
	// ImageSize is the side of the square images the network sees.
	ImageSize int `yaml:"image_size"`
	// InChannels is the number of image channels (1 for MNIST, 3 for RGB).
	InChannels int `yaml:"in_channels"`
	// NumChannels is the base channel count (guided-diffusion num_channels).
	NumChannels int `yaml:"num_channels"`
	// ChannelMult multiplies NumChannels at each resolution level.
	ChannelMult []int `yaml:"channel_mult"`
	// NumResBlocks is the number of residual blocks per level.
	NumResBlocks int `yaml:"num_res_blocks"`
	// AttentionResolutions lists the image sides (in pixels) at which
	// self-attention blocks are used, as guided-diffusion's "16,8".
	AttentionResolutions []int `yaml:"attention_resolutions"`
	// NumHeads is the number of attention heads (ignored when NumHeadChannels > 0).
	NumHeads int `yaml:"num_heads"`
	// NumHeadChannels fixes the channels per head; -1 uses NumHeads.
	NumHeadChannels int `yaml:"num_head_channels"`
	// NumGroups is the group count of every GroupNorm (32 in guided-diffusion).
	NumGroups int `yaml:"num_groups"`
	// UseScaleShiftNorm conditions ResBlocks by FiLM (scale and shift) on the embedding.
	UseScaleShiftNorm bool `yaml:"use_scale_shift_norm"`
	// ResblockUpdown uses ResBlocks for up- and downsampling.
	ResblockUpdown bool `yaml:"resblock_updown"`
	// ConvResample uses a 3×3 convolution in Upsample and a strided
	// convolution in Downsample (else nearest up / average pool down).
	ConvResample bool `yaml:"conv_resample"`
	// Dropout is the dropout rate inside ResBlocks during training.
	Dropout float64 `yaml:"dropout"`
	// LearnSigma doubles the output channels to predict the variance too.
	LearnSigma bool `yaml:"learn_sigma"`
}

// The values of Model.Arch.
const (
	// ArchADM is guided-diffusion's UNetModel (Dhariwal & Nichol's ADM).
	ArchADM = "adm"
	// ArchDDPM is the DDPM UNet of Ho et al. (pytorch_diffusion's Model).
	ArchDDPM = "ddpm"
)

// Diffusion describes the forward process.
type Diffusion struct {
	// Steps is the number of diffusion timesteps T.
	Steps int `yaml:"steps"`
	// Schedule is the β schedule: "linear" or "cosine".
	Schedule string `yaml:"schedule"`
	// BetaStart and BetaEnd bound the linear schedule (for T = 1000).
	BetaStart float64 `yaml:"beta_start"`
	BetaEnd   float64 `yaml:"beta_end"`
	// Prediction is what the network predicts: "eps", "x0" or "v".
	Prediction string `yaml:"prediction"`
	// Variance is the reverse-process variance: "fixed_small",
	// "fixed_large" or "learned_range" (needs model.learn_sigma).
	Variance string `yaml:"variance"`
}

// The values of Train.LRDecay.
const (
	// LRConstant keeps the peak learning rate after the warm-up.
	LRConstant = "constant"
	// LRCosine decays it from the peak to 0 along half a cosine.
	LRCosine = "cosine"
)

// The values of Train.LossWeight.
const (
	// WeightUniform is L_simple: every timestep's MSE counts alike.
	WeightUniform = "uniform"
	// WeightMinSNR is Min-SNR-γ (Hang et al. 2023): the x0-equivalent MSE
	// of timestep t weighted by min(SNR_t, γ).
	WeightMinSNR = "min_snr"
	// WeightP2 is perception-prioritised weighting (Choi et al. 2022): the
	// ε-equivalent MSE of timestep t weighted by 1/(k + SNR_t)^γ.
	WeightP2 = "p2"
)

// Train describes a training run.
type Train struct {
	// Steps is the number of optimiser steps.
	Steps int `yaml:"steps"`
	// BatchSize is the number of images per step.
	BatchSize int `yaml:"batch_size"`
	// Optimizer is "adam" or "adamw".
	Optimizer string `yaml:"optimizer"`
	// LR is the peak learning rate.
	LR float64 `yaml:"lr"`
	// WeightDecay is AdamW's decoupled weight decay.
	WeightDecay float64 `yaml:"weight_decay"`
	// WarmupSteps ramps the learning rate linearly from 0 to LR.
	WarmupSteps int `yaml:"warmup_steps"`
	// LRDecay is the learning-rate schedule after the warm-up: "constant"
	// (LR to the end) or "cosine" (LR·½(1+cos(π·progress)), reaching 0 at
	// Steps). Empty, as in run configs written before the key, is constant.
	LRDecay string `yaml:"lr_decay"`
	// LossWeight weighs each image's MSE by its timestep: "uniform"
	// (L_simple), "min_snr" or "p2" (see WeightMinSNR, WeightP2). Empty, as
	// in run configs written before the key, is uniform.
	LossWeight string `yaml:"loss_weight"`
	// LossWeightGamma is γ of min_snr or p2; 0 takes the paper's value
	// (min_snr 5, p2 1).
	LossWeightGamma float64 `yaml:"loss_weight_gamma"`
	// LossWeightK is k of p2 (the paper's 1); unused by the others.
	LossWeightK float64 `yaml:"loss_weight_k"`
	// GradClip clips the global gradient norm; 0 disables clipping.
	GradClip float64 `yaml:"grad_clip"`
	// EMADecay is the decay of the exponential moving average of weights.
	EMADecay float64 `yaml:"ema_decay"`
	// EMAWarmup lowers the EMA decay of the early steps to
	// min(EMADecay, (1+k)/(10+k)) after k steps (diffusers' and timm's EMA
	// warm-up), so that the average forgets the initial weights within a
	// few hundred steps instead of ~5/(1−EMADecay): off by default, which
	// keeps the shipped recipes' runs.
	EMAWarmup bool `yaml:"ema_warmup"`
	// Seed seeds every random draw of the run.
	Seed int64 `yaml:"seed"`
	// CheckpointEvery writes a checkpoint every this many steps.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// KeepCheckpoints is how many recent checkpoints to keep.
	KeepCheckpoints int `yaml:"keep_checkpoints"`
	// LogEvery writes a log line every this many steps.
	LogEvery int `yaml:"log_every"`
	// SampleEvery writes a grid of EMA samples every this many steps; 0 disables.
	SampleEvery int `yaml:"sample_every"`
	// Out is the output folder of the run.
	Out string `yaml:"out"`
}

// Sample describes unconditional sampling.
type Sample struct {
	// Sampler names the sampler (see `diffinv sample --help`).
	Sampler string `yaml:"sampler"`
	// Steps is the number of sampling steps.
	Steps int `yaml:"steps"`
	// Eta is DDIM's η (0 deterministic, 1 DDPM-like).
	Eta float64 `yaml:"eta"`
	// Spacing picks the timesteps of a respaced schedule (steps below
	// diffusion.steps), as the DDIM code's --skip_type: "uniform"
	// (range(0, T, T/steps), the default) or "quad" (⌊(linspace(0,
	// √(0.8T), steps))²⌋, which the DDIM paper used on CIFAR-10: more steps
	// at low noise).
	Spacing string `yaml:"spacing"`
	// NumSamples is the number of samples.
	NumSamples int `yaml:"num_samples"`
	// BatchSize is the number of samples run through the network at once.
	BatchSize int `yaml:"batch_size"`
	// Seed seeds the initial noise and every step's noise, per sample:
	// sample k draws from diffusion.ImageRNGs(seed, k, 1), whatever
	// sample.batch_size is.
	Seed int64 `yaml:"seed"`
	// ClipX0 clamps x̂0 to [−1, 1] inside DDPM and DDIM steps.
	ClipX0 bool `yaml:"clip_x0"`
	// Denoise ends SDE, ODE and Langevin samplers with a noise-free step.
	Denoise bool `yaml:"denoise"`
	// Predictor is the pc sampler's predictor: reverse-diffusion,
	// euler-maruyama, ancestral or none.
	Predictor string `yaml:"predictor"`
	// Corrector is the pc sampler's corrector: langevin or none.
	Corrector string `yaml:"corrector"`
	// SNR is the Langevin corrector's signal-to-noise ratio.
	SNR float64 `yaml:"snr"`
	// CorrectorSteps is the number of corrector steps per noise level.
	CorrectorSteps int `yaml:"corrector_steps"`
	// LangevinStepSize is annealed Langevin's ε (step α_i = ε σ_i²/σ_min²).
	LangevinStepSize float64 `yaml:"langevin_step_size"`
	// LangevinSteps is annealed Langevin's number of steps per noise level.
	LangevinSteps int `yaml:"langevin_steps"`
	// ODEMethod is the probability-flow ODE integrator: euler, heun or rk4.
	ODEMethod string `yaml:"ode_method"`
}

// Classifier describes the training of an evaluation classifier:
// train-classifier (the MNIST LeNet behind eval samples' FID/KID) and
// train-attr-classifier (the CelebA attribute net behind the face gate).
// Their data come from the data section: data.dir (the MNIST files or the
// CelebA root; train-attr-classifier defaults it to ../shared/data/celeba)
// and data.limit (images kept of each split; 0 all). The defaults are the
// MNIST classifier's shipped settings; train-attr-classifier layers its own
// defaults (4 epochs, its --out) below the config file.
type Classifier struct {
	// Epochs over the training split.
	Epochs int `yaml:"epochs"`
	// BatchSize is the number of images per Adam step.
	BatchSize int `yaml:"batch_size"`
	// LR is the peak learning rate; it decays along a half cosine to
	// LR·FinalLRFactor.
	LR float64 `yaml:"lr"`
	// FinalLRFactor is the last step's learning rate over LR, in (0, 1].
	FinalLRFactor float64 `yaml:"final_lr_factor"`
	// Seed seeds the weight initialisation and the batch order.
	Seed int64 `yaml:"seed"`
	// MaxSteps stops after this many steps; 0 runs every epoch.
	MaxSteps int `yaml:"max_steps"`
	// EvalEvery evaluates test accuracy after every epoch (else after the
	// last); train-classifier only.
	EvalEvery bool `yaml:"eval_every"`
	// RefSeed seeds the subsets of the reference FID/KID of real data.
	RefSeed int64 `yaml:"ref_seed"`
	// RefN is the number of faces per side of train-attr-classifier's
	// reference FID/KID.
	RefN int `yaml:"ref_n"`
	// Out is the classifier file written (read by train-classifier
	// --ref-only).
	Out string `yaml:"out"`
}

// Data describes the training or evaluation data.
type Data struct {
	// Dataset is "mnist" (IDX files), "folder" (PNG/JPEG images) or
	// "celeba" (a CelebA root folder: the standard label files and
	// img_align_celeba; the split from list_eval_partition.txt).
	Dataset string `yaml:"dataset"`
	// Dir is the folder with the data files.
	Dir string `yaml:"dir"`
	// Split is a split word of data.dataset (data.Splits): "train" or
	// "test" (MNIST), or "train", "val" or "test" (CelebA's official
	// partition); folders have none. Where one name picks the dataset and
	// the split (solve's --dataset, an experiment's dataset.name) it is
	// spelled NAME-SPLIT, e.g. mnist-test (data.SplitNames).
	Split string `yaml:"split"`
	// Crop center-crops images to Crop×Crop before resizing to
	// model.image_size; 0 means the largest square for folders and the
	// standard 140-px crop at the images' scale for CelebA (70 at 89×109).
	Crop int `yaml:"crop"`
	// Limit caps the number of images loaded; 0 loads all.
	Limit int `yaml:"limit"`
}

// Default returns the defaults: a small MNIST model and its training setup.
func Default() Config {
	return Config{
		Model: Model{
			Arch:                 ArchADM,
			ImageSize:            28,
			InChannels:           1,
			NumChannels:          32,
			ChannelMult:          []int{1, 2, 2},
			NumResBlocks:         1,
			AttentionResolutions: []int{7},
			NumHeads:             1,
			NumHeadChannels:      -1,
			NumGroups:            32,
			UseScaleShiftNorm:    true,
			ResblockUpdown:       false,
			ConvResample:         true,
			Dropout:              0.1,
			LearnSigma:           false,
		},
		Diffusion: Diffusion{
			Steps:      1000,
			Schedule:   "linear",
			BetaStart:  1e-4,
			BetaEnd:    0.02,
			Prediction: "eps",
			Variance:   "fixed_small",
		},
		Train: Train{
			Steps:           20000,
			BatchSize:       64,
			Optimizer:       "adam",
			LR:              2e-4,
			WeightDecay:     0,
			WarmupSteps:     500,
			LRDecay:         LRConstant,
			LossWeight:      WeightUniform,
			LossWeightK:     1,
			GradClip:        1.0,
			EMADecay:        0.999,
			Seed:            1,
			CheckpointEvery: 1000,
			KeepCheckpoints: 3,
			LogEvery:        50,
			SampleEvery:     2000,
			Out:             "runs/mnist",
		},
		Sample: Sample{
			Sampler:          "ddim",
			Steps:            50,
			Eta:              0,
			Spacing:          "uniform",
			NumSamples:       64,
			BatchSize:        64,
			Seed:             1,
			ClipX0:           true,
			Denoise:          true,
			Predictor:        "reverse-diffusion",
			Corrector:        "langevin",
			SNR:              0.16,
			CorrectorSteps:   1,
			LangevinStepSize: 2e-5,
			LangevinSteps:    10,
			ODEMethod:        "heun",
		},
		Measurement: Measurement{
			Operator: Operator{Name: "sr_bicubic", Params: map[string]any{}},
			Noise:    Noise{Name: "gaussian", Sigma: 0.05, Rate: 1},
		},
		Solver: Solver{Method: "dps", Baseline: "auto", BatchSize: 8, Options: map[string]any{}},
		Classifier: Classifier{
			Epochs:        3,
			BatchSize:     64,
			LR:            1e-3,
			FinalLRFactor: 0.05,
			Seed:          1,
			EvalEvery:     true,
			RefSeed:       7,
			RefN:          1000,
			Out:           "models/classifier/classifier.safetensors",
		},
		Engine: Engine{Precision: PrecisionAuto},
		Data: Data{
			Dataset: "mnist",
			Dir:     "../shared/data/mnist",
			Split:   "train",
			Crop:    0,
			Limit:   0,
		},
	}
}
