package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// Verified writes are recorded in batches, at least every flushCount writes or
// flushInterval: a crash loses at most those records, and the next push rewrites only
// those files.
const (
	flushCount    = 256
	flushInterval = time.Second
)

// job is one origin file and the regions that need it in this phase.
type job struct {
	file    *Item
	regions []*regionPush
}

// runPhase uploads one phase to every region that has not failed, reading each origin
// file once for all regions, and records what was verified.
func (p *Pusher) runPhase(ctx context.Context, cfg Config, ph int, regions []*regionPush) {
	byPath := map[string]*job{}
	var jobs []*job
	for _, rr := range regions {
		// Each phase starts only while the region's lock is known to be held.
		if rr.failed() || (!cfg.DryRun && rr.checkLock(ctx, true) != nil) {
			continue
		}
		if p.Progress != nil {
			p.Progress.Phase(rr.Region, ph)
		}
		for i := range rr.plan.Items[ph] {
			it := &rr.plan.Items[ph][i]
			j := byPath[it.File.Path]
			if j == nil {
				j = &job{file: it}
				byPath[it.File.Path] = j
				jobs = append(jobs, j)
			}
			j.regions = append(j.regions, rr)
		}
	}
	if cfg.DryRun || len(jobs) == 0 {
		return
	}
	budget := newBudget(cfg.MemoryBudget)
	workers := 1
	for _, rr := range regions {
		workers = max(workers, rr.concurrency(cfg))
	}
	ch := make(chan []*job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for chain := range ch {
				// One after the other: a region that failed one file of a chain gets none
				// of the later ones (transfer skips failed regions).
				for _, j := range chain {
					if ctx.Err() != nil {
						break
					}
					p.transfer(ctx, cfg, budget, j)
				}
			}
		})
	}
	for _, chain := range chains(ph, jobs) {
		if ctx.Err() != nil {
			break
		}
		ch <- chain
	}
	close(ch)
	wg.Wait()
	for _, rr := range regions {
		if err := p.flush(ctx, rr); err != nil {
			rr.fail(err)
		}
		if rctx := rr.context(ctx); rctx.Err() != nil {
			rr.fail(fmt.Errorf("push %s: %w", rr.Region, context.Cause(rctx)))
		}
		if rr.phaseErr != nil {
			// What the later phases would publish must not name what this phase lacks.
			p.log().Error("stopping the push of this region before the next phase", slog.String("region", rr.Region),
				slog.String("phase", PhaseNames[ph]), slog.Any("err", rr.phaseErr))
		}
	}
}

// chains groups a phase's jobs into what may run in parallel. The repomd phase publishes each
// repository's repomd.xml pair one file after the other, signature (and keys) first and
// repomd.xml last: repomd.xml stays the one write that switches clients to the new state,
// and when the signature fails nothing changed in the region, the old pair still matches.
// Only when repomd.xml itself then fails does the region hold a new signature beside the
// old repomd.xml, which recordHalfPairs records as stale.
func chains(ph int, jobs []*job) [][]*job {
	var out [][]*job
	if ph != PhaseRepomd {
		for _, j := range jobs {
			out = append(out, []*job{j})
		}
		return out
	}
	byDir := map[string]int{}
	for _, j := range jobs {
		dir := pairKey(j.file.File.Path)
		i, ok := byDir[dir]
		if !ok {
			i = len(out)
			byDir[dir] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], j)
	}
	for _, c := range out {
		slices.SortStableFunc(c, func(a, b *job) int { return comparePair(a.file.File.Path, b.file.File.Path) })
	}
	return out
}

func (rr *regionPush) concurrency(cfg Config) int {
	if rr.region.Concurrency > 0 {
		return rr.region.Concurrency
	}
	return cfg.Concurrency
}

// transfer reads one file and writes it to every region of the job.
func (p *Pusher) transfer(ctx context.Context, cfg Config, budget *budget, j *job) {
	f := j.file.File
	var live []*regionPush
	for _, rr := range j.regions {
		if !rr.failed() {
			live = append(live, rr)
		}
	}
	if len(live) == 0 {
		return
	}
	var err error
	if f.Size < cfg.MultipartThreshold {
		err = p.transferWhole(ctx, budget, j.file, live)
	} else {
		err = p.transferParts(ctx, cfg, budget, j.file, live)
	}
	if err != nil {
		// The origin could not be read: no region gets the file.
		for _, rr := range live {
			rr.fileFailed(fmt.Errorf("push %s: %w", rr.Region, err))
		}
	}
}

func (rr *regionPush) fileFailed(err error) {
	rr.mu.Lock()
	rr.Failed++
	rr.mu.Unlock()
	rr.fail(err)
}

// transferWhole reads a file into memory once and puts it to every region.
func (p *Pusher) transferWhole(ctx context.Context, budget *budget, it *Item, regions []*regionPush) error {
	f := it.File
	if err := budget.acquire(ctx, f.Size); err != nil {
		return err
	}
	defer budget.release(f.Size)
	data, err := p.readOrigin(f.Path, f.Size)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], f.SHA256) {
		return fmt.Errorf("%s changed at the origin since the inventory; the next push takes it", f.Path)
	}
	ct, cc := model.Headers(f.Path)
	opts := objstore.PutOptions{SHA256: f.SHA256, ContentType: ct, CacheControl: cc}
	var wg sync.WaitGroup
	for _, rr := range regions {
		wg.Go(func() {
			rctx := rr.context(ctx)
			if err := rr.sem.Acquire(rctx, 1); err != nil {
				rr.fileFailed(fmt.Errorf("push %s: %w", rr.Region, err))
				return
			}
			defer rr.sem.Release(1)
			err := rr.store.Put(rctx, f.Path, bytes.NewReader(data), f.Size, opts)
			p.written(rctx, rr, it, opts, err)
		})
	}
	wg.Wait()
	return nil
}

// transferParts reads a large file part by part, once, sending each part to every region's
// multipart upload. Only when the whole file hashes to the inventory's SHA-256 are the
// uploads completed.
func (p *Pusher) transferParts(ctx context.Context, cfg Config, budget *budget, it *Item, regions []*regionPush) error {
	f := it.File
	ct, cc := model.Headers(f.Path)
	opts := objstore.PutOptions{SHA256: f.SHA256, ContentType: ct, CacheControl: cc}
	type upload struct {
		rr  *regionPush
		up  objstore.Upload
		err error
	}
	var ups []*upload
	for _, rr := range regions {
		rctx := rr.context(ctx)
		if err := rr.sem.Acquire(rctx, 1); err != nil {
			rr.fileFailed(fmt.Errorf("push %s: %w", rr.Region, err))
			continue
		}
		defer rr.sem.Release(1)
		up, err := rr.store.Multipart(rctx, f.Path, opts)
		if err != nil {
			rr.fileFailed(fmt.Errorf("push %s: %w", rr.Region, err))
			continue
		}
		ups = append(ups, &upload{rr: rr, up: up})
	}
	abortAll := func() {
		for _, u := range ups {
			_ = u.up.Abort(context.WithoutCancel(ctx))
		}
	}
	if len(ups) == 0 {
		return nil
	}
	if err := budget.acquire(ctx, cfg.PartSize); err != nil {
		abortAll()
		return err
	}
	defer budget.release(cfg.PartSize)
	r, err := p.Origin.Open(f.Path)
	if err != nil {
		abortAll()
		return fmt.Errorf("read origin %s: %w", f.Path, err)
	}
	defer r.Close()
	whole := sha256.New()
	buf := make([]byte, cfg.PartSize)
	var total int64
	for n := 1; ; n++ {
		k, err := io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			abortAll()
			return fmt.Errorf("read origin %s: %w", f.Path, err)
		}
		part := buf[:k]
		total += int64(k)
		whole.Write(part)
		sum := sha256.Sum256(part)
		var wg sync.WaitGroup
		for _, u := range ups {
			if u.err != nil {
				continue
			}
			wg.Go(func() { u.err = u.up.PutPart(u.rr.context(ctx), n, part, sum[:]) })
		}
		wg.Wait()
		if k < len(buf) {
			break
		}
	}
	if total != f.Size || !bytes.Equal(whole.Sum(nil), f.SHA256) {
		abortAll()
		return fmt.Errorf("%s changed at the origin since the inventory; the next push takes it", f.Path)
	}
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(func() {
			rctx := u.rr.context(ctx)
			err := u.err
			if err == nil {
				err = u.up.Complete(rctx)
			}
			if err != nil {
				_ = u.up.Abort(context.WithoutCancel(ctx))
			}
			p.written(rctx, u.rr, it, opts, err)
		})
	}
	wg.Wait()
	return nil
}

func (p *Pusher) readOrigin(path string, size int64) ([]byte, error) {
	r, err := p.Origin.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read origin %s: %w", path, err)
	}
	defer r.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("read origin %s: %w", path, err)
	}
	return data, nil
}

// written finishes one file in one region: the "+" twin, then the record. The store
// checked the SHA-256 of what it received, so a successful write is verified.
func (p *Pusher) written(ctx context.Context, rr *regionPush, it *Item, opts objstore.PutOptions, err error) {
	f := it.File
	if err == nil {
		if it.Twin != "" {
			err = rr.store.Copy(ctx, f.Path, it.Twin, opts)
		}
	}
	if err != nil {
		rr.fileFailed(fmt.Errorf("push %s: %w", rr.Region, err))
		return
	}
	rr.mu.Lock()
	rr.Uploaded++
	rr.Bytes += f.Size
	rr.uploadedKeys[f.Path] = true
	rr.pending = append(rr.pending, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256,
		State: model.ObjectPresent, Pushed: true, Verified: true})
	full := len(rr.pending) >= flushCount || time.Since(rr.lastFlush) >= flushInterval
	rr.mu.Unlock()
	if p.Progress != nil {
		p.Progress.Done(rr.Region, 1, f.Size)
	}
	if full {
		if err := p.flush(ctx, rr); err != nil {
			rr.fail(err)
		}
	}
}

// flush records a region's verified writes.
func (p *Pusher) flush(ctx context.Context, rr *regionPush) error {
	rr.mu.Lock()
	batch := rr.pending
	rr.pending = nil
	rr.lastFlush = time.Now()
	rr.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	// Every batch is checked: a lost lock records nothing more (and the fence would refuse it).
	if err := rr.checkLock(ctx, false); err != nil {
		return err
	}
	if err := p.DB.RecordObjects(context.WithoutCancel(ctx), rr.fence(), rr.region.ID, batch); err != nil {
		return fmt.Errorf("push %s: %w", rr.Region, err)
	}
	return nil
}

// budget bounds the bytes of file content held in memory.
type budget struct {
	sem   *semaphore.Weighted
	total int64
}

func newBudget(n int64) *budget { return &budget{sem: semaphore.NewWeighted(n), total: n} }

func (b *budget) acquire(ctx context.Context, n int64) error {
	return b.sem.Acquire(ctx, min(n, b.total))
}

func (b *budget) release(n int64) { b.sem.Release(min(n, b.total)) }
