package ota

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// committedAt brings the rig's box to T2 version v committed over the air (trial_jobs jobs).
func (r *rig) committedAt(v string) {
	r.t.Helper()
	if _, err := r.update(r.publish(bundle(r.t, v, nil))); err != nil {
		r.t.Fatal(err)
	}
	if st := r.commitTrial(); st.Committed.Version != v || st.Highest != v {
		r.t.Fatalf("not committed at %s: %+v", v, st)
	}
}

// commitTrial runs the trial's jobs; the trial must commit.
func (r *rig) commitTrial() *SeqState {
	r.t.Helper()
	for range 2 {
		r.mgr.JobResult("T2", true, time.Now())
	}
	st := r.mgr.Snapshot().Sequences["T2"]
	if st.Trial != nil {
		r.t.Fatalf("trial not committed: %+v", st)
	}
	return st
}

// TestDowngradeAuthorised: the old weights (the shipped bundle, re-published as a target) go
// back on a box that committed 2.1.0 only under a signed downgrade authorisation from 2.1.0;
// committing it lowers the highest committed version to the old one, which spends the
// authorisation, keeps no previous model to recall back to, and leaves 2.1.0 withdrawn.
func TestDowngradeAuthorised(t *testing.T) {
	r := newRig(t)
	r.box()
	r.committedAt("2.1.0")
	old := r.publish(bundle(t, shippedT2, nil))
	withdrawn, err := r.repo.AuthoriseDowngrade(old, "2.1.0")
	if err != nil || !slices.Equal(withdrawn, []string{"dmg-t2-2.1.0.tar"}) {
		t.Fatalf("authorise: %v, withdrew %v", err, withdrawn)
	}
	p, err := r.update(old)
	if err != nil {
		t.Fatal(err)
	}
	if p.DowngradeFrom != "2.1.0" || r.activeVersion() != shippedT2 {
		t.Fatalf("prepared %+v, running %s", p, r.activeVersion())
	}
	st := r.commitTrial()
	if st.Committed.Version != shippedT2 || st.Highest != shippedT2 || st.Previous != nil {
		t.Fatalf("after the downgrade's commit: %+v", st)
	}
	r.box() // the lowered highest version is durable
	if _, err := r.update(old); !strings.Contains(errString(err), "not above "+shippedT2) {
		t.Fatalf("the spent authorisation admitted %s again: %v", old, err)
	}
	_, err = r.update("dmg-t2-2.1.0.tar")
	wantErr(t, err, ErrWithdrawn)
	// Anti-rollback holds from the new floor: a later release installs as usual.
	if _, err := r.update(r.publish(bundle(t, "2.2.0", nil))); err != nil {
		t.Fatal(err)
	}
	if st := r.commitTrial(); st.Highest != "2.2.0" || st.Previous.Version != shippedT2 {
		t.Fatalf("after 2.2.0: %+v", st)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDowngradeRefused: without an authorisation for exactly this step, signed by the
// required keys, a lower version is refused before download and the box is unchanged.
func TestDowngradeRefused(t *testing.T) {
	cases := []struct {
		name  string
		setup func(r *rig) string // returns the target pushed
		want  string              // in the error
	}{
		{"no authorisation", func(r *rig) string { return r.publish(bundle(r.t, shippedT2, nil)) }, "no signed downgrade authorisation"},
		{"from another version", func(r *rig) string {
			old := r.publish(bundle(r.t, shippedT2, nil))
			r.authorise(old, "2.1.0-rc.1")
			return old
		}, "no signed downgrade authorisation from 2.1.0"},
		{"for another target", func(r *rig) string {
			r.authorise(r.publish(bundle(r.t, "1.0.9-hotfix", nil)), "2.1.0")
			return r.publish(bundle(r.t, shippedT2, nil))
		}, "no signed downgrade authorisation"},
		{"for another model", func(r *rig) string {
			other := r.publish(bundle(r.t, shippedT2, func(m map[string]any) { m["name"] = "dmg-t2-alt" }))
			r.authorise(other, "2.1.0")
			return other
		}, "authorisation is for dmg-t2-alt"},
		{"not signed by the targets key", func(r *rig) string {
			old := r.publish(bundle(r.t, shippedT2, nil))
			r.repo.keys["targets"], _ = newKey() // a key root does not name
			r.authorise(old, "2.1.0")
			return old
		}, "metadata refresh failed"},
		{"site approval on, not signed by the site", func(r *rig) string {
			site := r.siteKey(true)
			r.requireSite = true
			old := r.publish(bundle(r.t, shippedT2, nil))
			if err := r.repo.Approve(site, "site-a", old); err != nil { // an approval before the authorisation
				r.t.Fatal(err)
			}
			r.authorise(old, "2.1.0")
			return old
		}, "site's approval of dmg-t2-" + shippedT2 + ".tar does not authorise the downgrade from 2.1.0"},
		{"site approval on, signed by another site key", func(r *rig) string {
			r.siteKey(true)
			other := r.siteKey(false)
			r.requireSite = true
			old := r.publish(bundle(r.t, shippedT2, nil))
			r.authorise(old, "2.1.0")
			if err := r.repo.Approve(other, "site-a", old); err != nil {
				r.t.Fatal(err)
			}
			return old
		}, "not delegated to this box's ota.site_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.box()
			r.committedAt("2.1.0")
			name := c.setup(r)
			r.box() // options a case changed (site key, site approval)
			before, _ := os.ReadFile(filepath.Join(r.models, slotsFile))
			_, err := r.update(name)
			if !strings.Contains(errString(err), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if after, _ := os.ReadFile(filepath.Join(r.models, slotsFile)); !bytes.Equal(before, after) {
				t.Fatalf("slots.json changed:\n%s\n%s", before, after)
			}
			if v := r.activeVersion(); v != "2.1.0" {
				t.Fatalf("running %s", v)
			}
		})
	}
}

// TestDowngradeSignedBySite: with site approval on, the downgrade is admitted once the site
// approves the target again after the authorisation (its approval then carries downgrade_from).
func TestDowngradeSignedBySite(t *testing.T) {
	r := newRig(t)
	site := r.siteKey(true)
	r.requireSite = true
	r.box()
	r.committedAt("2.1.0")
	old := r.publish(bundle(t, shippedT2, nil))
	r.authorise(old, "2.1.0")
	if err := r.repo.Approve(site, "site-a", old); err != nil {
		t.Fatal(err)
	}
	if _, err := r.update(old); err != nil {
		t.Fatal(err)
	}
	if st := r.commitTrial(); st.Committed.Version != shippedT2 || st.Highest != shippedT2 {
		t.Fatalf("after the downgrade: %+v", st)
	}
}

func (r *rig) authorise(target, from string) {
	r.t.Helper()
	if _, err := r.repo.AuthoriseDowngrade(target, from); err != nil {
		r.t.Fatal(err)
	}
}
