package daemon

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/netdicom"
)

//go:embed status.html
var statusHTML string

// The page's icon. Browsers ask for /favicon.ico whatever the page links, and a 404 there is an
// error in their console; both paths answer with the same small SVG.
//
//go:embed favicon.svg
var faviconSVG []byte

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"mb":    func(b uint64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) },
	"short": func(s string) string { return s[:min(12, len(s))] },
}).Parse(statusHTML))

// handler builds the status page, metrics, health check and the small JSON API the CLI uses.
func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.page)
	favicon := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Write(faviconSVG)
	}
	mux.HandleFunc("GET /favicon.svg", favicon)
	mux.HandleFunc("GET /favicon.ico", favicon)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.health()) })
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.recentEvents()) })
	mux.HandleFunc("GET /api/ota", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.otaView()) })
	mux.HandleFunc("GET /api/jobs", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.jobs.list()) })
	mux.HandleFunc("GET /api/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		j, ok := d.jobs.get(r.PathValue("id"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, j)
	})
	mux.HandleFunc("POST /api/jobs/{id}/rerun", func(w http.ResponseWriter, r *http.Request) {
		j, err := d.Rerun(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		writeJSON(w, j)
	})
	mux.HandleFunc("POST /api/jobs/{id}/agreement", func(w http.ResponseWriter, r *http.Request) {
		var a Agreement
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&a); err != nil {
			http.Error(w, "agreement: "+err.Error(), http.StatusBadRequest)
			return
		}
		j, err := d.RecordAgreement(r.PathValue("id"), a)
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		writeJSON(w, j)
	})
	mux.HandleFunc("POST /api/jobs/{id}/resend", func(w http.ResponseWriter, r *http.Request) {
		oj, err := d.Resend(r.PathValue("id"), r.URL.Query().Get("to"))
		if err != nil {
			http.Error(w, err.Error(), statusOf(err))
			return
		}
		writeJSON(w, oj)
	})
	mux.HandleFunc("GET /jobs/{id}/preview.png", func(w http.ResponseWriter, r *http.Request) {
		j, ok := d.jobs.get(r.PathValue("id"))
		if !ok || j.Preview == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, j.Preview)
	})
	return d.authorize(mux)
}

// authorize requires the bearer token when one is configured (and configuration requires one
// for any address that is not loopback: the previews are patient images).
func (d *Daemon) authorize(next http.Handler) http.Handler {
	token := d.cfg.HTTP.Token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'unsafe-inline'")
		if token != "" && r.URL.Path != "/healthz" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="midline"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (d *Daemon) serveHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", d.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("daemon: http.listen: %w", err)
	}
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type pageData struct {
	Health  Health
	Jobs    []Job
	Events  []Event
	Shadows []ShadowView
}

func (d *Daemon) page(w http.ResponseWriter, r *http.Request) {
	jobs := d.jobs.list()
	jobs = jobs[:min(len(jobs), 50)]
	ev := d.recentEvents()
	ev = ev[:min(len(ev), 40)]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, pageData{Health: d.health(), Jobs: jobs, Events: ev, Shadows: d.shadowViews()}); err != nil {
		d.log.Error("daemon: status page", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

var (
	errNotFound   = errors.New("no such job")
	errConflict   = errors.New("conflict")
	errBadRequest = errors.New("bad request")
)

func statusOf(err error) int {
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, errConflict):
		return http.StatusConflict
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Rerun queues a finished job again (a physicist re-running a series). Its outputs repeat the
// same UIDs unless the model or configuration changed.
func (d *Daemon) Rerun(id string) (Job, error) {
	j, ok := d.jobs.get(id)
	if !ok {
		return Job{}, fmt.Errorf("%w: %s", errNotFound, id)
	}
	if j.State == JobQueued || j.State == JobRunning {
		return j, fmt.Errorf("%w: job %s is %s", errConflict, id, j.State)
	}
	for _, p := range j.Paths {
		if _, err := os.Stat(p); err != nil {
			return j, fmt.Errorf("%w: the series' instances are gone from the spool (retention): %v", errConflict, err)
		}
	}
	j.State, j.Reason = JobQueued, ""
	if err := d.jobs.put(&j); err != nil {
		return j, err
	}
	d.jobs.signal()
	d.event(Event{Type: "job_rerun", JobID: j.ID, SeriesUID: j.SeriesUID, Attempt: j.Attempts + 1})
	return j, nil
}

// RecordAgreement keeps a QA tool's comparison of a job's result with a reference contour, for
// the status page ("Dice where ground truth exists").
func (d *Daemon) RecordAgreement(id string, a Agreement) (Job, error) {
	if !(a.Dice >= 0 && a.Dice <= 1) || a.Reference == "" || len(a.Reference) > 200 {
		return Job{}, fmt.Errorf("%w: an agreement needs a reference (at most 200 characters) and a Dice in [0, 1]", errBadRequest)
	}
	d.deliverMu.Lock()
	defer d.deliverMu.Unlock()
	j, ok := d.jobs.get(id)
	if !ok {
		return Job{}, fmt.Errorf("%w: %s", errNotFound, id)
	}
	if j.State != JobDone {
		return j, fmt.Errorf("%w: job %s is %s", errConflict, id, j.State)
	}
	a.At = time.Now().UTC()
	j.Agreement = &a
	return j, d.jobs.put(&j)
}

// Resend queues a job's structure set for a destination again (the same file, the same UID).
func (d *Daemon) Resend(id, dest string) (netdicom.Job, error) {
	d.deliverMu.Lock()
	defer d.deliverMu.Unlock()
	j, ok := d.jobs.get(id)
	if !ok {
		return netdicom.Job{}, fmt.Errorf("%w: %s", errNotFound, id)
	}
	i := slices.IndexFunc(j.Deliveries, func(dv DeliveryRecord) bool { return dv.Destination == dest })
	if i < 0 || j.Deliveries[i].RTStruct == "" {
		return netdicom.Job{}, fmt.Errorf("%w: job %s has no structure set for %q (rerun it after changing the destinations)", errConflict, id, dest)
	}
	files := []string{j.Deliveries[i].RTStruct}
	for _, cd := range d.live().destinations {
		if cd.Name != dest {
			continue
		}
		if cd.Clinical && !j.ClinicalUse { // the destination may have become clinical since (SIGHUP)
			return netdicom.Job{}, fmt.Errorf("%w: %w", errConflict, pipeline.NotClinical(j.Model))
		}
		if cd.ForwardImages {
			files = append(slices.Clone(j.Paths), files...)
		}
	}
	oj, err := d.outbox.Enqueue(dest, files)
	if err != nil {
		return oj, err
	}
	j.Deliveries[i].OutboxJob, j.Deliveries[i].State, j.Deliveries[i].LastError = oj.ID, oj.State, ""
	if err := d.jobs.put(&j); err != nil {
		return oj, err
	}
	d.event(Event{Type: "resend_queued", JobID: j.ID, SeriesUID: j.SeriesUID, Destination: dest, OutboxJob: oj.ID})
	return oj, nil
}
