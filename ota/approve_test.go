package ota

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// siteKey makes a site key pair and returns the private key's path; the rig's box trusts the
// public one when trust is set.
func (r *rig) siteKey(trust bool) string {
	r.t.Helper()
	priv, pub, err := GenerateSiteKey(filepath.Join(r.t.TempDir(), "site"))
	if err != nil {
		r.t.Fatal(err)
	}
	if trust {
		if r.sitePub, err = ReadSitePublicKey(pub); err != nil {
			r.t.Fatal(err)
		}
	}
	return priv
}

func (r *rig) approval(name string) error {
	r.t.Helper()
	targets, err := r.mgr.Check()
	if err != nil {
		r.t.Fatal(err)
	}
	return targets[name].Approval
}

// TestSiteApproval: a target counts as approved only when the site key the box was installed
// with signed an approval of exactly its bytes, delegated from the vendor's targets.
func TestSiteApproval(t *testing.T) {
	r := newRig(t)
	site := r.siteKey(true)
	other := r.siteKey(false) // e.g. a vendor's own key posing as the site's
	r.box()
	name := r.publish(bundle(t, "1.1.0", nil))
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("before any approval: %v", err)
	}
	if err := r.repo.Approve(other, "site-a", name); err != nil {
		t.Fatal(err)
	}
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), "ota.site_key") {
		t.Fatalf("approved with a key that is not the site's: %v", err)
	}
	if err := r.repo.Approve(site, "site-b", name); err != nil {
		t.Fatal(err)
	}
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("another site's approval counts here: %v", err)
	}
	if err := r.repo.Approve(site, "site-a", name); err != nil {
		t.Fatal(err)
	}
	if err := r.approval(name); err != nil {
		t.Fatalf("approved by the site key: %v", err)
	}
	// The vendor re-publishes other bytes under the approved name: the approval does not carry over.
	r.publish(bundle(t, "1.1.0", func(m map[string]any) { m["threshold"] = 0.6 }))
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), "other bytes") {
		t.Fatalf("approval of other bytes: %v", err)
	}
	// A box without ota.site_key approves nothing.
	r.sitePub = nil
	r.box()
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("no site key: %v", err)
	}
}

// TestShadowUntilApproved: a verified bundle waits in the inactive slot as a shadow (the
// running model untouched, across a restart) until the site approves its bytes; then it goes
// on trial.
func TestShadowUntilApproved(t *testing.T) {
	r := newRig(t)
	site := r.siteKey(true)
	r.box()
	name := r.publish(bundle(t, "1.1.0", nil))
	targets, err := r.mgr.Check()
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.mgr.Prepare(context.Background(), targets, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.mgr.BeginShadow(p, targets[name].Approval); err != nil {
		t.Fatal(err)
	}
	if r.lastPhase().Phase != PhaseShadow || r.activeVersion() != shippedT2 {
		t.Fatalf("after shadow: %+v, running %s", r.lastPhase(), r.activeVersion())
	}
	r.box() // a restart keeps the shadow and the committed model
	st := r.mgr.Snapshot().Sequences["T2"]
	if st.Shadow == nil || st.Shadow.Version != "1.1.0" || st.Trial != nil || r.activeVersion() != shippedT2 {
		t.Fatalf("after restart: %+v", st)
	}
	if got := r.mgr.Approved(targets); len(got) != 0 {
		t.Fatalf("approved without approval: %+v", got)
	}
	if err := r.repo.Approve(site, "site-a", name); err != nil {
		t.Fatal(err)
	}
	if targets, err = r.mgr.Check(); err != nil {
		t.Fatal(err)
	}
	got := r.mgr.Approved(targets)
	if len(got) != 1 || got[0].Version != "1.1.0" {
		t.Fatalf("approved shadows %+v", got)
	}
	if _, err := r.mgr.Activate(got[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	st = r.mgr.Snapshot().Sequences["T2"]
	if st.Shadow != nil || st.Trial == nil || r.activeVersion() != "1.1.0" {
		t.Fatalf("after approval: %+v", st)
	}
}
