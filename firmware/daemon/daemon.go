// Package daemon is `midline serve`: it wires the DICOM receiver, the job queue, the pipeline
// (preproc, accel, contour), the DICOM and MQTT outboxes, the board and the status page into one
// process that runs unattended.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/mqtt"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/netdicom"
	"github.com/midline-rt/midline/ota"
	"github.com/midline-rt/midline/preproc"
)

// Options are what the daemon needs beyond its configuration.
type Options struct {
	Version, Commit string
	Logger          *slog.Logger
	// ShutdownGrace bounds how long SIGTERM waits for the outboxes to drain (0: 10 s).
	ShutdownGrace time.Duration
	// Board overrides board options (tests: a fake clock, a scripted sim).
	Board board.Options
	// Test seams: the free space of the state folder's file system, and the DICOM outbox's
	// retry schedule (netdicom's defaults when zero).
	DiskFree       func(path string) (uint64, error)
	SendAttempts   int
	SendDelay      time.Duration
	MQTTMaxBackoff time.Duration
	// OTACheckInterval replaces ota.check_interval (whose floor is 1m) for tests; Clock is the
	// wall clock ota.window is read with (time.Now when nil).
	OTACheckInterval time.Duration
	Clock            func() time.Time
	// StuckAfter is how long one job may run before the daemon stops petting the watchdog
	// (0: StuckJobAfter).
	StuckAfter time.Duration
}

// StuckJobAfter is how long one job may run before the daemon counts its worker stuck: far
// beyond the worst case measured (a 512x512x176 sagittal series, minutes on two CPU threads).
const StuckJobAfter = 30 * time.Minute

// Daemon is one running appliance.
type Daemon struct {
	cfg   config.Config
	opts  Options
	log   *slog.Logger
	start time.Time

	jobs     *jobStore
	server   *netdicom.Server
	outbox   *netdicom.Outbox
	mqOutbox *mqtt.Outbox
	mq       *mqtt.Client // nil when MQTT is off
	board    *board.Board
	models   map[string]*pipeline.Model // by sequence (T2, FLAIR, T1C)
	modelsMu sync.RWMutex               // the worker swaps models (OTA); others read under it
	ota      *otaRuntime
	metrics  *metrics

	// deliverMu orders the worker's recording of a job's deliveries against the outbox's
	// reports of them (onSent), which may come first.
	deliverMu sync.Mutex

	instances atomic.Uint64 // acknowledged since start

	mu          sync.Mutex
	cur         live    // what SIGHUP may change
	events      []Event // the most recent, newest last, for the status page
	lastLatency time.Duration
	alarms      map[string]string // id -> text
	runningJob  string
	runningFrom time.Time // when runningJob started
}

// New opens everything the daemon owns: state folders, models (self-tested), outboxes, board.
// Nothing listens yet.
func New(ctx context.Context, cfg config.Config, o Options) (*Daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.DiskFree == nil {
		o.DiskFree = statfsFree
	}
	if err := checkWatchdogOwner(cfg.Board.Watchdog, os.Getenv); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, opts: o, log: o.Logger, start: time.Now(), alarms: map[string]string{}}
	var err error
	if err = os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("daemon: state_dir: %w", err)
	}
	if d.jobs, err = openJobStore(filepath.Join(cfg.StateDir, "jobs")); err != nil {
		return nil, fmt.Errorf("daemon: jobs: %w", err)
	}
	cl, err := preproc.NewClassifier(cfg.Classification)
	if err != nil {
		return nil, err
	}
	d.cur = live{selection: cfg.Selection, classify: cl, destinations: cfg.Destinations}
	// MQTT first: opening the slots and models can roll a trial back (a crash loop, a model
	// that does not load), and those events must reach the durable outbox.
	if cfg.MQTT.Enabled() {
		d.mqOutbox, err = mqtt.OpenOutbox(mqtt.OutboxOptions{Dir: filepath.Join(cfg.StateDir, "outbox", "mqtt"),
			MaxMessages: cfg.MQTT.OutboxMaxMessages, MaxBytes: int64(cfg.MQTT.OutboxMaxBytes), Logger: d.log})
		if err != nil {
			return nil, err
		}
		d.mq, err = mqtt.New(mqtt.Options{Broker: cfg.MQTT.Broker, DeviceID: cfg.DeviceID, Site: cfg.Site, Group: cfg.Group,
			TopicPrefix: cfg.MQTT.TopicPrefix, CA: cfg.MQTT.CA, ClientCert: cfg.MQTT.ClientCert, ClientKey: cfg.MQTT.ClientKey,
			Outbox: d.mqOutbox, Logger: d.log, MaxBackoff: o.MQTTMaxBackoff})
		if err != nil {
			return nil, err
		}
	}
	if err := d.openSlots(); err != nil {
		return nil, err
	}
	if err := d.openModels(ctx); err != nil {
		return nil, err
	}
	d.metrics = newMetrics(d)
	d.outbox, err = netdicom.OpenOutbox(netdicom.OutboxOptions{
		Dir: filepath.Join(cfg.StateDir, "outbox", "dicom"), Destinations: pipeline.OutboxDestinations(cfg.Destinations),
		CallingAE: cfg.DICOM.AETitle, Logger: d.log, Finished: d.onSent,
		MaxAttempts: o.SendAttempts, BaseDelay: o.SendDelay, MaxDelay: 4 * o.SendDelay,
	})
	if err != nil {
		return nil, err
	}
	bo := o.Board
	bo.Logger = d.log
	bo.Healthy = d.healthy
	bo.OnThermal = func(st board.ThermalState) {
		kind := "thermal_resumed"
		if !st.AcceleratorMayRun {
			kind = "thermal_paused"
		}
		d.event(Event{Type: kind, Detail: st.Reason})
	}
	if d.board, err = board.New(ctx, cfg.Board, bo); err != nil {
		return nil, err
	}
	d.server, err = netdicom.NewServer(netdicom.Options{
		AETitle: cfg.DICOM.AETitle, Listen: cfg.DICOM.Listen, TLS: dicomTLS(cfg.DICOM.TLS), AllowedCallers: callers(cfg.DICOM.AllowedCallers),
		MaxAssociations: cfg.DICOM.MaxAssociations, MaxPDU: cfg.DICOM.MaxPDU, SeriesTimeout: cfg.DICOM.SeriesTimeout,
		DiskLowWatermark: uint64(cfg.DICOM.DiskLowWatermark), StateDir: cfg.StateDir, Retention: cfg.Retention.Spool,
		Logger: d.log, OnSeries: d.onSeries, OnInstance: d.onInstance, DiskFree: o.DiskFree,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func dicomTLS(t config.DICOMTLS) *netdicom.TLSOptions {
	if !t.Enabled() {
		return nil
	}
	return &netdicom.TLSOptions{Listen: t.Listen, Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA}
}

func callers(cs []config.Caller) []netdicom.Caller {
	var out []netdicom.Caller
	for _, c := range cs {
		out = append(out, netdicom.Caller{AETitle: c.AETitle, CIDR: c.CIDR})
	}
	return out
}

// openModels loads every bundle in models.dir, one per sequence, each self-tested on the
// configured engine. A bundle that fails is reported and left out: the others still run.
func (d *Daemon) openModels(ctx context.Context) error {
	dir := d.cfg.Models.Dir
	bundles, err := d.bundleDirs() // the slots' active bundles, or models.dir's folders
	if err != nil {
		return err
	}
	d.models = map[string]*pipeline.Model{}
	for _, e := range bundles {
		m, err := d.openModel(ctx, e.dir)
		if err != nil { // a trial that fails at start rolls back; the committed model loads instead
			if alt, ok := d.otaLoadFailed(e.name, err); ok {
				m, err = d.openModel(ctx, alt)
			}
		}
		if err != nil {
			d.log.Error("daemon: model not loaded", "bundle", e.name, "err", err)
			d.setAlarm("model:"+e.name, fmt.Sprintf("model %s not loaded: %v", e.name, err))
			continue
		}
		seq := m.Bundle.Meta.Sequence
		if old, dup := d.models[seq]; dup {
			m.Close()
			return fmt.Errorf("daemon: two bundles for %s: %s and %s", seq, old.Bundle.Dir, e.name)
		}
		d.models[seq] = m
		d.log.Info("daemon: model ready", "sequence", seq, "model", m.Bundle.Meta.Name, "version", m.Bundle.Meta.Version,
			"engine", m.Engine, "sha256", m.Digest[:12])
	}
	if len(d.models) == 0 {
		return fmt.Errorf("daemon: no usable model bundle in %s", dir)
	}
	return nil
}

// openModel opens and self-tests a bundle, refusing one that needs a newer firmware than this
// (model.json's runtime.min_firmware; a bundle seeded or left in a slot, not only one arriving
// over the air).
func (d *Daemon) openModel(ctx context.Context, dir string) (*pipeline.Model, error) {
	m, err := pipeline.OpenModel(ctx, dir, d.engineOptions())
	if err != nil {
		return nil, err
	}
	if need := m.Bundle.Meta.Runtime.MinFirmware; !ota.FirmwareMeets(d.opts.Version, need) {
		m.Close()
		return nil, fmt.Errorf("%w: %s %s needs firmware %s, this is %s", ota.ErrFirmware, m.Bundle.Meta.Name, m.Bundle.Meta.Version, need, d.opts.Version)
	}
	return m, nil
}

// Run serves until ctx ends, then shuts down in order: stop accepting associations (the
// receiver finishes or aborts the instance in flight), stop the worker (an interrupted job goes
// back to the queue, persisted), let the outboxes drain within the grace period, say offline.
func (d *Daemon) Run(ctx context.Context) error {
	d.board.Start()
	defer d.board.Close()

	bg, stopBG := context.WithCancel(context.Background()) // outboxes and MQTT outlive ctx a little
	defer stopBG()
	var bgWG sync.WaitGroup
	bgWG.Go(func() { d.outbox.Run(bg) })
	if d.mq != nil {
		bgWG.Go(func() {
			if err := d.mq.Run(bg); err != nil {
				d.log.Error("daemon: mqtt", "err", err)
			}
		})
	}
	var wg sync.WaitGroup
	httpErr := make(chan error, 1)
	if d.cfg.HTTP.Listen != "" {
		wg.Go(func() { httpErr <- d.serveHTTP(ctx) })
	}
	wg.Go(func() { d.worker(ctx) })
	wg.Go(func() { d.healthLoop(ctx) })
	wg.Go(func() { d.commandLoop(ctx) })
	wg.Go(func() { d.otaLoop(ctx) })
	wg.Go(func() { d.notifySystemd(ctx) }) // READY=1, WATCHDOG=1 while healthy, STOPPING=1
	d.event(Event{Type: "started", Detail: fmt.Sprintf("firmware %s, %d models", d.opts.Version, len(d.models))})
	d.log.Info("daemon: serving", "dicom", d.cfg.DICOM.Listen, "ae_title", d.cfg.DICOM.AETitle, "http", d.cfg.HTTP.Listen,
		"mqtt", d.cfg.MQTT.Broker, "state_dir", d.cfg.StateDir)
	err := d.server.ListenAndServe(ctx)
	wg.Wait()
	select {
	case herr := <-httpErr:
		if err == nil && herr != nil {
			err = herr
		}
	default:
	}
	d.event(Event{Type: "stopping"})
	d.drain()
	stopBG()
	bgWG.Wait()
	for _, m := range d.models {
		m.Close()
	}
	d.log.Info("daemon: stopped")
	return err
}

// drain waits, up to the grace period, for queued DICOM sends and MQTT messages to go out.
func (d *Daemon) drain() {
	deadline := time.Now().Add(d.opts.ShutdownGrace)
	for time.Now().Before(deadline) {
		pending := 0
		for _, j := range d.outbox.Jobs() {
			if j.State == netdicom.JobPending && !j.NextAttempt.After(time.Now()) {
				pending++
			}
		}
		if d.mqOutbox != nil && d.mq.Stats().Connected {
			n, _ := d.mqOutbox.Len()
			pending += n
		}
		if pending == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.log.Warn("daemon: shutdown grace over; the outboxes keep the rest for the next start")
}

// onSeries takes the receiver's events: a released series becomes a durable job before the
// spool's processed mark is written, so a crash between the two only repeats the release.
func (d *Daemon) onSeries(ev netdicom.SeriesEvent) {
	d.board.Indicate(board.LEDReceiving, false)
	switch ev.Kind {
	case netdicom.SeriesReady:
		j := &Job{ID: JobID(ev.SeriesUID, ev.Generation), SeriesUID: ev.SeriesUID, Generation: ev.Generation,
			Supersedes: ev.Supersedes, Paths: ev.Paths, SOPInstanceUIDs: ev.SOPInstanceUIDs, Received: time.Now()}
		added, err := d.jobs.enqueue(j)
		if err != nil {
			d.log.Error("daemon: job not queued; the series will be released again after a restart", "series", ev.SeriesUID, "err", err)
			d.setAlarm("jobs", "job queue not writable: "+err.Error())
			return
		}
		if err := d.server.MarkProcessed(ev); err != nil {
			d.log.Error("daemon: processed mark", "job", j.ID, "err", err)
		}
		if added {
			d.event(Event{Type: "series_received", JobID: j.ID, SeriesUID: ev.SeriesUID, Generation: ev.Generation,
				Detail: fmt.Sprintf("%d instances (%s)", len(ev.Paths), ev.Reason)})
			d.jobs.signal()
		}
	case netdicom.SeriesReopened:
		d.event(Event{Type: "series_reopened", SeriesUID: ev.SeriesUID, Generation: ev.Generation, Detail: ev.Reason})
	}
}

func (d *Daemon) onInstance(netdicom.Instance) {
	d.instances.Add(1)
	d.metrics.instances.Inc()
	d.board.Indicate(board.LEDReceiving, true)
}

// healthy is what the watchdog pets on: the worker is not stuck (no job has run longer than
// StuckAfter) and the job queue is writable. A box whose worker hangs is restarted by the
// watchdog; the job comes back queued, and one interrupted MaxInterruptions times fails.
func (d *Daemon) healthy() error {
	stuck := d.opts.StuckAfter
	if stuck == 0 {
		stuck = StuckJobAfter
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if msg, ok := d.alarms["jobs"]; ok {
		return errors.New(msg)
	}
	if d.runningJob != "" && time.Since(d.runningFrom) > stuck {
		return fmt.Errorf("job %s has run for %s (more than %s): the worker is stuck", d.runningJob, time.Since(d.runningFrom).Round(time.Second), stuck)
	}
	return nil
}

func (d *Daemon) setAlarm(id, text string) {
	d.mu.Lock()
	_, had := d.alarms[id]
	d.alarms[id] = text
	d.mu.Unlock()
	if !had {
		d.event(Event{Type: "alarm", Alarm: id, Detail: text})
	}
}

func (d *Daemon) clearAlarm(id string) {
	d.mu.Lock()
	_, had := d.alarms[id]
	delete(d.alarms, id)
	d.mu.Unlock()
	if had {
		d.event(Event{Type: "alarm_cleared", Alarm: id, Detail: id})
	}
}

// Alarms lists the active alarms, the board's included.
func (d *Daemon) Alarms() []string {
	d.mu.Lock()
	var out []string
	for _, a := range d.alarms {
		out = append(out, a)
	}
	d.mu.Unlock()
	out = append(out, d.board.Readings().Alarms...)
	sort.Strings(out)
	return slices.Compact(out)
}

// alarmIDs lists the ids of the daemon's active alarms, sorted.
func (d *Daemon) alarmIDs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.alarms))
}

// modelList describes the loaded models, sorted by sequence.
func (d *Daemon) modelList() []ModelInfo {
	var out []ModelInfo
	d.modelsMu.RLock()
	defer d.modelsMu.RUnlock()
	for seq, m := range d.models {
		out = append(out, ModelInfo{Sequence: seq, Name: m.Bundle.Meta.Name, Version: m.Bundle.Meta.Version,
			SHA256: m.Digest, Engine: string(m.Engine), ClinicalUse: m.Bundle.Meta.ClinicalUse, Slot: d.slotOf(seq)})
	}
	slices.SortFunc(out, func(a, b ModelInfo) int { return strings.Compare(a.Sequence, b.Sequence) })
	return out
}

// ModelInfo is a loaded model as health and the status page show it.
type ModelInfo struct {
	Sequence    string `json:"sequence"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`
	Engine      string `json:"engine"`
	ClinicalUse bool   `json:"clinical_use"`
	Slot        string `json:"slot"`
}
