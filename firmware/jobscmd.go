package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/midline-rt/midline/firmware/daemon"
	"github.com/midline-rt/midline/netdicom"
)

const jobsUsage = `usage:
  midline jobs list [--limit N]          recent jobs, newest first
  midline jobs show ID [--json]          one job
  midline jobs rerun ID                  queue a finished job again
  midline jobs resend ID --to DEST       send a job's structure set to a destination again
common flags: [--config FILE | --url URL] [--token T]`

// runJobs lets a physicist look at jobs, re-run a series or re-send a result through a running
// daemon's API, without touching its files.
func runJobs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, jobsUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, args := args[0], args[1:]
	fl := flag.NewFlagSet("jobs "+sub, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintln(stderr, jobsUsage)
		fl.PrintDefaults()
	}
	var af apiFlags
	af.register(fl)
	limit := fl.Int("limit", 20, "list: how many jobs (0: all)")
	asJSON := fl.Bool("json", false, "show: the job as the API gives it")
	to := fl.String("to", "", "resend: the destination's name (destinations[].name)")
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return 2
	}
	wantArgs := map[string]int{"list": 0, "show": 1, "rerun": 1, "resend": 1}
	n, ok := wantArgs[sub]
	if !ok {
		fmt.Fprintf(stderr, "midline jobs: unknown subcommand %q\n%s\n", sub, jobsUsage)
		return 2
	}
	if len(pos) != n || (sub == "resend" && *to == "") {
		fmt.Fprintln(stderr, jobsUsage)
		return 2
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "midline jobs: %v\n", err)
		return 1
	}
	ctx := context.Background()
	switch sub {
	case "list":
		err = jobsList(ctx, c, stdout, *limit)
	case "show":
		err = jobsShow(ctx, c, stdout, pos[0], *asJSON)
	case "rerun":
		err = jobsRerun(ctx, c, stdout, pos[0])
	case "resend":
		err = jobsResend(ctx, c, stdout, pos[0], *to)
	}
	if err != nil {
		fmt.Fprintf(stderr, "midline jobs %s: %v\n", sub, err)
		return 1
	}
	return 0
}

// parseInterspersed parses flags that may come before or after the positional arguments
// (`jobs resend ID --to DEST`), which the flag package alone stops at.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		args = fl.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func jobsList(ctx context.Context, c *apiClient, w io.Writer, limit int) error {
	var jobs []daemon.Job
	if err := c.do(ctx, http.MethodGet, "/api/jobs", &jobs); err != nil {
		return err
	}
	if limit > 0 && len(jobs) > limit {
		jobs = jobs[:limit]
	}
	return formatJobList(w, jobs)
}

// formatJobList writes one line a job: id, received, sequence, state, reason, volumes, latency.
func formatJobList(w io.Writer, jobs []daemon.Job) error {
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "no jobs yet")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tSEQUENCE\tSTATE\tREASON\tVOLUMES\tLATENCY")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, stamp(j.Received), dash(j.Sequence), j.State,
			dash(clip(j.Reason, 48)), volumes(j), latency(j.LatencyMS))
	}
	return tw.Flush()
}

func jobsShow(ctx context.Context, c *apiClient, w io.Writer, id string, asJSON bool) error {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id), &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(append(raw, '\n'))
		return err
	}
	var j daemon.Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	return formatJob(w, j)
}

// formatJob writes one job for a person: what came in, what ran, what went where.
func formatJob(w io.Writer, j daemon.Job) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "job\t%s\n", j.ID)
	fmt.Fprintf(tw, "state\t%s\n", j.State)
	if j.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", j.Reason)
	}
	gen := fmt.Sprint(j.Generation)
	if j.Supersedes > 0 {
		gen += fmt.Sprintf(" (supersedes generation %d)", j.Supersedes)
	}
	fmt.Fprintf(tw, "series\t%s, generation %s, %d instances\n", j.SeriesUID, gen, len(j.SOPInstanceUIDs))
	if j.StudyUID != "" {
		fmt.Fprintf(tw, "study\t%s\n", j.StudyUID)
	}
	fmt.Fprintf(tw, "sequence\t%s\n", dash(j.Sequence))
	fmt.Fprintf(tw, "model\t%s\n", dash(j.Model))
	fmt.Fprintf(tw, "received\t%s\n", stamp(j.Received))
	fmt.Fprintf(tw, "started\t%s\n", stamp(j.Started))
	fmt.Fprintf(tw, "finished\t%s\n", stamp(j.Finished))
	fmt.Fprintf(tw, "attempts\t%d\n", j.Attempts)
	fmt.Fprintf(tw, "latency\t%s\n", latency(j.LatencyMS))
	if len(j.Timings) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(j.Timings)) {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, j.Timings[k]))
		}
		fmt.Fprintf(tw, "timings (ms)\t%s\n", strings.Join(parts, ", "))
	}
	if j.Tiles > 0 {
		fmt.Fprintf(tw, "tiles run\t%d\n", j.Tiles)
	}
	if j.Empty {
		fmt.Fprintf(tw, "result\tno lesion found\n")
	} else {
		fmt.Fprintf(tw, "volumes\t%s\n", volumes(j))
	}
	for _, f := range j.Flags {
		fmt.Fprintf(tw, "flag\t%s\n", f)
	}
	if j.Preview != "" {
		fmt.Fprintf(tw, "preview\t/jobs/%s/preview.png\n", j.ID)
	}
	for _, d := range j.Deliveries {
		fmt.Fprintf(tw, "destination %s\t%s\n", d.Destination, deliveryLine(d))
	}
	return tw.Flush()
}

func deliveryLine(d daemon.DeliveryRecord) string {
	if d.Skipped != "" {
		return "skipped: " + d.Skipped
	}
	s := dash(d.State)
	if d.SOPUID != "" {
		s += ", structure set " + d.SOPUID
	}
	if d.OutboxJob != "" {
		s += ", outbox job " + d.OutboxJob
	}
	if d.LastError != "" {
		s += ", last error: " + d.LastError
	}
	return s
}

func jobsRerun(ctx context.Context, c *apiClient, w io.Writer, id string) error {
	var j daemon.Job
	if err := c.do(ctx, http.MethodPost, "/api/jobs/"+url.PathEscape(id)+"/rerun", &j); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "job %s queued again (attempt %d); its outputs keep their UIDs unless the model or configuration changed\n", j.ID, j.Attempts+1)
	return err
}

func jobsResend(ctx context.Context, c *apiClient, w io.Writer, id, dest string) error {
	var oj netdicom.Job
	path := "/api/jobs/" + url.PathEscape(id) + "/resend?to=" + url.QueryEscape(dest)
	if err := c.do(ctx, http.MethodPost, path, &oj); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "job %s: structure set queued for %s (outbox job %s, %d files, %s)\n", id, oj.Destination, oj.ID, len(oj.Files), oj.State)
	return err
}

// volumes lists a job's ROI volumes by ROI name.
func volumes(j daemon.Job) string {
	if j.Empty {
		return "no lesion"
	}
	if len(j.VolumesCM3) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(j.VolumesCM3)) {
		parts = append(parts, fmt.Sprintf("%s %.2f cm³", k, j.VolumesCM3[k]))
	}
	return strings.Join(parts, ", ")
}

func latency(ms float64) string {
	if ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", ms/1000)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(displayLoc).Format("2006-01-02 15:04:05")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
