package ota

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
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
	name := r.publish(bundle(t, "2.1.0", nil))
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("before any approval: %v", err)
	}
	if err := r.repo.Approve(site, "site-b", name); err != nil {
		t.Fatal(err)
	}
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("another site's approval counts here: %v", err)
	}
	if err := r.repo.Approve(other, "site-a", name); err != nil { // the first approval delegates the role
		t.Fatal(err)
	}
	if err := r.approval(name); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), "ota.site_key") {
		t.Fatalf("approved with a key that is not the site's: %v", err)
	}
	// The repository keeps the role's key: another key approves only through a rotation.
	if err := r.repo.Approve(site, "site-a", name); !errors.Is(err, ErrSiteKey) {
		t.Fatalf("approval with another key than the delegated one: %v", err)
	}
	if kept, err := r.repo.RotateSiteKey(site, "site-a"); err != nil || !slices.Equal(kept, []string{name}) {
		t.Fatalf("rotate to the site's key: %v, re-signed %v", err, kept)
	}
	if err := r.approval(name); err != nil {
		t.Fatalf("approved by the site key: %v", err)
	}
	// The vendor re-publishes other bytes under the approved name: the approval does not carry over.
	r.publish(bundle(t, "2.1.0", func(m map[string]any) { m["threshold"] = 0.6 }))
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
	name := r.publish(bundle(t, "2.1.0", nil))
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
	if st.Shadow == nil || st.Shadow.Version != "2.1.0" || st.Trial != nil || r.activeVersion() != shippedT2 {
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
	if len(got) != 1 || got[0].Version != "2.1.0" {
		t.Fatalf("approved shadows %+v", got)
	}
	if _, err := r.mgr.Activate(got[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	st = r.mgr.Snapshot().Sequences["T2"]
	if st.Shadow != nil || st.Trial == nil || r.activeVersion() != "2.1.0" {
		t.Fatalf("after approval: %+v", st)
	}
}

// TestSiteKeyRotation follows the documented procedure (ota/README.md, "Site approval"): a new
// site key, `site-rotate` in the repository (approvals re-signed with the new key), the new
// public key installed as ota.site_key. The box keeps taking approved updates; an approval
// signed with the old key no longer counts, whether the repository is asked to sign it or it is
// forged into the site's metadata.
func TestSiteKeyRotation(t *testing.T) {
	r := newRig(t)
	oldKey := r.siteKey(true)
	r.box()
	first := r.publish(bundle(t, "2.1.0", nil))
	if err := r.repo.Approve(oldKey, "site-a", first); err != nil {
		t.Fatal(err)
	}
	if err := r.approval(first); err != nil {
		t.Fatalf("before the rotation: %v", err)
	}
	newKey := r.siteKey(false)
	if kept, err := r.repo.RotateSiteKey(newKey, "site-a"); err != nil || !slices.Equal(kept, []string{first}) {
		t.Fatalf("rotate: %v, re-signed %v", err, kept)
	}
	if err := r.approval(first); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("a box still pinning the old key counts an approval: %v", err)
	}
	r.trustSiteKey(newKey)
	r.box() // ota.site_key is the new public key
	if err := r.approval(first); err != nil {
		t.Fatalf("the re-signed approval: %v", err)
	}
	second := r.publish(bundle(t, "2.2.0", nil))
	if err := r.repo.Approve(oldKey, "site-a", second); !errors.Is(err, ErrSiteKey) {
		t.Fatalf("the repository signed an approval with the old key: %v", err)
	}
	r.forgeSiteRole(oldKey, "site-a", second)
	if err := r.approval(second); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("an approval signed with the old key counts: %v", err)
	}
	if err := r.repo.Approve(newKey, "site-a", second); err != nil {
		t.Fatal(err)
	}
	targets, err := r.mgr.Check()
	if err != nil || targets[second].Approval != nil {
		t.Fatalf("after approval with the new key: %v, %v", err, targets[second].Approval)
	}
	p, err := r.mgr.Prepare(context.Background(), targets, second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.mgr.Activate(p, time.Now()); err != nil || r.activeVersion() != "2.2.0" {
		t.Fatalf("update after the rotation: %v, running %s", err, r.activeVersion())
	}
}

// TestRevokeApproval: a revoked approval no longer counts, so a shadow of it is not promoted;
// revoking needs the delegated site key.
func TestRevokeApproval(t *testing.T) {
	r := newRig(t)
	site := r.siteKey(true)
	other := r.siteKey(false)
	r.box()
	name := r.publish(bundle(t, "2.1.0", nil))
	if err := r.repo.Revoke(site, "site-a", name); err == nil {
		t.Fatal("revoked an approval that was never given")
	}
	if err := r.repo.Approve(site, "site-a", name); err != nil {
		t.Fatal(err)
	}
	if err := r.repo.Revoke(other, "site-a", name); !errors.Is(err, ErrSiteKey) {
		t.Fatalf("revoke with another key: %v", err)
	}
	if err := r.repo.Revoke(site, "site-a", name); err != nil {
		t.Fatal(err)
	}
	targets, err := r.mgr.Check()
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(targets[name].Approval, ErrNotApproved) {
		t.Fatalf("revoked approval: %v", targets[name].Approval)
	}
	p, err := r.mgr.Prepare(context.Background(), targets, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.mgr.BeginShadow(p, targets[name].Approval); err != nil {
		t.Fatal(err)
	}
	if got := r.mgr.Approved(targets); len(got) != 0 {
		t.Fatalf("a shadow with a revoked approval was promoted: %+v", got)
	}
}

func (r *rig) trustSiteKey(priv string) {
	r.t.Helper()
	k, err := readKey(priv)
	if err != nil {
		r.t.Fatal(err)
	}
	r.sitePub = k.Public().(ed25519.PublicKey)
}

// forgeSiteRole signs a new version of the site's role approving target with key, without
// touching the delegation: what someone who kept an old site key could serve.
func (r *rig) forgeSiteRole(key, site, target string) {
	r.t.Helper()
	sk, err := readKey(key)
	if err != nil {
		r.t.Fatal(err)
	}
	entry, err := r.repo.approvalEntry(site, target)
	if err != nil {
		r.t.Fatal(err)
	}
	role := SiteRole(site)
	sm, err := r.repo.siteMetadata(role)
	if err != nil {
		r.t.Fatal(err)
	}
	sm.Signed.Targets[entry.Path] = entry
	sm.Signed.Version++
	if err := signWrite(sm, []ed25519.PrivateKey{sk}, filepath.Join(r.repo.Served(), fmt.Sprintf("%d.%s.json", sm.Signed.Version, role))); err != nil {
		r.t.Fatal(err)
	}
	r.repo.snapshot.Signed.Meta[role+".json"] = metadata.MetaFile(sm.Signed.Version)
	if err := r.repo.publishSigned(); err != nil {
		r.t.Fatal(err)
	}
}
