package netdicom

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/midline-rt/midline/internal/atomicfile"
	"github.com/midline-rt/midline/internal/tlsfiles"
)

// Destination is one entry of the destinations list (name, ae_title, host, port, tls, and the
// TLS files: ca, client_cert, client_key).
type Destination struct {
	Name    string
	AETitle string
	Host    string
	Port    int
	TLS     bool
	// CA is a PEM file of the CAs the peer's certificate must chain to; empty: the system's
	// roots. ClientCert and ClientKey are the certificate Midline presents, when the peer asks.
	CA, ClientCert, ClientKey string
}

func (d Destination) addr() string { return d.Host + ":" + strconv.Itoa(d.Port) }

// Job states.
const (
	JobPending = "pending"
	JobDone    = "done"
	JobDead    = "dead" // dead-lettered: no more attempts; LastError says why
)

// Job is one send of a set of files to a destination, retried as a whole.
type Job struct {
	ID          string    `json:"id"`
	Destination string    `json:"destination"`
	Files       []string  `json:"files"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	Created     time.Time `json:"created"`
	Finished    time.Time `json:"finished,omitzero"`
}

// SendFunc sends files to a destination; the default is SendFiles with ClientOptions.
type SendFunc func(ctx context.Context, d Destination, files []string) error

// OutboxOptions configure an Outbox.
type OutboxOptions struct {
	Dir          string // state_dir/outbox/dicom
	Destinations []Destination
	CallingAE    string
	MaxAttempts  int           // 0: 8
	BaseDelay    time.Duration // 0: 5 s
	MaxDelay     time.Duration // 0: 10 min
	Clock        Clock
	Jitter       func() float64 // in [0, 1); nil: math/rand
	Send         SendFunc       // nil: C-STORE with SendFiles
	NoFsync      bool
	Logger       *slog.Logger
	// Finished, when set, is called with a job once it is done or dead-lettered (after it is
	// persisted), so the daemon can raise its event. It must not block.
	Finished func(Job)
}

// Outbox is the durable queue of C-STORE jobs: each job is a JSON file written crash-safely,
// retried with capped, jittered exponential backoff, and dead-lettered with its reason after
// MaxAttempts or on a permanent refusal. It survives restarts.
type Outbox struct {
	o    OutboxOptions
	mu   sync.Mutex
	jobs map[string]*Job
	wake chan struct{}
}

// OpenOutbox loads the jobs persisted in o.Dir.
func OpenOutbox(o OutboxOptions) (*Outbox, error) {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 5 * time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 10 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Jitter == nil {
		o.Jitter = mrand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Send == nil {
		o.Send = o.sendFiles
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("netdicom: outbox: %w", err)
	}
	ob := &Outbox{o: o, jobs: map[string]*Job{}, wake: make(chan struct{}, 1)}
	if tmps, _ := filepath.Glob(filepath.Join(o.Dir, ".tmp-*")); len(tmps) > 0 {
		for _, t := range tmps {
			os.Remove(t) // a crash between create and rename
		}
	}
	paths, err := filepath.Glob(filepath.Join(o.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("netdicom: outbox: %w", err)
		}
		var j Job
		if err := json.Unmarshal(b, &j); err != nil || j.ID == "" {
			o.Logger.Warn("netdicom: outbox job unreadable, left in place", "path", p, "err", err)
			continue
		}
		ob.jobs[j.ID] = &j
	}
	return ob, nil
}

func (o OutboxOptions) sendFiles(ctx context.Context, d Destination, files []string) error {
	co := ClientOptions{CallingAE: o.CallingAE, CalledAE: d.AETitle}
	if d.TLS {
		cfg, err := tlsfiles.Client(d.Host, d.CA, d.ClientCert, d.ClientKey)
		if err != nil {
			return permanent(fmt.Errorf("netdicom: destination %s: TLS %w", d.Name, err))
		}
		co.TLS = cfg
	}
	res, err := SendFiles(ctx, d.addr(), co, files)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(r.Path), r.Err)
		}
	}
	return nil
}

// Enqueue persists a new job and wakes the sender.
func (ob *Outbox) Enqueue(dest string, files []string) (Job, error) {
	if _, ok := ob.destination(dest); !ok {
		return Job{}, fmt.Errorf("netdicom: outbox: unknown destination %q", dest)
	}
	var id [8]byte
	rand.Read(id[:])
	now := ob.o.Clock.Now()
	j := &Job{ID: hex.EncodeToString(id[:]), Destination: dest, Files: slices.Clone(files), State: JobPending, NextAttempt: now, Created: now}
	if err := ob.persist(j); err != nil {
		return Job{}, err
	}
	ob.mu.Lock()
	ob.jobs[j.ID] = j
	ob.mu.Unlock()
	select {
	case ob.wake <- struct{}{}:
	default:
	}
	return *j, nil
}

func (ob *Outbox) destination(name string) (Destination, bool) {
	for _, d := range ob.o.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

func (ob *Outbox) persist(j *Job) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(ob.o.Dir, j.ID+".json")
	if err := atomicfile.WriteWith(path, b, atomicfile.Options{Mode: 0o600, NoSync: ob.o.NoFsync}); err != nil {
		return fmt.Errorf("netdicom: write %s: %w", path, err)
	}
	return nil
}

// Jobs returns a copy of every job, oldest first.
func (ob *Outbox) Jobs() []Job {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var out []Job
	for _, j := range ob.jobs {
		out = append(out, *j)
	}
	slices.SortFunc(out, func(a, b Job) int { return a.Created.Compare(b.Created) })
	return out
}

// RunOnce attempts every job due at the clock's now, one after the other, and returns the
// earliest next attempt among pending jobs (zero when none).
func (ob *Outbox) RunOnce(ctx context.Context) time.Time {
	for _, j := range ob.Jobs() {
		if j.State != JobPending || ob.o.Clock.Now().Before(j.NextAttempt) {
			continue
		}
		ob.attempt(ctx, j)
	}
	var next time.Time
	for _, j := range ob.Jobs() {
		if j.State == JobPending && (next.IsZero() || j.NextAttempt.Before(next)) {
			next = j.NextAttempt
		}
	}
	return next
}

func (ob *Outbox) attempt(ctx context.Context, j Job) {
	log := ob.o.Logger.With("job", j.ID, "destination", j.Destination)
	d, ok := ob.destination(j.Destination)
	var err error
	if !ok {
		err = permanent(fmt.Errorf("destination %q no longer configured", j.Destination))
	} else {
		err = ob.o.Send(ctx, d, j.Files)
	}
	if ctx.Err() != nil {
		return // shutting down: the attempt does not count
	}
	now := ob.o.Clock.Now()
	j.Attempts++
	switch {
	case err == nil:
		j.State, j.Finished, j.LastError = JobDone, now, ""
		log.Info("netdicom: outbox job sent", "attempts", j.Attempts, "files", len(j.Files))
	case isPermanent(err) || j.Attempts >= ob.o.MaxAttempts:
		j.State, j.Finished, j.LastError = JobDead, now, err.Error()
		log.Error("netdicom: outbox job dead-lettered", "attempts", j.Attempts, "err", err)
	default:
		j.LastError = err.Error()
		j.NextAttempt = now.Add(ob.backoff(j.Attempts))
		log.Warn("netdicom: outbox job will be retried", "attempts", j.Attempts, "next", j.NextAttempt, "err", err)
	}
	if perr := ob.persist(&j); perr != nil {
		log.Error("netdicom: outbox persist", "err", perr)
	}
	ob.mu.Lock()
	ob.jobs[j.ID] = &j
	ob.mu.Unlock()
	if j.State != JobPending && ob.o.Finished != nil {
		ob.o.Finished(j)
	}
}

// backoff is the wait after the n-th failed attempt: BaseDelay doubling per attempt, capped at
// MaxDelay, with the upper half jittered so that boxes do not retry in step.
func (ob *Outbox) backoff(n int) time.Duration {
	d := float64(ob.o.BaseDelay) * math.Pow(2, float64(n-1))
	d = min(d, float64(ob.o.MaxDelay))
	return time.Duration(d/2 + ob.o.Jitter()*d/2)
}

// Run sends due jobs until ctx ends.
func (ob *Outbox) Run(ctx context.Context) {
	for {
		next := ob.RunOnce(ctx)
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = ob.o.Clock.After(max(next.Sub(ob.o.Clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-ob.wake:
		case <-timer:
		}
	}
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// isPermanent reports failures that a retry cannot fix: a permanent association rejection, or a
// refusal or error status other than out of resources.
func isPermanent(err error) bool {
	var pe permanentError
	var rj *RejectError
	var se *StatusError
	switch {
	case errors.As(err, &pe):
		return true
	case errors.As(err, &rj):
		return !rj.Transient()
	case errors.As(err, &se):
		return se.Status&0xFF00 != 0xA700 && se.Status != StatusProcessingFail
	case errors.Is(err, ErrNoContext):
		return true
	}
	return false
}
