package ota

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/internal/testenv"
)

// bundle copies the shipped T2 bundle into a temp folder and edits its model.json: a new
// version runs the same weights, so its self-test still passes.
func bundle(t testing.TB, version string, edit func(m map[string]any)) string {
	t.Helper()
	src := filepath.Join(testenv.Root(), "models", "dmg-t2")
	dst := filepath.Join(t.TempDir(), "dmg-t2")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "model.json" {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["version"] = version
			if edit != nil {
				edit(m)
			}
			b, _ = json.MarshalIndent(m, "", "  ")
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rig is a repository served over HTTP and one box's slots and manager.
type rig struct {
	t       testing.TB
	repo    *Repo
	rootKey string
	srv     *httptest.Server
	handler http.Handler // what the server does; tests may wrap it
	state   string
	models  string
	seed    string // the bundles the slots are seeded from: T2 and T1C (testenv.TestModels)
	mgr     *Manager
	reports []Report
	group   string
	engine  accel.Kind
	trust   []byte
	sitePub ed25519.PublicKey // ota.site_key; nil: none configured
	// requireSite is ota.require_site_approval (a downgrade needs the site's signature too).
	requireSite bool
}

func newRig(t testing.TB) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, rootKey: filepath.Join(dir, "offline"), state: filepath.Join(dir, "state"), group: "ward-a", engine: accel.CPU}
	r.models, r.seed = filepath.Join(r.state, "models"), testenv.Models(t, testenv.TestModels...)
	var err error
	if r.repo, err = Init(filepath.Join(dir, "repo"), r.rootKey, RepoOptions{}); err != nil {
		t.Fatal(err)
	}
	r.handler = http.FileServer(http.Dir(r.repo.Served()))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) { r.handler.ServeHTTP(w, q) }))
	t.Cleanup(r.srv.Close)
	r.trust, err = os.ReadFile(filepath.Join(r.repo.Served(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// firmwareVersion is the rig's firmware: a development build as make versions it, with build
// metadata, which must not keep min_firmware from being checked.
const firmwareVersion = "0.1.0-dev+g0123456789ab"

// box opens (or reopens, as after a restart) the box's slots and manager.
func (r *rig) box() {
	r.t.Helper()
	s, err := OpenSlots(r.models, os.DirFS(r.seed))
	if err != nil {
		r.t.Fatal(err)
	}
	r.mgr, _, err = NewManager(s, ManagerOptions{
		Trust: Trust{RepoURL: r.srv.URL, TrustedRoot: r.trust, MetaDir: filepath.Join(r.state, "ota", "tuf"),
			Site: "site-a", SiteKey: r.sitePub},
		StateDir: r.state, Group: r.group, Engine: accel.Options{Engine: r.engine, Threads: 1}, FirmwareVersion: firmwareVersion,
		TrialJobs: 2, TrialTime: 0, Report: func(rp Report) { r.reports = append(r.reports, rp) }, RequireSiteApproval: r.requireSite,
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) publish(dir string, groups ...string) string {
	r.t.Helper()
	name, err := r.repo.Publish(dir, groups)
	if err != nil {
		r.t.Fatal(err)
	}
	return name
}

// update runs an update up to its trial; it returns the first error.
func (r *rig) update(name string) (*Prepared, error) {
	targets, err := r.mgr.Check()
	if err != nil {
		return nil, err
	}
	p, err := r.mgr.Prepare(context.Background(), targets, name)
	if err != nil {
		return nil, err
	}
	_, err = r.mgr.Activate(p, time.Now())
	return p, err
}

// reopenAndFinishTrial reopens the box as after a restart, runs the jobs of a T2 trial in
// progress (the rig's trial_jobs, all on the trial model) and returns T2's state.
func (r *rig) reopenAndFinishTrial() *SeqState {
	r.t.Helper()
	r.box()
	st := r.mgr.Snapshot().Sequences["T2"]
	for i := 0; i < 2 && st.Trial != nil; i++ {
		r.mgr.JobResult("T2", true, time.Now())
		st = r.mgr.Snapshot().Sequences["T2"]
	}
	return st
}

// activeVersion loads the active T2 bundle as the daemon would, self-test included.
func (r *rig) activeVersion() string {
	r.t.Helper()
	b, err := accel.LoadBundle(filepath.Join(r.models, "T2", "active"))
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := b.Open(accel.Options{Threads: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	defer m.Close()
	if err := b.SelfTest(context.Background(), m); err != nil {
		r.t.Fatalf("active model fails its self-test: %v", err)
	}
	return b.Meta.Version
}

func (r *rig) lastPhase() Report {
	if len(r.reports) == 0 {
		return Report{}
	}
	return r.reports[len(r.reports)-1]
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}
