package fill

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// maxBackoff caps the wait between attempts of one job.
const maxBackoff = 10 * time.Minute

// Config tunes the workers; NewConfig makes one from the configuration's fill section.
type Config struct {
	Workers                int
	Lease                  time.Duration
	MaxAttempts            int
	RetryBackoff           time.Duration
	PollInterval           time.Duration
	MultipartCopyThreshold int64
	CopyPartSize           int64
	// UploadThreshold and UploadPartSize are push's multipart settings, for copies read
	// from the origin: their parts pass through memory, one buffer per worker.
	UploadThreshold int64
	UploadPartSize  int64
	StoreOptions    objstore.Options
}

// NewConfig is the fill configuration that c (fill.* of the configuration file) and p
// (push.*, for uploads from the origin) give; Workers 0 becomes 4 (cron decides itself
// whether to run workers at all).
func NewConfig(c config.Fill, p config.Push) Config {
	w := c.Workers
	if w <= 0 {
		w = 4
	}
	return Config{Workers: w, Lease: c.Lease.Std(), MaxAttempts: c.MaxAttempts, RetryBackoff: c.RetryBackoff.Std(),
		PollInterval: c.PollInterval.Std(), MultipartCopyThreshold: int64(c.MultipartCopyThreshold),
		CopyPartSize: int64(c.CopyPartSize), UploadThreshold: int64(p.MultipartThreshold), UploadPartSize: int64(p.PartSize)}
}

func (c Config) check() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("fill: workers %d: must be at least 1", c.Workers)
	case c.Lease < time.Second:
		return fmt.Errorf("fill: lease %s: must be at least 1s", c.Lease)
	case c.MaxAttempts < 1 || c.RetryBackoff <= 0 || c.PollInterval <= 0:
		return fmt.Errorf("fill: max attempts %d, retry backoff %s, poll interval %s: must be positive",
			c.MaxAttempts, c.RetryBackoff, c.PollInterval)
	case c.CopyPartSize < 5<<20 || c.MultipartCopyThreshold < c.CopyPartSize:
		return fmt.Errorf("fill: copy part size %d, multipart threshold %d: parts of at least 5MiB, threshold at least a part",
			c.CopyPartSize, c.MultipartCopyThreshold)
	case c.UploadPartSize < 5<<20 || c.UploadThreshold < c.UploadPartSize:
		return fmt.Errorf("fill: upload part size %d, multipart threshold %d: parts of at least 5MiB, threshold at least a part",
			c.UploadPartSize, c.UploadThreshold)
	}
	return nil
}

// Backoff is the wait before the next attempt of a job that failed its attempts-th
// attempt: base doubled after each failure, at most 10 minutes; final when that was the
// last attempt allowed.
func Backoff(base time.Duration, attempts, maxAttempts int) (wait time.Duration, final bool) {
	wait = base
	for i := 1; i < attempts && wait < maxBackoff; i++ {
		wait *= 2
	}
	return min(wait, maxBackoff), attempts >= maxAttempts
}

// Summary is what a worker session did.
type Summary struct {
	Worker     string `json:"worker"`
	RunID      int64  `json:"run_id,omitempty"`
	Copied     int64  `json:"copied"`
	ServerSide int64  `json:"server_side"`
	FromOrigin int64  `json:"from_origin"`
	Failed     int64  `json:"failed"`
	Lost       int64  `json:"lost"` // jobs taken over or removed under the worker: nothing recorded
	Bytes      int64  `json:"bytes"`
}

// Worker runs fill jobs.
type Worker struct {
	DB     *db.DB
	Config Config
	// OriginRoot is origin.path: copies that no region can give server-side read it.
	OriginRoot string
	// Regions limits the worker to these regions' jobs (all when empty).
	Regions []int64
	Log     *slog.Logger
	Metrics *Metrics // optional
	// OpenStore opens a region's storage (default objstore.Open with Config.StoreOptions).
	OpenStore func(ctx context.Context, r *model.Region) (objstore.Store, error)
	// ID names the worker in fill_jobs.worker (default host/pid/random).
	ID string

	stores sync.Map // region ID -> storeEntry

	regionsMu   sync.Mutex
	regionsAt   time.Time
	regionsList []model.Region
	healthList  []model.Health
	sum         struct{ copied, serverSide, fromOrigin, failed, lost, bytes atomic.Int64 }
}

type storeEntry struct {
	updated time.Time
	store   objstore.Store
}

// NewWorkerID is host/pid/random, unique per process start.
func NewWorkerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// Run works jobs with Config.Workers goroutines until ctx ends or, with once, until no
// job is ready. A session is recorded as one runs row of kind fill. On ctx's end, copies
// in flight are cancelled (multipart uploads aborted) and their jobs given back.
func (w *Worker) Run(ctx context.Context, once bool) (Summary, error) {
	if err := w.Config.check(); err != nil {
		return Summary{}, err
	}
	if w.ID == "" {
		w.ID = NewWorkerID()
	}
	dbCtx := context.WithoutCancel(ctx)
	run, err := w.DB.StartRun(ctx, model.RunFill, nil)
	if err != nil {
		return Summary{}, err
	}
	wake := make(chan struct{}, w.Config.Workers)
	lctx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	wakeAll := func() {
		for range w.Config.Workers {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	if !once {
		go func() {
			for lctx.Err() == nil {
				// Once listening, look again: a job queued before the LISTEN took effect
				// sent its notification to no one.
				err := w.DB.ListenFill(lctx, wakeAll, wakeAll)
				if lctx.Err() != nil {
					return
				}
				w.log().Warn("fill: listening for jobs failed; polling", slog.Any("err", err))
				select {
				case <-lctx.Done():
				case <-time.After(w.Config.PollInterval):
				}
			}
		}()
	}
	var wg sync.WaitGroup
	errs := make(chan error, w.Config.Workers)
	for range w.Config.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.loop(ctx, once, wake); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var loopErr error
	for e := range errs {
		loopErr = errors.Join(loopErr, e)
	}
	s := w.summary()
	s.RunID = run.ID
	run.Files, run.Bytes = s.Copied, s.Bytes
	run.Counts = map[string]int64{"copied": s.Copied, "server_side": s.ServerSide, "from_origin": s.FromOrigin,
		"failed": s.Failed, "lost": s.Lost}
	if err := w.DB.FinishRun(dbCtx, run, loopErr); err != nil {
		loopErr = errors.Join(loopErr, err)
	}
	return s, loopErr
}

func (w *Worker) summary() Summary {
	return Summary{Worker: w.ID, Copied: w.sum.copied.Load(), ServerSide: w.sum.serverSide.Load(),
		FromOrigin: w.sum.fromOrigin.Load(), Failed: w.sum.failed.Load(), Lost: w.sum.lost.Load(), Bytes: w.sum.bytes.Load()}
}

// loop is one goroutine: claim a job, work it, repeat; wait for a notification or the
// poll interval when none is ready. A database that does not answer is retried.
func (w *Worker) loop(ctx context.Context, once bool, wake <-chan struct{}) error {
	for ctx.Err() == nil {
		sent := time.Now() // the lease runs from the database's now, which is later
		jobs, err := w.DB.ClaimFillsIn(ctx, w.ID, 1, w.Config.Lease, w.Regions)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if once {
				return err
			}
			w.log().Error("fill: claiming jobs", slog.Any("err", err))
			jobs = nil
		}
		if len(jobs) == 0 {
			if once && err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
			case <-wake:
			case <-time.After(w.Config.PollInterval):
			}
			continue
		}
		for i := range jobs {
			if ctx.Err() != nil {
				// Claimed but not started: give it back untried.
				if err := w.DB.ReleaseFill(context.WithoutCancel(ctx), &jobs[i]); err != nil {
					w.log().Warn("fill: releasing a job", slog.String("region", jobs[i].RegionName),
						slog.String("path", jobs[i].Path), slog.Any("err", err))
				}
				continue
			}
			w.work(ctx, &jobs[i], sent)
		}
	}
	return nil
}

// errLeaseLost cancels a copy whose job another worker took over or something removed.
var errLeaseLost = errors.New("fill job lost")

// errLeaseExpired cancels a copy whose lease may have passed by the worker's own clock:
// the database did not extend it in time, so another worker may hold the job already.
var errLeaseExpired = errors.New("fill job's lease passed without an extension")

// leaseDeadline is when a lease asked for at sent, for lease, must be taken as passed by
// the worker's clock: a quarter of the lease early, against clock rates and delays.
func leaseDeadline(sent time.Time, lease time.Duration) time.Time {
	return sent.Add(lease - lease/4)
}

// work runs one job: copy, verify, record; on failure, back off or give up. claimed is
// when the claim was sent: the lease is counted from then, by the worker's clock, and the
// copy is cancelled when it passes without an extension, whether or not the database
// answers (a worker cut off from it must not go on writing into a job another holds).
func (w *Worker) work(ctx context.Context, job *model.FillJob, claimed time.Time) {
	log := w.log().With(slog.String("region", job.RegionName), slog.String("path", job.Path), slog.Int("attempt", job.Attempts))
	dbCtx := context.WithoutCancel(ctx)
	start := time.Now()
	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	extendDone := make(chan struct{})
	go func() {
		defer close(extendDone)
		lease := w.Config.Lease
		deadline := leaseDeadline(claimed, lease)
		expired := time.NewTimer(time.Until(deadline))
		defer expired.Stop()
		t := time.NewTicker(max(lease/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-expired.C:
				cancel(errLeaseExpired)
				return
			case <-t.C:
				sent := time.Now()
				// An extension that answers after the deadline is no use: give up then.
				ectx, ecancel := context.WithDeadline(jctx, deadline)
				err := w.DB.ExtendFill(ectx, job, lease)
				ecancel()
				switch {
				case err == nil:
					deadline = leaseDeadline(sent, lease)
					expired.Reset(time.Until(deadline))
				case errors.Is(err, db.ErrJobLost):
					cancel(errLeaseLost)
					return
				case !time.Now().Before(deadline):
					cancel(errLeaseExpired)
					return
				case jctx.Err() == nil:
					log.Warn("fill: extending the lease", slog.Any("err", err))
				}
			}
		}
	}()
	via, err := w.copy(jctx, job, log)
	cancel(nil)
	<-extendDone
	switch cause := context.Cause(jctx); {
	case errors.Is(cause, errLeaseLost), errors.Is(cause, errLeaseExpired):
		// Nothing recorded. The copy was cancelled (a multipart upload aborted); a single
		// request S3 had accepted may still complete, but it was conditional on the key as
		// it was before (see destCondition), so it cannot replace a newer copy.
		w.sum.lost.Add(1)
		log.Warn("fill: job lost during the copy; nothing recorded", slog.Any("why", cause), slog.Any("err", err))
		return
	}
	if err == nil {
		err = w.DB.CompleteFill(dbCtx, job, job.Size, job.SHA256)
		switch {
		case err == nil:
			w.sum.copied.Add(1)
			w.sum.bytes.Add(job.Size)
			if via == "origin" {
				w.sum.fromOrigin.Add(1)
			} else {
				w.sum.serverSide.Add(1)
			}
			w.Metrics.done(via, job.Size, time.Since(start))
			log.Info("fill: copied", slog.String("via", via), slog.Int64("bytes", job.Size), slog.Duration("took", time.Since(start)))
			return
		case errors.Is(err, db.ErrRegionChanged):
			// handled below
		case errors.Is(err, db.ErrJobLost), errors.Is(err, db.ErrCopyDeleting):
			w.sum.lost.Add(1)
			log.Warn("fill: copy made but not recorded", slog.Any("err", err))
			return
		}
	}
	if errors.Is(err, db.ErrRegionChanged) {
		// Edited since the claim: nothing recorded; the job goes back, to be claimed with
		// the region's new version (a move removed it already: the release does nothing).
		w.sum.lost.Add(1)
		log.Warn("fill: the region changed since the claim; nothing recorded, job given back", slog.Any("err", err))
		if rerr := w.DB.ReleaseFill(dbCtx, job); rerr != nil {
			log.Warn("fill: releasing a job", slog.Any("err", rerr))
		}
		return
	}
	if ctx.Err() != nil {
		// Shutdown: give the job back untried (the upload was aborted).
		if rerr := w.DB.ReleaseFill(dbCtx, job); rerr != nil {
			log.Warn("fill: releasing a job at shutdown", slog.Any("err", rerr))
		}
		return
	}
	wait, final := Backoff(w.Config.RetryBackoff, job.Attempts, w.Config.MaxAttempts)
	w.sum.failed.Add(1)
	w.Metrics.failed(final)
	log.Error("fill: copy failed", slog.Any("err", err), slog.Bool("final", final), slog.Duration("retry_in", wait))
	if ferr := w.DB.FailFill(dbCtx, job, err.Error(), wait, final); ferr != nil {
		log.Warn("fill: recording the failure", slog.Any("err", ferr))
	}
}

// regionsTTL is how long the regions and their health are reused between jobs: a burst
// of small copies must not read them for every file. A source that went down meanwhile
// fails its copy, which then comes from the origin.
const regionsTTL = time.Second

// regions returns the regions and their health, read at most every regionsTTL, and at
// once when fresh (the cached ones are older than a job's claim).
func (w *Worker) regions(ctx context.Context, fresh bool) ([]model.Region, []model.Health, error) {
	w.regionsMu.Lock()
	defer w.regionsMu.Unlock()
	if !fresh && w.regionsList != nil && time.Since(w.regionsAt) < regionsTTL {
		return w.regionsList, w.healthList, nil
	}
	regions, err := w.DB.ListRegions(ctx)
	if err != nil {
		return nil, nil, err
	}
	health, err := w.DB.RegionHealth(ctx)
	if err != nil {
		return nil, nil, err
	}
	w.regionsList, w.healthList, w.regionsAt = regions, health, time.Now()
	return regions, health, nil
}

func findRegion(regions []model.Region, id int64) *model.Region {
	for i := range regions {
		if regions[i].ID == id {
			return &regions[i]
		}
	}
	return nil
}

// store returns a region's store, opened once per region version.
func (w *Worker) store(ctx context.Context, r *model.Region) (objstore.Store, error) {
	if e, ok := w.stores.Load(r.ID); ok && e.(storeEntry).updated.Equal(r.UpdatedAt) {
		return e.(storeEntry).store, nil
	}
	open := w.OpenStore
	if open == nil {
		open = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			return objstore.Open(ctx, r, w.Config.StoreOptions)
		}
	}
	s, err := open(ctx, r)
	if err != nil {
		return nil, err
	}
	w.stores.Store(r.ID, storeEntry{updated: r.UpdatedAt, store: s})
	return s, nil
}

// copy writes the job's file into its region, verified, and its "+" twin; it returns
// how: "server-side" or "origin".
func (w *Worker) copy(ctx context.Context, job *model.FillJob, log *slog.Logger) (string, error) {
	regions, health, err := w.regions(ctx, false)
	if err != nil {
		return "", err
	}
	if r := findRegion(regions, job.RegionID); r == nil || !r.UpdatedAt.Equal(job.RegionUpdatedAt) {
		// The cache is older than the claim (or newer): the region may have moved to
		// another bucket. Write only where the claim's version of the region points.
		if regions, health, err = w.regions(ctx, true); err != nil {
			return "", err
		}
		if r := findRegion(regions, job.RegionID); r != nil && !r.UpdatedAt.Equal(job.RegionUpdatedAt) {
			return "", fmt.Errorf("region %s: %w", job.RegionName, db.ErrRegionChanged)
		}
	}
	objects, err := w.DB.ObjectsOfFile(ctx, job.FileID)
	if err != nil {
		return "", err
	}
	down := map[int64]bool{}
	for _, h := range health {
		down[h.RegionID] = h.State == model.HealthDown
	}
	held := map[int64]*model.RegionObject{}
	for i := range objects {
		held[objects[i].RegionID] = &objects[i]
	}
	var dst *model.Region
	cands := make([]Candidate, 0, len(regions))
	for i := range regions {
		r := &regions[i]
		if r.ID == job.RegionID {
			dst = r
		}
		cands = append(cands, Candidate{Region: r, Healthy: !down[r.ID], Object: held[r.ID]})
	}
	if dst == nil {
		return "", fmt.Errorf("region %d no longer exists", job.RegionID)
	}
	store, err := w.store(ctx, dst)
	if err != nil {
		return "", err
	}
	cond, err := destCondition(ctx, store, job.Path)
	if err != nil {
		return "", err
	}
	f := &model.File{ID: job.FileID, Path: job.Path, Size: job.Size, SHA256: job.SHA256, MD5: job.MD5}
	ctype, cache := model.Headers(job.Path)
	src := ChooseSource(dst, f, cands)
	via := "origin"
	copied := false
	if src.Region != nil {
		if err := w.copyServerSide(ctx, store, src.Region, f, ctype, cache, cond); err == nil {
			via, copied = "server-side", true
		} else if ctx.Err() != nil || errors.Is(err, objstore.ErrDestChanged) {
			return "", err
		} else {
			log.Warn("fill: server-side copy failed; copying from the origin", slog.String("source", src.Region.Name), slog.Any("err", err))
		}
	} else {
		log.Debug("fill: copying from the origin", slog.String("why", src.Why))
	}
	if !copied {
		if err := w.copyFromOrigin(ctx, store, f, ctype, cache, cond); err != nil {
			return "", err
		}
	}
	if err := w.writeTwin(ctx, store, job.Path, ctype, cache); err != nil {
		return "", err
	}
	return via, nil
}

// destCondition looks at the job's key before anything is written and returns the
// condition every write of the copy carries: the key still of the ETag seen, or still
// absent. A worker whose write lands late (its lease passed, another worker copied and
// recorded a newer version meanwhile) is then refused by S3 instead of replacing that
// copy. Residual window: a single CopyObject on a service that ignores the destination's
// conditions there (versitygw 1.8; AWS checks them) and that S3 had already accepted
// completes even though the worker cancelled it.
func destCondition(ctx context.Context, store objstore.Store, key string) (objstore.PutOptions, error) {
	info, err := store.Head(ctx, key)
	switch {
	case errors.Is(err, objstore.ErrNotExist):
		return objstore.PutOptions{IfAbsent: true}, nil
	case err != nil:
		return objstore.PutOptions{}, fmt.Errorf("destination: %w", err)
	case info.ETag == "":
		return objstore.PutOptions{}, nil // a store without ETags (files): the lease alone
	}
	return objstore.PutOptions{IfMatch: info.ETag}, nil
}

// copyServerSide copies f from src's bucket into store: Head pins the source's ETag (and
// checks its size and, when S3 keeps it, its SHA-256 against the inventory first).
func (w *Worker) copyServerSide(ctx context.Context, store objstore.Store, src *model.Region, f *model.File, ctype, cache string, cond objstore.PutOptions) error {
	cc, ok := store.(objstore.CrossCopier)
	if !ok {
		return fmt.Errorf("%s cannot copy server-side", store)
	}
	from, err := w.store(ctx, src)
	if err != nil {
		return err
	}
	if !cc.SameService(from) {
		return fmt.Errorf("%s and %s are not on the same S3 service", store, from)
	}
	info, err := from.Head(ctx, f.Path)
	if err != nil {
		return fmt.Errorf("source %s: %w", src.Name, err)
	}
	if info.Size != f.Size || (info.SHA256 != nil && !bytes.Equal(info.SHA256, f.SHA256)) {
		return fmt.Errorf("source %s: %s is not the inventory's (size %d, want %d)", src.Name, f.Path, info.Size, f.Size)
	}
	_, err = cc.CopyFrom(ctx, from, f.Path, f.Path, objstore.CopyOptions{SourceETag: info.ETag, Size: f.Size, SHA256: f.SHA256,
		MultipartThreshold: w.Config.MultipartCopyThreshold, PartSize: w.Config.CopyPartSize, ContentType: ctype, CacheControl: cache,
		DestIfMatch: cond.IfMatch, DestIfAbsent: cond.IfAbsent})
	return err
}

// copyFromOrigin reads the file from the origin once, streamed into the store with its
// inventory SHA-256, which the store checks (S3's x-amz-checksum-sha256; the file store
// hashes). Above the multipart threshold it goes in parts, each hashed on the way, and
// the upload is completed only when the whole file hashed to the inventory's.
func (w *Worker) copyFromOrigin(ctx context.Context, store objstore.Store, f *model.File, ctype, cache string, cond objstore.PutOptions) error {
	if w.OriginRoot == "" {
		return errors.New("no origin.path to copy from")
	}
	fh, err := os.Open(filepath.Join(w.OriginRoot, filepath.FromSlash(f.Path)))
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	if st.Size() != f.Size {
		return fmt.Errorf("origin %s: size %d, inventory %d: refused", f.Path, st.Size(), f.Size)
	}
	opts := objstore.PutOptions{SHA256: f.SHA256, ContentType: ctype, CacheControl: cache, IfMatch: cond.IfMatch, IfAbsent: cond.IfAbsent}
	if f.Size <= w.Config.UploadThreshold {
		if err := store.Put(ctx, f.Path, fh, f.Size, opts); err != nil {
			return fmt.Errorf("from origin: %w", err)
		}
		return nil
	}
	up, err := store.Multipart(ctx, f.Path, opts)
	if err != nil {
		return err
	}
	err = putParts(ctx, up, fh, f, w.Config.UploadPartSize)
	if err != nil {
		if aerr := up.Abort(context.WithoutCancel(ctx)); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return fmt.Errorf("from origin: %w", err)
	}
	return nil
}

func putParts(ctx context.Context, up objstore.Upload, r io.Reader, f *model.File, partSize int64) error {
	whole := sha256.New()
	buf := make([]byte, partSize)
	for n := 1; ; n++ {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			whole.Write(buf[:k])
			s := sha256.Sum256(buf[:k])
			if perr := up.PutPart(ctx, n, buf[:k], s[:]); perr != nil {
				return perr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if !bytes.Equal(whole.Sum(nil), f.SHA256) {
		return fmt.Errorf("origin %s: %w: the bytes do not hash to the inventory's SHA-256", f.Path, objstore.ErrChecksum)
	}
	return up.Complete(ctx)
}

// writeTwin copies p to its space twin within the store, as a push does, unless the twin
// key is a path of the origin (live or deleted): that key holds a real file.
func (w *Worker) writeTwin(ctx context.Context, store objstore.Store, p, ctype, cache string) error {
	twin := model.SpaceTwin(p)
	if twin == "" {
		return nil
	}
	recorded, err := w.DB.RecordedPaths(ctx, []string{twin})
	if err != nil {
		return err
	}
	if twin = model.WritableTwin(p, func(t string) bool { return recorded[t] }); twin == "" {
		return nil
	}
	if err := store.Copy(ctx, p, twin, objstore.PutOptions{ContentType: ctype, CacheControl: cache}); err != nil {
		return fmt.Errorf("twin: %w", err)
	}
	return nil
}
