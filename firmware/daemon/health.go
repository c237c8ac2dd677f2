package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/netdicom"
)

// HealthSchema names the health message.
const HealthSchema = "midline.health/1"

// Health is the periodic telemetry facilities watch (docs/contracts.md, Health).
type Health struct {
	Schema     string         `json:"schema"`
	Time       time.Time      `json:"time"`
	DeviceID   string         `json:"device_id"`
	Site       string         `json:"site"`
	UptimeS    float64        `json:"uptime_s"`
	Firmware   Firmware       `json:"firmware"`
	Models     []ModelInfo    `json:"models"`
	Engine     EngineHealth   `json:"engine"`
	Board      board.Readings `json:"board"`
	CPU        CPUHealth      `json:"cpu"`
	Memory     MemoryHealth   `json:"memory"`
	Disk       DiskHealth     `json:"disk"`
	Queue      QueueHealth    `json:"queue"`
	DICOM      DICOMHealth    `json:"dicom"`
	Jobs       map[string]int `json:"jobs"`
	LastJobMS  float64        `json:"last_latency_ms"`
	Outbox     OutboxHealth   `json:"outbox"`
	MQTT       MQTTHealth     `json:"mqtt"`
	Alarms     []string       `json:"alarms"`
	AlarmIDs   []string       `json:"alarm_ids"` // the daemon's alarms' ids, as alarm events carry them (the board's have none)
	RunningJob string         `json:"running_job,omitempty"`
}

type Firmware struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
	TFLite  string `json:"tflite"`
}

type EngineHealth struct {
	Kind  string `json:"kind"`
	State string `json:"state"` // ready, thermal-paused, busy
}

type CPUHealth struct {
	Load1  float64 `json:"load1"`
	Cores  int     `json:"cores"`
	Thread int     `json:"threads"`
}

type MemoryHealth struct {
	RSSBytes       uint64 `json:"rss_bytes"`
	PeakRSSBytes   uint64 `json:"peak_rss_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
}

type DiskHealth struct {
	StateDirFreeBytes uint64 `json:"state_dir_free_bytes"`
	LowWatermarkBytes uint64 `json:"low_watermark_bytes"`
}

type DICOMHealth struct {
	Associations int    `json:"associations"`
	Instances    uint64 `json:"instances_received"`
}

type QueueHealth struct {
	Queued  int `json:"queued"`
	Running int `json:"running"`
}

type OutboxHealth struct {
	DICOMPending int `json:"dicom_pending"`
	DICOMDead    int `json:"dicom_dead"`
	MQTTDepth    int `json:"mqtt_depth"`
}

type MQTTHealth struct {
	Enabled    bool   `json:"enabled"`
	Connected  bool   `json:"connected"`
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

// health gathers one snapshot.
func (d *Daemon) health() Health {
	h := Health{Schema: HealthSchema, Time: time.Now().UTC(), DeviceID: d.cfg.DeviceID, Site: d.cfg.Site,
		UptimeS:  time.Since(d.start).Round(time.Second).Seconds(),
		Firmware: Firmware{Version: d.opts.Version, Commit: d.opts.Commit, Go: runtime.Version(), TFLite: accel.RuntimeVersion()},
		Models:   d.modelList(), Board: d.board.Readings(), Jobs: d.jobs.counts(), Alarms: d.Alarms(), AlarmIDs: d.alarmIDs()}
	h.Engine = EngineHealth{Kind: d.cfg.Engine.Kind, State: "ready"}
	d.mu.Lock()
	h.LastJobMS = ms(d.lastLatency)
	h.RunningJob = d.runningJob
	d.mu.Unlock()
	switch {
	case !d.board.Thermal().MayRun():
		h.Engine.State = "thermal-paused"
	case h.RunningJob != "":
		h.Engine.State = "busy"
	}
	h.Queue = QueueHealth{Queued: h.Jobs[JobQueued], Running: h.Jobs[JobRunning]}
	h.DICOM = DICOMHealth{Associations: d.server.Associations(), Instances: d.instances.Load()}
	h.CPU = CPUHealth{Load1: loadAvg(), Cores: runtime.NumCPU(), Thread: d.cfg.Engine.ThreadCount()}
	h.Memory = memory()
	h.Disk = DiskHealth{StateDirFreeBytes: d.diskFree(), LowWatermarkBytes: uint64(d.cfg.DICOM.DiskLowWatermark)}
	h.Outbox.DICOMPending, h.Outbox.DICOMDead = d.dicomOutboxCounts()
	if d.mq != nil {
		st := d.mq.Stats()
		h.Outbox.MQTTDepth = st.OutboxDepth
		h.MQTT = MQTTHealth{Enabled: true, Connected: st.Connected, Reconnects: st.Reconnects, LastError: st.LastError}
	}
	if h.Alarms == nil {
		h.Alarms = []string{}
	}
	if h.AlarmIDs == nil {
		h.AlarmIDs = []string{}
	}
	return h
}

// dicomOutboxCounts counts the DICOM outbox's pending and dead-lettered sends.
func (d *Daemon) dicomOutboxCounts() (pending, dead int) {
	for _, j := range d.outbox.Jobs() {
		switch j.State {
		case netdicom.JobPending:
			pending++
		case netdicom.JobDead:
			dead++
		}
	}
	return pending, dead
}

// healthLoop publishes health every mqtt.health_interval and watches the state folder's free
// space: below the watermark the receiver already answers 0xA700; the alarm tells facilities.
func (d *Daemon) healthLoop(ctx context.Context) {
	every := d.cfg.MQTT.HealthInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(min(every, 5*time.Second))
	defer t.Stop()
	last, pruned := time.Time{}, time.Time{}
	for {
		if time.Since(pruned) >= time.Hour {
			pruned = time.Now()
			d.prune()
		}
		if wm := uint64(d.cfg.DICOM.DiskLowWatermark); wm > 0 {
			if free := d.diskFree(); free < wm {
				d.setAlarm("disk", "state folder below its free-space watermark: new instances are refused (0xA700)")
			} else {
				d.clearAlarm("disk")
			}
		}
		if d.mq != nil && time.Since(last) >= every {
			last = time.Now()
			if b, err := json.Marshal(d.health()); err == nil {
				d.mq.PublishHealth(b) // QoS 0, dropped while offline: the next one follows
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

func memory() MemoryHealth {
	var m MemoryHealth
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "VmRSS":
				m.RSSBytes = kib(v)
			case "VmHWM":
				m.PeakRSSBytes = kib(v)
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, _ := strings.Cut(sc.Text(), ":"); k == "MemAvailable" {
				m.AvailableBytes = kib(v)
			}
		}
		f.Close()
	}
	return m
}

func kib(v string) uint64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(f[0], 10, 64)
	return n * 1024
}

// statfsFree is the free space of the file system holding path.
func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// diskFree is the state folder's free space (0 when it cannot be read).
func (d *Daemon) diskFree() uint64 {
	n, _ := d.opts.DiskFree(d.cfg.StateDir)
	return n
}

// prune removes finished jobs older than retention.results with their result folders (the
// spool's own retention removes the instances). 0 keeps everything.
func (d *Daemon) prune() {
	keep := d.cfg.Retention.Results
	if keep <= 0 {
		return
	}
	n := 0
	for _, j := range d.jobs.list() {
		if j.State == JobQueued || j.State == JobRunning || j.Finished.IsZero() || time.Since(j.Finished) < keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.cfg.StateDir, "results", j.ID)); err != nil {
			d.log.Error("daemon: prune results", "job", j.ID, "err", err)
			continue
		}
		if err := d.jobs.remove(j.ID); err != nil {
			d.log.Error("daemon: prune job", "job", j.ID, "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		d.log.Info("daemon: pruned finished jobs past retention.results", "jobs", n, "retention", keep)
	}
}
