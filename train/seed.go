package train

import "math/rand"

// Stream tags keep the seeds of the different uses of the run seed apart.
const (
	streamStep  = 0x5354 // "ST": per-step timesteps, noise and dropout
	streamEpoch = 0x4550 // "EP": per-epoch data order
	streamInit  = 0x494e // "IN": parameter initialisation
)

// splitmix64 is the finaliser of SplitMix64, a bijective mixer of 64 bits.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// mix derives a seed from the run seed, a stream tag and an index.
func mix(seed int64, stream, k uint64) int64 {
	return int64(splitmix64(splitmix64(splitmix64(uint64(seed))^stream) ^ k))
}

// StepSeed returns the seed of step k's random draws (timesteps, noise and
// the dropout seed, in that order) in a run seeded by seed.
func StepSeed(seed int64, k int) int64 { return mix(seed, streamStep, uint64(k)) }

// EpochSeed returns the seed of the data permutation of epoch e.
func EpochSeed(seed int64, e int) int64 { return mix(seed, streamEpoch, uint64(e)) }

// InitSeed returns the seed of the parameter initialisation.
func InitSeed(seed int64) int64 { return mix(seed, streamInit, 0) }

// StepRand returns the generator of step k's draws.
func StepRand(seed int64, k int) *rand.Rand { return rand.New(rand.NewSource(StepSeed(seed, k))) }

// EpochOrder returns the data order of epoch e: a permutation of 0..n−1
// drawn from EpochSeed(seed, e).
func EpochOrder(seed int64, e, n int) []int {
	return rand.New(rand.NewSource(EpochSeed(seed, e))).Perm(n)
}

// BatchIndices returns the dataset indices of the batch of step k: batch
// k mod stepsPerEpoch of epoch k / stepsPerEpoch, with stepsPerEpoch =
// ⌊n/size⌋ (the last n mod size images of each epoch's order are skipped).
// Any step can be asked for in any order (a resumed run starts mid-epoch);
// the permutation of the last epoch asked for is cached.
func (c *epochCache) BatchIndices(k int) []int {
	spe := c.n / c.size
	e, j := k/spe, k%spe
	if c.order == nil || c.epoch != e {
		c.order, c.epoch = EpochOrder(c.seed, e, c.n), e
	}
	return append([]int(nil), c.order[j*c.size:(j+1)*c.size]...)
}

// epochCache draws batches in per-epoch seeded orders.
type epochCache struct {
	seed    int64
	n, size int
	epoch   int
	order   []int
}
