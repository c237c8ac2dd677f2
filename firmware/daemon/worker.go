package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/firmware/mqtt"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/netdicom"
	"github.com/midline-rt/midline/preproc"
)

// worker runs queued jobs one at a time: there is one accelerator.
func (d *Daemon) worker(ctx context.Context) {
	defer d.closeShadows()
	for {
		d.otaBetweenJobs(ctx) // models switch only here, while no job runs
		j, ok := d.jobs.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-d.jobs.wake:
				continue
			}
		}
		if err := d.board.Thermal().Wait(ctx); err != nil {
			return // shutting down while paused: the job stays queued
		}
		d.run(ctx, j)
		d.otaAfterJob(ctx, j.ID)
		d.shadowRun(ctx, j.ID) // after the result is queued; never sent
		if ctx.Err() != nil {
			return
		}
	}
}

// run processes one job and records its end. An interrupted run puts the job back in the
// queue: its outputs are derived from its inputs, so running it again repeats the same UIDs.
func (d *Daemon) run(ctx context.Context, j Job) {
	log := d.log.With("job", j.ID)
	j.State, j.Started, j.Attempts, j.Reason = JobRunning, time.Now(), j.Attempts+1, ""
	if err := d.jobs.put(&j); err != nil {
		log.Error("daemon: job not persisted", "err", err)
		d.setAlarm("jobs", "job queue not writable: "+err.Error())
		return
	}
	d.clearAlarm("jobs")
	d.mu.Lock()
	d.runningJob, d.runningFrom = j.ID, time.Now()
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.runningJob = ""
		d.mu.Unlock()
	}()
	d.event(Event{Type: "job_started", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation, Attempt: j.Attempts})
	state, reason := d.process(ctx, &j)
	if ctx.Err() != nil && state != JobDone {
		j.State = JobQueued
		if err := d.jobs.put(&j); err != nil {
			log.Error("daemon: interrupted job not persisted", "err", err)
		}
		log.Info("daemon: job interrupted by shutdown; queued again")
		return
	}
	j.State, j.Reason, j.Finished = state, reason, time.Now()
	d.deliverMu.Lock()
	if stored, ok := d.jobs.get(j.ID); ok {
		j.Deliveries = stored.Deliveries // the outbox may have reported on them meanwhile
	}
	err := d.jobs.put(&j)
	d.deliverMu.Unlock()
	if err != nil {
		log.Error("daemon: job not persisted", "err", err)
	}
	d.metrics.jobs.WithLabelValues(state).Inc()
	switch state {
	case JobDone:
		log.Info("daemon: job done", "sequence", j.Sequence, "latency_ms", j.LatencyMS, "empty", j.Empty)
		d.event(Event{Type: "job_done", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation, Attempt: j.Attempts,
			Detail: summary(j), Job: jobSummary(j)})
	case JobSkipped:
		log.Info("daemon: job skipped", "reason", reason)
		d.event(Event{Type: "job_skipped", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation, Attempt: j.Attempts, Detail: reason})
	default:
		log.Error("daemon: job failed", "reason", reason)
		d.event(Event{Type: "job_failed", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation, Attempt: j.Attempts, Detail: reason})
	}
}

func summary(j Job) string {
	if j.Empty {
		if preproc.HasFieldOfViewCut(j.Flags) {
			return "no lesion found, but the " + preproc.FlagFieldOfViewCutPrefix + ": the model may have missed one"
		}
		return "no lesion found"
	}
	s := ""
	for name, v := range j.VolumesCM3 {
		s += fmt.Sprintf("%s %.2f cm3; ", name, v)
	}
	return s + fmt.Sprintf("latency %.0f ms", j.LatencyMS)
}

// process decides and does the work; it returns the end state and its reason.
func (d *Daemon) process(ctx context.Context, j *Job) (string, string) {
	hdr, err := preproc.ReadHeader(j.Paths[0], preproc.Limits{})
	if err != nil {
		return JobFailed, fmt.Sprintf("unreadable instance: %v", err)
	}
	j.StudyUID = hdr.StudyInstanceUID
	cur := d.live()
	if ok, why := selected(cur.selection, d.cfg.DICOM.AETitle, studyFactsOf(hdr)); !ok {
		return JobSkipped, "out of scope: " + why
	}
	cl := cur.classify.Classify(hdr.Acquisition)
	j.Sequence, j.Flags = string(cl.Label), cl.Flags
	if cl.Unfit || cl.Label == preproc.Unknown {
		return JobSkipped, fmt.Sprintf("not contoured: %s", cl.Reason)
	}
	m, ok := d.models[string(cl.Label)]
	if !ok {
		return JobSkipped, fmt.Sprintf("no model for %s series (%s)", cl.Label, cl.Reason)
	}
	prevModel, prevBundle := j.Model, j.ResultBundle
	j.Model, j.ClinicalUse = m.Bundle.Meta.Name+" "+m.Bundle.Meta.Version, m.Bundle.Meta.ClinicalUse
	d.board.Indicate(board.LEDInferring, true)
	res, err := pipeline.Run(ctx, m, j.Paths, pipeline.Settings{DeviceID: d.cfg.DeviceID, FirmwareVersion: d.opts.Version,
		FirmwareCommit: d.opts.Commit, Classifier: cur.classify})
	d.board.Indicate(board.LEDInferring, false)
	if err != nil {
		if errors.Is(err, pipeline.ErrWrongSequence) {
			return JobSkipped, err.Error()
		}
		return JobFailed, err.Error()
	}
	j.ResultBundle, j.Flags = m.Digest, res.Classification.Flags
	dir := filepath.Join(d.cfg.StateDir, "results", j.ID)
	// The status page's preview and the contour message are the first receiving destination's
	// rendering (pipeline.MessageProfile); each destination gets its own below.
	rd, files, err := res.WriteFiles(dir, j.ID, res.MessageProfile(cur.destinations), j.Generation)
	if err != nil {
		return JobFailed, fmt.Sprintf("writing results: %v", err)
	}
	j.Preview, j.Contours, j.Empty = files.Preview, files.Contours, res.Empty()
	j.VolumesCM3 = map[string]float64{}
	for i, roi := range rd.Structure.ROIs {
		j.VolumesCM3[roi.Name] = rd.VolumesCM3[i]
	}
	j.Tiles = res.Tiles.TilesRun
	d.noteResult(j.ID, res) // for a shadow candidate's comparison (shadow.go)
	d.deliverMu.Lock()
	ds, err := res.Deliver(d.outbox, cur.destinations, filepath.Join(dir, "to"), j.Paths, j.Generation)
	if err != nil {
		d.deliverMu.Unlock()
		return JobFailed, fmt.Sprintf("queueing for the destinations: %v", err)
	}
	j.Deliveries = nil
	for _, dv := range ds {
		rec := DeliveryRecord{Destination: dv.Destination, SOPUID: dv.SOPUID, RTStruct: dv.RTStruct, Skipped: dv.Skipped}
		if dv.Job != nil {
			rec.OutboxJob, rec.State = dv.Job.ID, dv.Job.State
		}
		if dv.Skipped != "" {
			d.event(Event{Type: "destination_skipped", JobID: j.ID, SeriesUID: j.SeriesUID, Destination: dv.Destination, Detail: dv.Skipped})
		}
		j.Deliveries = append(j.Deliveries, rec)
	}
	perr := d.jobs.put(j)
	d.deliverMu.Unlock()
	if perr != nil {
		return JobFailed, fmt.Sprintf("recording the deliveries: %v", perr)
	}
	if j.Empty {
		d.event(Event{Type: "no_lesion_found", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation, Detail: j.Model})
	}
	if err := d.publishContours(*j, rd); err != nil {
		d.log.Error("daemon: contour message not queued", "job", j.ID, "err", err)
		d.setAlarm(mqttOutboxAlarm, "MQTT outbox refused a contour message: "+err.Error())
	} else if d.mq != nil {
		d.clearAlarm(mqttOutboxAlarm)
	}
	t := res.Timings
	j.Timings = map[string]float64{"load": ms(t.Load), "normalize": ms(t.Normalize), "infer": ms(t.Infer),
		"reformat": ms(t.Reformat), "post": ms(t.Post), "trace": ms(t.Trace), "write": ms(t.Write)}
	lat := time.Since(j.Received)
	j.LatencyMS = ms(lat)
	d.mu.Lock()
	d.lastLatency = lat
	d.mu.Unlock()
	d.metrics.latency.Observe(lat.Seconds())
	if j.Supersedes > 0 && prevBundle == "" {
		d.event(Event{Type: "result_superseded", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation,
			Detail: fmt.Sprintf("generation %d replaces %d (a late instance); label AI_DRAFT v%d", j.Generation, j.Supersedes, j.Generation)})
	}
	if prevBundle != "" && prevBundle != m.Digest { // a rerun with another model: new UIDs, a new message
		d.event(Event{Type: "result_superseded", JobID: j.ID, SeriesUID: j.SeriesUID, Generation: j.Generation, Attempt: j.Attempts,
			Detail: fmt.Sprintf("%s replaces the result of %s on this series (rerun); structure set name %s", j.Model, prevModel, j.Model)})
	}
	return JobDone, ""
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// publishContours queues the contour message (midline.contours/1) for MQTT.
func (d *Daemon) publishContours(j Job, rd *pipeline.Rendered) error {
	if d.mq == nil {
		return nil
	}
	msg := rd.Structure.Message(rd.VolumesCM3, rd.Review)
	msg.JobID = j.ID
	msg.MessageID = mqtt.MessageID(d.cfg.DeviceID, "job", j.ID, "contours", strconv.Itoa(j.Generation), j.ResultBundle[:12])
	b, err := msg.Marshal()
	if err != nil {
		return err
	}
	return d.mq.Contours(j.ID, b)
}

// onSent follows the DICOM outbox: the job's delivery record gets the outcome, and a
// dead-lettered send raises an event.
func (d *Daemon) onSent(oj netdicom.Job) {
	d.deliverMu.Lock()
	defer d.deliverMu.Unlock()
	j, i, ok := d.jobs.delivering(oj.ID)
	if !ok {
		return
	}
	j.Deliveries[i].State, j.Deliveries[i].LastError, j.Deliveries[i].Finished = oj.State, oj.LastError, oj.Finished
	if err := d.jobs.put(&j); err != nil {
		d.log.Error("daemon: delivery state not persisted", "job", j.ID, "err", err)
	}
	switch oj.State {
	case netdicom.JobDone:
		d.event(Event{Type: "delivered", JobID: j.ID, SeriesUID: j.SeriesUID, Destination: oj.Destination, OutboxJob: oj.ID,
			Detail: fmt.Sprintf("%d files after %d attempts", len(oj.Files), oj.Attempts)})
	case netdicom.JobDead:
		d.event(Event{Type: "destination_dead_lettered", JobID: j.ID, SeriesUID: j.SeriesUID, Destination: oj.Destination, OutboxJob: oj.ID,
			Detail: fmt.Sprintf("after %d attempts: %s", oj.Attempts, oj.LastError)})
	}
}
