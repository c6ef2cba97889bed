package experiment

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Shard selects part of an experiment's cells, so that N processes (a
// Slurm job array, several local processes) share one experiment: shard
// Index of Count, 0 ≤ Index < Count. Every shard computes the same
// assignment from the same cell list (Assign), so the shards' cells are
// disjoint and together cover the experiment; they write into the same
// results folder, and any order, interruption and restart of the shards
// gives the results of one uninterrupted run.
type Shard struct{ Index, Count int }

// Active reports whether s selects a part (Count > 0).
func (s Shard) Active() bool { return s.Count > 0 }

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "K/N" (0 ≤ K < N, e.g. Slurm's $SLURM_ARRAY_TASK_ID of
// an array 0-(N-1)).
func ParseShard(v string) (Shard, error) {
	k, n, ok := strings.Cut(v, "/")
	ki, err1 := strconv.Atoi(strings.TrimSpace(k))
	ni, err2 := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err1 != nil || err2 != nil || ni < 1 || ki < 0 || ki >= ni {
		return Shard{}, fmt.Errorf("shard %q, want K/N with 0 ≤ K < N (e.g. 0/4)", v)
	}
	return Shard{Index: ki, Count: ni}, nil
}

// CellCoster estimates what a cell costs to run (any unit: image-steps,
// say); a CellRunner that implements it balances the shards by it.
type CellCoster interface {
	CellCost(c Cell) float64
}

// Assign returns the shard (0..n−1) of each unique cell ID: the cells in
// order of decreasing cost (ties by ID) go each to the shard with the least
// total so far (ties to the lowest index), the longest-processing-time rule.
// A training cell and the solve cells of its model (Cell.Trained) go
// together, as one unit of their summed cost. It depends only on the
// cells' IDs and costs, so every shard agrees.
func Assign(cells []Cell, n int, cost func(Cell) float64) map[string]int {
	uniq := map[string]Cell{}
	for _, c := range cells {
		uniq[c.ID] = c
	}
	// Units: a cell's own ID, or its training cell's.
	unit := func(c Cell) string {
		if c.Trained != nil {
			return c.Trained.ID
		}
		return c.ID
	}
	costs := map[string]float64{}
	for _, c := range uniq {
		k := 1.0
		if cost != nil {
			k = cost(c)
		}
		costs[unit(c)] += k
	}
	ids := make([]string, 0, len(costs))
	for id := range costs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool {
		if costs[ids[a]] != costs[ids[b]] {
			return costs[ids[a]] > costs[ids[b]]
		}
		return ids[a] < ids[b]
	})
	load := make([]float64, n)
	out := make(map[string]int, len(ids))
	for _, id := range ids {
		best := 0
		for k := 1; k < n; k++ {
			if load[k] < load[best] {
				best = k
			}
		}
		out[id] = best
		load[best] += costs[id]
	}
	for id, c := range uniq {
		out[id] = out[unit(c)]
	}
	return out
}

// Claims. A shard claims a cell before running it with the file
// cells/ID.claim, created exclusively (O_EXCL, atomic on NFS v3+), holding
// who claimed it; the holder touches it every ClaimHeartbeat while the cell
// runs and removes it once the result is stored. A claim untouched for
// ClaimStale belongs to a process that died: the next shard takes it over by
// renaming it away (one rename wins) and claiming afresh. Locks are not
// used: they may not work on a shared file system.
var (
	ClaimHeartbeat = 30 * time.Second
	ClaimStale     = 10 * time.Minute
)

func claimPath(cdir, id string) string { return filepath.Join(cdir, id+".claim") }

// claim is a held claim; release stops its heartbeat and removes it.
type claim struct {
	path string
	stop chan struct{}
	done chan struct{}
}

// errClaimed reports a cell another live process holds.
var errClaimed = errors.New("claimed by another process")

// takeClaim claims cell id in cdir, or returns an error wrapping
// errClaimed naming the holder.
func takeClaim(cdir, id string) (*claim, error) {
	p := claimPath(cdir, id)
	host, _ := os.Hostname()
	body := fmt.Sprintf("host %s pid %d since %s\n", host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := f.WriteString(body)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(p)
				return nil, fmt.Errorf("claim %s: %w", p, werr)
			}
			c := &claim{path: p, stop: make(chan struct{}), done: make(chan struct{})}
			go c.heartbeat()
			return c, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("claim %s: %w", p, err)
		}
		st, serr := os.Stat(p)
		if serr != nil {
			continue // released meanwhile: try again
		}
		holder, _ := os.ReadFile(p)
		if time.Since(st.ModTime()) < ClaimStale && !deadHere(string(holder), host) {
			return nil, fmt.Errorf("cell %s: %w (%s)", id, errClaimed, strings.TrimSpace(string(holder)))
		}
		// Stale: move it aside; of several takers one rename succeeds.
		aside := fmt.Sprintf("%s.stale-%d-%d", p, os.Getpid(), rand.Int63())
		if err := os.Rename(p, aside); err == nil {
			os.Remove(aside)
		}
	}
	return nil, fmt.Errorf("cell %s: %w (a stale claim was taken over by another process)", id, errClaimed)
}

// deadHere reports whether a claim's holder ("host H pid P ...") ran on
// this host and is gone: a shard killed and restarted here takes its own
// cell back at once instead of waiting ClaimStale.
func deadHere(holder, host string) bool {
	var h string
	var pid int
	if _, err := fmt.Sscanf(holder, "host %s pid %d", &h, &pid); err != nil || h != host || pid <= 0 {
		return false
	}
	return !processAlive(pid)
}

func (c *claim) heartbeat() {
	defer close(c.done)
	t := time.NewTicker(ClaimHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			os.Chtimes(c.path, now, now)
		}
	}
}

// release stops the heartbeat and removes the claim file.
func (c *claim) release() {
	close(c.stop)
	<-c.done
	os.Remove(c.path)
}

// ClaimState says whether a shard holds cell id in the results folder out:
// "running" (a claim touched within ClaimStale), "stale" (a claim left by a
// process that died), or "" (none).
func ClaimState(out, id string) string {
	st, err := os.Stat(claimPath(filepath.Join(out, CellsDir), id))
	if err != nil {
		return ""
	}
	if time.Since(st.ModTime()) < ClaimStale {
		return "running"
	}
	return "stale"
}
