// Package train trains diffinv's denoising diffusion models: the training
// objective (ε-, x0- or v-prediction with uniform timesteps, and the hybrid
// loss L_simple + λ·L_vlb of improved DDPM for networks that learn their
// variance), an Adam/AdamW optimiser over float32 slices with linear LR
// warm-up and global-norm gradient clipping, an exponential moving average of
// the weights, and Run, the loop behind `diffinv train`, with atomic
// checkpoints, bit-exact resume, a progress bar, a JSONL log, sample grids
// and a loss plot.
//
// The network is seen through the small Trainable interface (parameters,
// gradients, and one forward+backward pass through a LossFunc), so the loop
// and everything in this package are tested with a tiny hand-differentiated
// network and run the same with the UNet of package model.
//
// Determinism: every random draw of step k (timesteps, noise, dropout) comes
// from a *rand.Rand seeded by StepSeed(seed, k), and the data order of epoch
// e is a permutation drawn from EpochSeed(seed, e). A resumed run therefore
// needs no random-stream state: given the weights, EMA, Adam moments and step
// of a checkpoint it continues with exactly the bits an uninterrupted run
// would have produced.
package train
