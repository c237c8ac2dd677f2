package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/midline-rt/midline/internal/atomicfile"
)

// Job states. A job is queued when its series is released, running while the worker has it,
// and ends done (a result was made, delivered or not), skipped (out of scope, no model, not the
// sequence, no lesion is still done) or failed (an error; the reason says which).
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobSkipped = "skipped"
	JobFailed  = "failed"
)

// Job is one released series and what became of it (docs/contracts.md, "Jobs"). It holds no
// patient attribute: UIDs, sequence, timings, volumes, files and destinations only.
type Job struct {
	ID              string    `json:"id"`
	SeriesUID       string    `json:"series_uid"`
	StudyUID        string    `json:"study_uid,omitempty"`
	Generation      int       `json:"generation"`
	Supersedes      int       `json:"supersedes,omitempty"`
	Paths           []string  `json:"paths"`
	SOPInstanceUIDs []string  `json:"sop_instance_uids"`
	State           string    `json:"state"`
	Reason          string    `json:"reason,omitempty"`
	Flags           []string  `json:"flags,omitempty"`
	Sequence        string    `json:"sequence,omitempty"`
	Model           string    `json:"model,omitempty"`         // name and version
	ClinicalUse     bool      `json:"clinical_use,omitempty"`  // the model's; a resend to a clinical destination needs it
	Interruptions   int       `json:"interruptions,omitempty"` // times the daemon died running it (MaxInterruptions)
	ResultBundle    string    `json:"result_bundle,omitempty"` // digest of the bundle of the last result; another one supersedes it
	Received        time.Time `json:"received"`
	Started         time.Time `json:"started,omitzero"`
	Finished        time.Time `json:"finished,omitzero"`
	Attempts        int       `json:"attempts"`
	// Timings in milliseconds by phase (load, normalize, infer, reformat, post, trace, write),
	// and latency: from the series' release to the result queued for every destination.
	Timings    map[string]float64 `json:"timings_ms,omitempty"`
	LatencyMS  float64            `json:"latency_ms,omitempty"`
	Tiles      int                `json:"tiles_run,omitempty"`
	VolumesCM3 map[string]float64 `json:"volumes_cm3,omitempty"`
	Empty      bool               `json:"empty,omitempty"`
	Preview    string             `json:"preview,omitempty"`
	Contours   string             `json:"contours,omitempty"`
	Deliveries []DeliveryRecord   `json:"deliveries,omitempty"`
	Shadow     *ShadowComparison  `json:"shadow,omitempty"` // a candidate in shadow run on the same series (OTA)
	// Agreement is a comparison with a reference contour (a phantom's ground truth, a
	// physicist's approved contour) reported by a QA tool through the API; the box has no
	// reference of its own.
	Agreement *Agreement `json:"agreement,omitempty"`
}

// DeliveryRecord is one destination's part of a job.
type DeliveryRecord struct {
	Destination string    `json:"destination"`
	OutboxJob   string    `json:"outbox_job,omitempty"`
	SOPUID      string    `json:"sop_instance_uid,omitempty"`
	RTStruct    string    `json:"rtstruct,omitempty"`
	Skipped     string    `json:"skipped,omitempty"`
	State       string    `json:"state,omitempty"` // the outbox's: pending, done, dead
	LastError   string    `json:"last_error,omitempty"`
	Finished    time.Time `json:"finished,omitzero"` // when the outbox finished with it
}

// JobID is the id of a series' generation: the same release always maps to the same job, so a
// release delivered again after a restart finds its job instead of making a second one.
func JobID(seriesUID string, generation int) string {
	h := sha256.Sum256([]byte(seriesUID + "/" + strconv.Itoa(generation)))
	return "j" + hex.EncodeToString(h[:6])
}

// jobStore keeps jobs as JSON files in state_dir/jobs, each written crash-safely.
type jobStore struct {
	dir  string
	mu   sync.Mutex
	jobs map[string]*Job
	wake chan struct{}
}

func openJobStore(dir string) (*jobStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	s := &jobStore{dir: dir, jobs: map[string]*Job{}, wake: make(chan struct{}, 1)}
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var j Job
		if err := json.Unmarshal(b, &j); err != nil || j.ID == "" {
			// A file the rename never produced half-written; keep it for a person to read.
			os.Rename(p, p+".bad")
			continue
		}
		if j.State == JobRunning { // the daemon died with it: a crash, kill, power cut or watchdog
			j.Interruptions++
			j.State = JobQueued // run it again (its outputs have the same UIDs)
			if j.Interruptions >= MaxInterruptions {
				j.State, j.Finished = JobFailed, time.Now()
				j.Reason = fmt.Sprintf("the daemon stopped %d times while running this job (a crash or hang on this series?); not run again by itself: jobs rerun tries once more", j.Interruptions)
			}
			if err := s.write(&j); err != nil {
				return nil, err
			}
		}
		s.jobs[j.ID] = &j
	}
	return s, nil
}

// MaxInterruptions is how many times the daemon may die while running one job before the job
// fails instead of being run again, so that a series that crashes or hangs the pipeline
// cannot keep the box in a restart loop.
const MaxInterruptions = 3

// put persists j and keeps it.
func (s *jobStore) put(j *Job) error {
	if err := s.write(j); err != nil {
		return err
	}
	s.mu.Lock()
	c := j.clone()
	s.jobs[j.ID] = &c
	s.mu.Unlock()
	return nil
}

// write persists j crash-safely.
func (s *jobStore) write(j *Job) error {
	b, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.dir, j.ID+".json"), b); err != nil {
		return fmt.Errorf("daemon: persist job %s: %w", j.ID, err)
	}
	return nil
}

// enqueue adds a queued job unless one with its id exists; it reports whether it added it. The
// worker is not woken: the caller signals once it has announced the job.
func (s *jobStore) enqueue(j *Job) (bool, error) {
	s.mu.Lock()
	_, exists := s.jobs[j.ID]
	s.mu.Unlock()
	if exists {
		return false, nil
	}
	j.State = JobQueued
	if err := s.put(j); err != nil {
		return false, err
	}
	return true, nil
}

func (s *jobStore) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// remove forgets a job and deletes its record.
func (s *jobStore) remove(id string) error {
	s.mu.Lock()
	delete(s.jobs, id)
	s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.dir, id+".json")); err != nil && !os.IsNotExist(err) {
		return err
	}
	return atomicfile.SyncDir(s.dir)
}

// get returns a copy of a job.
func (s *jobStore) get(id string) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return Job{}, false
	}
	return j.clone(), true
}

// clone copies a job deeply: callers change the copies they get (a delivery's state) while
// the API encodes others, so no slice or map may be shared with the store.
func (j *Job) clone() Job {
	c := *j
	c.Paths, c.SOPInstanceUIDs, c.Flags = slices.Clone(j.Paths), slices.Clone(j.SOPInstanceUIDs), slices.Clone(j.Flags)
	c.Deliveries = slices.Clone(j.Deliveries)
	c.Timings, c.VolumesCM3 = maps.Clone(j.Timings), maps.Clone(j.VolumesCM3)
	if j.Shadow != nil {
		s := *j.Shadow
		c.Shadow = &s
	}
	if j.Agreement != nil {
		a := *j.Agreement
		c.Agreement = &a
	}
	return c
}

// Agreement is a job's result compared with a reference contour.
type Agreement struct {
	Reference string    `json:"reference"` // what the reference is, e.g. "phantom seed 4 GTV"
	Dice      float64   `json:"dice"`
	At        time.Time `json:"at"`
}

// delivering finds the job holding the delivery that DICOM outbox job id sends: a copy of it and
// the delivery's index. It copies only the job it returns.
func (s *jobStore) delivering(outboxJob string) (Job, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		for i, dv := range j.Deliveries {
			if dv.OutboxJob == outboxJob {
				return j.clone(), i, true
			}
		}
	}
	return Job{}, 0, false
}

// list returns copies of every job, newest release first.
func (s *jobStore) list() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		out = append(out, j.clone())
	}
	slices.SortFunc(out, func(a, b Job) int {
		if c := b.Received.Compare(a.Received); c != 0 {
			return c
		}
		return cmpString(a.ID, b.ID)
	})
	return out
}

// next returns the oldest queued job.
func (s *jobStore) next() (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Job
	for _, j := range s.jobs {
		if j.State == JobQueued && (best == nil || j.Received.Before(best.Received) || j.Received.Equal(best.Received) && j.ID < best.ID) {
			best = j
		}
	}
	if best == nil {
		return Job{}, false
	}
	return *best, true
}

// counts returns the number of jobs in each state.
func (s *jobStore) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{}
	for _, j := range s.jobs {
		c[j.State]++
	}
	return c
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
