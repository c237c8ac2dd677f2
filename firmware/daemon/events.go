package daemon

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/midline-rt/midline/firmware/mqtt"
)

// EventSchema names the event message (docs/contracts.md, Events).
const EventSchema = "midline.event/1"

// Event is one lifecycle event: published on MQTT `events`, kept for the status page and
// logged. It carries ids and UIDs, never a patient attribute.
type Event struct {
	Schema      string      `json:"schema"`
	MessageID   string      `json:"message_id"`
	Type        string      `json:"type"`
	Time        time.Time   `json:"time"`
	DeviceID    string      `json:"device_id"`
	JobID       string      `json:"job_id,omitempty"`
	SeriesUID   string      `json:"series_uid,omitempty"`
	Generation  int         `json:"generation,omitempty"`
	Attempt     int         `json:"attempt,omitempty"`
	Destination string      `json:"destination,omitempty"`
	OutboxJob   string      `json:"outbox_job,omitempty"` // a delivery event's outbox job: each send's events are new messages
	Alarm       string      `json:"alarm,omitempty"`      // the alarm id an alarm and its alarm_cleared share
	Detail      string      `json:"detail,omitempty"`
	Job         *JobSummary `json:"job,omitempty"`
}

// JobSummary is what a job_done event tells: model, sequence, volumes, timings.
type JobSummary struct {
	Sequence   string             `json:"sequence"`
	Model      string             `json:"model"`
	Empty      bool               `json:"empty"`
	VolumesCM3 map[string]float64 `json:"volumes_cm3,omitempty"`
	TimingsMS  map[string]float64 `json:"timings_ms,omitempty"`
	LatencyMS  float64            `json:"latency_ms"`
	Tiles      int                `json:"tiles_run"`
	Flags      []string           `json:"flags,omitempty"`
}

func jobSummary(j Job) *JobSummary {
	return &JobSummary{Sequence: j.Sequence, Model: j.Model, Empty: j.Empty, VolumesCM3: j.VolumesCM3, TimingsMS: j.Timings,
		LatencyMS: j.LatencyMS, Tiles: j.Tiles, Flags: j.Flags}
}

const keptEvents = 200

// mqttOutboxAlarm is raised while the MQTT outbox refuses messages (full: the broker has been
// away for long) and cleared by the next message it takes. The refused message is kept where
// it came from (the job, the event list) but not published.
const mqttOutboxAlarm = "mqtt-outbox"

// event records, logs and publishes an event. Its message id names what it is about (job, type,
// attempt or destination), so the same event made again after a restart has the same id.
func (d *Daemon) event(e Event) {
	e.Schema, e.Time, e.DeviceID = EventSchema, time.Now().UTC(), d.cfg.DeviceID
	parts := []string{"event", e.Type, strconv.FormatInt(e.Time.UnixNano(), 36)}
	if e.JobID != "" {
		parts = []string{"job", e.JobID, e.Type}
		if e.Attempt > 0 {
			parts = append(parts, strconv.Itoa(e.Attempt))
		}
		if e.Destination != "" {
			parts = append(parts, e.Destination)
		}
		if e.OutboxJob != "" {
			parts = append(parts, e.OutboxJob)
		}
	}
	if e.MessageID == "" { // OTA events bring their own (<device>:ota:<bundle>:<version>:<phase>)
		e.MessageID = mqtt.MessageID(d.cfg.DeviceID, parts...)
	}
	d.mu.Lock()
	d.events = append(d.events, e)
	if len(d.events) > keptEvents {
		d.events = d.events[len(d.events)-keptEvents:]
	}
	d.mu.Unlock()
	d.log.Info("daemon: event", "type", e.Type, "job", e.JobID, "destination", e.Destination, "detail", e.Detail)
	if d.mq == nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if err := d.mq.Event(b); err != nil {
		d.log.Error("daemon: event not queued for MQTT", "type", e.Type, "err", err)
		d.setAlarm(mqttOutboxAlarm, "MQTT outbox refused an event: "+err.Error())
		return
	}
	d.clearAlarm(mqttOutboxAlarm)
}

// recentEvents returns the kept events, newest first.
func (d *Daemon) recentEvents() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Event, len(d.events))
	for i, e := range d.events {
		out[len(d.events)-1-i] = e
	}
	return out
}

// commandLoop takes OTA commands from MQTT and hands them to the OTA loop (ota.go).
func (d *Daemon) commandLoop(ctx context.Context) {
	if d.mq == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-d.mq.Commands():
			d.otaCommand(c)
		}
	}
}
