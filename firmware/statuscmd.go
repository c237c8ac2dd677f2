package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/daemon"
)

// defaultConfig is where the installed daemon's configuration lives (scripts/install.sh).
const defaultConfig = "/etc/midline/midline.yaml"

// maxAPIResponse bounds what the CLI reads from the daemon's API.
const maxAPIResponse = 16 << 20

// displayLoc is the time zone the CLI prints times in (tests pin it).
var displayLoc = time.Local

// apiFlags are the flags every command that talks to a running daemon takes.
type apiFlags struct {
	config, url, token string
	timeout            time.Duration
}

func (f *apiFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&f.config, "config", "", "the daemon's configuration file: URL from http.listen, token from http.token (default "+defaultConfig+")")
	fl.StringVar(&f.url, "url", "", "the daemon's status page URL, e.g. http://127.0.0.1:8080 (instead of --config)")
	fl.StringVar(&f.token, "token", "", "bearer token (default: http.token from --config, else $MIDLINE_TOKEN)")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the daemon")
}

// apiClient talks to a running daemon's JSON API.
type apiClient struct {
	base, token string
	http        *http.Client
}

// client resolves the daemon's URL and token: --url or else the configuration's http.listen;
// --token, else the configuration's http.token, else $MIDLINE_TOKEN.
func (f *apiFlags) client() (*apiClient, error) {
	c := &apiClient{base: strings.TrimRight(f.url, "/"), token: f.token, http: &http.Client{Timeout: f.timeout}}
	if c.base == "" || f.config != "" {
		path := f.config
		if path == "" {
			path = defaultConfig
		}
		cfg, err := config.Load(path)
		if err != nil {
			return nil, fmt.Errorf("%w (or give --url)", err)
		}
		if c.base == "" {
			if cfg.HTTP.Listen == "" {
				return nil, fmt.Errorf("%s: http.listen is empty: the daemon serves no API", path)
			}
			c.base = "http://" + daemon.DialAddr(cfg.HTTP.Listen)
		}
		if c.token == "" {
			c.token = cfg.HTTP.Token
		}
	}
	if c.token == "" {
		c.token = os.Getenv("MIDLINE_TOKEN")
	}
	if !strings.HasPrefix(c.base, "http://") && !strings.HasPrefix(c.base, "https://") {
		return nil, fmt.Errorf("--url %q: want http://HOST:PORT", f.url)
	}
	return c, nil
}

// apiError is an answer other than 200 from the daemon.
type apiError struct {
	method, url string
	status      int
	body        string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.status, http.StatusText(e.status))
	if e.body != "" {
		msg += ": " + e.body
	}
	if e.status == http.StatusUnauthorized {
		msg += " (give --token, or --config with the daemon's http.token)"
	}
	return msg
}

// do sends one request and decodes a 200 answer's JSON into out (nil: discard it).
func (c *apiClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the daemon: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read: %w", method, req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &apiError{method: method, url: req.URL.String(), status: resp.StatusCode, body: strings.TrimSpace(string(body[:min(len(body), 500)]))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: not the daemon's JSON: %w", method, req.URL, err)
	}
	return nil
}

// runStatus prints a running daemon's health: device, firmware, models, engine, board, queue,
// outboxes, MQTT and alarms. It exits 1 when the daemon cannot be reached or refuses.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("status", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var af apiFlags
	af.register(fl)
	asJSON := fl.Bool("json", false, "print /api/health as JSON")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: midline status [--config FILE | --url URL] [--token T] [--json]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 {
		fl.Usage()
		return 2
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "midline status: %v\n", err)
		return 1
	}
	var raw json.RawMessage
	if err := c.do(context.Background(), http.MethodGet, "/api/health", &raw); err != nil {
		fmt.Fprintf(stderr, "midline status: %v\n", err)
		return 1
	}
	if *asJSON {
		stdout.Write(append(raw, '\n'))
		return 0
	}
	var h daemon.Health
	if err := json.Unmarshal(raw, &h); err != nil || h.Schema != daemon.HealthSchema {
		fmt.Fprintf(stderr, "midline status: %s/api/health is not %s (%v)\n", c.base, daemon.HealthSchema, err)
		return 1
	}
	if err := formatHealth(stdout, h); err != nil {
		fmt.Fprintf(stderr, "midline status: %v\n", err)
		return 1
	}
	return 0
}

// formatHealth writes the readable summary `midline status` prints.
func formatHealth(w io.Writer, h daemon.Health) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "device\t%s (site %s)\n", h.DeviceID, h.Site)
	fmt.Fprintf(tw, "firmware\t%s (commit %s), %s, TFLite %s\n", h.Firmware.Version, short(h.Firmware.Commit), h.Firmware.Go, h.Firmware.TFLite)
	fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(h.UptimeS) * time.Second).String())
	engine := h.Engine.Kind + ": " + h.Engine.State
	if h.RunningJob != "" {
		engine += " (job " + h.RunningJob + ")"
	}
	fmt.Fprintf(tw, "engine\t%s\n", engine)
	if len(h.Models) == 0 {
		fmt.Fprintf(tw, "models\tnone loaded\n")
	}
	for i, m := range h.Models {
		title := ""
		if i == 0 {
			title = "models"
		}
		use := ""
		if !m.ClinicalUse {
			use = ", NOT FOR CLINICAL USE"
		}
		fmt.Fprintf(tw, "%s\t%-5s %s %s (%s, sha256 %s, %s%s)\n", title, m.Sequence, m.Name, m.Version, m.Engine, short(m.SHA256), m.Slot, use)
	}
	fmt.Fprintf(tw, "board\t%s\n", boardLine(h.Board))
	fmt.Fprintf(tw, "queue\t%d queued, %d running; jobs %s; last latency %.0f ms\n", h.Queue.Queued, h.Queue.Running, jobCounts(h.Jobs), h.LastJobMS)
	fmt.Fprintf(tw, "outboxes\tDICOM %d pending, %d dead-lettered; MQTT %d waiting\n", h.Outbox.DICOMPending, h.Outbox.DICOMDead, h.Outbox.MQTTDepth)
	fmt.Fprintf(tw, "mqtt\t%s\n", mqttLine(h.MQTT))
	wm := "no watermark"
	if h.Disk.LowWatermarkBytes > 0 {
		wm = "new instances refused below " + mb(h.Disk.LowWatermarkBytes)
	}
	fmt.Fprintf(tw, "disk\tstate folder %s free (%s)\n", mb(h.Disk.StateDirFreeBytes), wm)
	fmt.Fprintf(tw, "memory\t%s resident (peak %s), %s available; load %.2f on %d cores\n",
		mb(h.Memory.RSSBytes), mb(h.Memory.PeakRSSBytes), mb(h.Memory.AvailableBytes), h.CPU.Load1, h.CPU.Cores)
	if len(h.Alarms) == 0 {
		fmt.Fprintf(tw, "alarms\tnone\n")
	}
	for i, a := range h.Alarms {
		title := ""
		if i == 0 {
			title = fmt.Sprintf("alarms (%d)", len(h.Alarms))
		}
		fmt.Fprintf(tw, "%s\t%s\n", title, a)
	}
	return tw.Flush()
}

func boardLine(r board.Readings) string {
	parts := []string{r.Profile}
	for _, t := range r.Temperatures {
		if t.OK {
			parts = append(parts, fmt.Sprintf("%s %.1f °C", t.Name, t.Celsius))
		} else {
			parts = append(parts, fmt.Sprintf("%s unreadable (%s)", t.Name, t.Error))
		}
	}
	switch f := r.Fan; {
	case f == nil:
		parts = append(parts, "no fan")
	case f.Error != "":
		parts = append(parts, "fan: "+f.Error)
	case f.RPM != nil:
		parts = append(parts, fmt.Sprintf("fan %.0f %% (%d rpm)", f.DutyPct, *f.RPM))
	default:
		parts = append(parts, fmt.Sprintf("fan %.0f %%", f.DutyPct))
	}
	if r.LED != "" {
		parts = append(parts, "LED "+r.LED)
	}
	return strings.Join(parts, "; ")
}

func mqttLine(m daemon.MQTTHealth) string {
	switch {
	case !m.Enabled:
		return "off"
	case m.Connected:
		return fmt.Sprintf("connected, %d reconnects", m.Reconnects)
	case m.LastError != "":
		return fmt.Sprintf("DISCONNECTED (%s), %d reconnects", m.LastError, m.Reconnects)
	}
	return fmt.Sprintf("DISCONNECTED, %d reconnects", m.Reconnects)
}

// jobCounts lists the job counts by state in the order a job moves through them.
func jobCounts(c map[string]int) string {
	var parts []string
	for _, s := range []string{daemon.JobQueued, daemon.JobRunning, daemon.JobDone, daemon.JobSkipped, daemon.JobFailed} {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	if len(parts) == 0 {
		return "none yet"
	}
	return strings.Join(parts, ", ")
}

// mb writes a size for a person: MB below 10 GB, GB above.
func mb(b uint64) string {
	if b >= 10e9 {
		return fmt.Sprintf("%.1f GB", float64(b)/1e9)
	}
	return fmt.Sprintf("%.0f MB", float64(b)/1e6)
}

func short(s string) string { return s[:min(12, len(s))] }
