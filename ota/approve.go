package ota

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/midline-rt/midline/internal/strictjson"
)

// Site approval (docs/contracts.md, "OTA (issue 8)"): the vendor's targets role releases a
// bundle; a site's physicist approves it for clinical use with the site key. The approval is a
// TUF delegated targets role `site-<site>` (paths `approved/<site>/*`, threshold 1, the site key
// only), delegated from the top-level targets and listed in the snapshot, in which the site key
// signs `approved/<site>/<target>` with the target's length and hashes. A box installs a target
// for clinical use only when both signatures verify (go-tuf walks the delegation) and the
// delegation names exactly the site key the box was installed with (ota.site_key), so neither
// the vendor's key nor the site's alone can put a model into clinical use.

// ErrNotApproved: the target has no valid site approval (yet).
var ErrNotApproved = errors.New("target not approved by the site")

// SiteRole is the delegated role that holds a site's approvals.
func SiteRole(site string) string { return "site-" + site }

// approvalPath is the path under which a site approves a target.
func approvalPath(site, target string) string { return "approved/" + site + "/" + target }

// siteExpiry: a site's approvals stay valid for a year unless re-signed (a recall withdraws a
// target sooner).
const siteExpiry = 365 * 24 * time.Hour

// GenerateSiteKey makes a site key: dir/site.pem (private, mode 0600, for `midline ota
// approve`; keep it with the physicist, offline) and dir/site.pub.pem (install on every box of
// the site as ota.site_key).
func GenerateSiteKey(dir string) (priv, pub string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("ota: site key: %w", err)
	}
	priv, pub = filepath.Join(dir, "site.pem"), filepath.Join(dir, "site.pub.pem")
	if _, err := os.Stat(priv); err == nil {
		return "", "", fmt.Errorf("ota: site key: %s exists", priv)
	}
	k, err := newKey()
	if err != nil {
		return "", "", err
	}
	if err := writeKey(priv, k); err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return "", "", err
	}
	return priv, pub, os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

// ReadSitePublicKey reads ota.site_key: an ed25519 public key in PEM (PKIX).
func ReadSitePublicKey(path string) (ed25519.PublicKey, error) {
	blk, err := readPEM(path, "site key")
	if err != nil {
		return nil, err
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("ota: site key %s: not a PEM public key", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ota: site key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("ota: site key %s: not ed25519", path)
	}
	return ek, nil
}

func keyID(pub ed25519.PublicKey) (string, *metadata.Key, error) {
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", nil, fmt.Errorf("ota: key: %w", err)
	}
	id, err := k.ID()
	return id, k, err
}

// ErrSiteKey: a site's approvals are signed with another key than the one its role is delegated
// to; only RotateSiteKey changes that key.
var ErrSiteKey = errors.New("not the key the site's approvals are delegated to")

// SiteApproval is the custom metadata of an approval entry: what the site signed beyond the
// bytes. DowngradeFrom is the site's half of a downgrade authorisation (Custom.DowngradeFrom).
type SiteApproval struct {
	DowngradeFrom []string `json:"downgrade_from,omitempty"`
}

// ParseSiteApproval decodes an approval entry's custom metadata strictly (at most MaxCustom
// bytes); version is the approved target's.
func ParseSiteApproval(raw []byte, version string) (SiteApproval, error) {
	var a SiteApproval
	if len(raw) > MaxCustom {
		return a, fmt.Errorf("ota: site approval: %d bytes, more than %d", len(raw), MaxCustom)
	}
	if err := strictjson.Decode(raw, &a); err != nil {
		return a, fmt.Errorf("ota: site approval: %w", err)
	}
	if err := checkDowngradeFrom(a.DowngradeFrom, version); err != nil {
		return a, fmt.Errorf("ota: site approval: %w", err)
	}
	if len(a.DowngradeFrom) == 0 {
		a.DowngradeFrom = nil // [] and no key mean the same
	}
	return a, nil
}

// Approve signs a site approval of target with the site's private key (sitePEM) and publishes
// it: the first approval of a site delegates its role to that key in the top-level targets,
// `N.site-<site>.json` is signed by the site key, and targets, snapshot and timestamp are
// re-signed with the repository's online keys. A downgrade authorisation on the target
// (`midline ota downgrade`) is signed along with the approval: the site approves that step too.
func (r *Repo) Approve(sitePEM, site, target string) error {
	sk, err := r.siteKeyFor(sitePEM, site, false)
	if err != nil {
		return err
	}
	entry, err := r.approvalEntry(site, target)
	if err != nil {
		return err
	}
	return r.signSiteRole(sk, site, func(t map[string]*metadata.TargetFiles) { t[entry.Path] = entry })
}

// Revoke withdraws a site's approval of target, signed with the site key: boxes no longer count
// the target as approved (a shadow of it stays a shadow; use a recall to take a model that
// already runs out of service).
func (r *Repo) Revoke(sitePEM, site, target string) error {
	sk, err := r.siteKeyFor(sitePEM, site, true)
	if err != nil {
		return err
	}
	p := approvalPath(site, target)
	sm, err := r.siteMetadata(SiteRole(site))
	if err != nil {
		return err
	}
	if sm.Signed.Targets[p] == nil {
		return fmt.Errorf("ota: revoke: site %s has not approved %s", site, target)
	}
	return r.signSiteRole(sk, site, func(t map[string]*metadata.TargetFiles) { delete(t, p) })
}

// RotateSiteKey delegates a site's approvals to a new key (newPEM; the old key is not needed,
// it may be lost) and re-signs with it the approvals that still match a listed, not withdrawn
// target; the others are dropped. It returns the targets whose approval was re-signed. Boxes
// count the approvals only once their ota.site_key is the new public key.
func (r *Repo) RotateSiteKey(newPEM, site string) ([]string, error) {
	sk, err := readSiteKey(newPEM, site)
	if err != nil {
		return nil, err
	}
	sm, err := r.siteMetadata(SiteRole(site))
	if err != nil {
		return nil, err
	}
	kept := map[string]*metadata.TargetFiles{}
	var names []string
	for p := range sm.Signed.Targets {
		name := strings.TrimPrefix(p, approvalPath(site, ""))
		entry, err := r.approvalEntry(site, name)
		if err != nil {
			continue
		}
		kept[p], names = entry, append(names, name)
	}
	slices.Sort(names)
	return names, r.signSiteRole(sk, site, func(t map[string]*metadata.TargetFiles) {
		clear(t)
		maps.Copy(t, kept)
	})
}

// siteKeyFor reads a site's private key and checks that the site's role is delegated to it
// (existing: the role must be delegated already).
func (r *Repo) siteKeyFor(sitePEM, site string, existing bool) (ed25519.PrivateKey, error) {
	sk, err := readSiteKey(sitePEM, site)
	if err != nil {
		return nil, err
	}
	id, _, err := keyID(sk.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	d := r.siteDelegation(site)
	switch {
	case d == nil && existing:
		return nil, fmt.Errorf("ota: site %s has no approvals", site)
	case d != nil && !slices.Equal(d.KeyIDs, []string{id}):
		return nil, fmt.Errorf("ota: site %s: %s is %w (rotate it with `midline ota site-rotate`)", site, sitePEM, ErrSiteKey)
	}
	return sk, nil
}

func readSiteKey(sitePEM, site string) (ed25519.PrivateKey, error) {
	if !groupRE.MatchString(site) || site == "*" {
		return nil, fmt.Errorf("ota: site %q: want 1 to 64 of A-Za-z0-9._-", site)
	}
	return readKey(sitePEM)
}

func (r *Repo) siteDelegation(site string) *metadata.DelegatedRole {
	if r.targets.Signed.Delegations == nil {
		return nil
	}
	for i, d := range r.targets.Signed.Delegations.Roles {
		if d.Name == SiteRole(site) {
			return &r.targets.Signed.Delegations.Roles[i]
		}
	}
	return nil
}

// approvalEntry is the site role's entry approving target as it is listed now: its length and
// hashes, and its downgrade authorisation.
func (r *Repo) approvalEntry(site, target string) (*metadata.TargetFiles, error) {
	tf, ok := r.targets.Signed.Targets[target]
	if !ok || tf.Custom == nil {
		return nil, fmt.Errorf("ota: approve: no target %q", target)
	}
	c, err := ParseCustom(*tf.Custom)
	if err != nil || c.Withdrawn {
		return nil, fmt.Errorf("ota: approve: %s is withdrawn or has bad metadata (%v)", target, err)
	}
	p := approvalPath(site, target)
	e := &metadata.TargetFiles{Length: tf.Length, Hashes: tf.Hashes, Path: p}
	if len(c.DowngradeFrom) > 0 {
		raw, err := json.Marshal(SiteApproval{DowngradeFrom: c.DowngradeFrom})
		if err != nil {
			return nil, err
		}
		cj := json.RawMessage(raw)
		e.Custom = &cj
	}
	return e, nil
}

// signSiteRole edits the site role's approvals, signs its next version with sk, delegates the
// role to sk's public key and publishes.
func (r *Repo) signSiteRole(sk ed25519.PrivateKey, site string, edit func(map[string]*metadata.TargetFiles)) error {
	id, key, err := keyID(sk.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	r.delegate(site, id, key)
	role := SiteRole(site)
	sm, err := r.siteMetadata(role)
	if err != nil {
		return err
	}
	edit(sm.Signed.Targets)
	sm.Signed.Version++
	sm.Signed.Expires = r.Opts.expires(siteExpiry)
	file := fmt.Sprintf("%d.%s.json", sm.Signed.Version, role)
	if err := signWrite(sm, []ed25519.PrivateKey{sk}, filepath.Join(r.Served(), file)); err != nil {
		return err
	}
	r.snapshot.Signed.Meta[role+".json"] = metadata.MetaFile(sm.Signed.Version)
	return r.publishSigned()
}

// delegate makes the top-level targets delegate approved/<site>/* to exactly the site key.
func (r *Repo) delegate(site, id string, key *metadata.Key) {
	t := &r.targets.Signed
	if t.Delegations == nil {
		t.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	role := metadata.DelegatedRole{Name: SiteRole(site), KeyIDs: []string{id}, Threshold: 1, Terminating: true,
		Paths: []string{"approved/" + site + "/*"}}
	i := slices.IndexFunc(t.Delegations.Roles, func(d metadata.DelegatedRole) bool { return d.Name == role.Name })
	if i < 0 {
		t.Delegations.Roles = append(t.Delegations.Roles, role)
	} else {
		t.Delegations.Roles[i] = role
	}
	t.Delegations.Keys[id] = key
	for kid := range t.Delegations.Keys { // a rotated key leaves the metadata once no role names it
		if !slices.ContainsFunc(t.Delegations.Roles, func(d metadata.DelegatedRole) bool { return slices.Contains(d.KeyIDs, kid) }) {
			delete(t.Delegations.Keys, kid)
		}
	}
}

// siteMetadata reads the site role's latest metadata, or starts it.
func (r *Repo) siteMetadata(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	mf, ok := r.snapshot.Signed.Meta[role+".json"]
	if !ok {
		m := metadata.Targets(r.Opts.expires(siteExpiry))
		m.Signed.Version = 0
		return m, nil
	}
	m, err := metadata.Targets().FromFile(filepath.Join(r.Served(), fmt.Sprintf("%d.%s.json", mf.Version, role)))
	if err != nil {
		return nil, fmt.Errorf("ota: approve: %w", err)
	}
	return m, nil
}

// approved checks a site approval of tf on a refreshed updater (approvedEntry) and returns what
// the site signed with it.
func approved(up *updater.Updater, site string, sitePub ed25519.PublicKey, name string, tf *metadata.TargetFiles) (SiteApproval, error) {
	a, err := approvedEntry(up, site, sitePub, name, tf)
	if err != nil {
		return SiteApproval{}, err
	}
	if a.Custom == nil {
		return SiteApproval{}, nil
	}
	c, _ := ParseCustom(*tf.Custom)
	sa, err := ParseSiteApproval(*a.Custom, c.Version)
	if err != nil {
		return SiteApproval{}, fmt.Errorf("%w: %v", ErrNotApproved, err)
	}
	return sa, nil
}

// approvedEntry: go-tuf fetches and verifies the delegated role; the delegation must name
// exactly the pinned site key, and the approval must carry the target's length and sha256.
func approvedEntry(up *updater.Updater, site string, sitePub ed25519.PublicKey, name string, tf *metadata.TargetFiles) (*metadata.TargetFiles, error) {
	pinned, _, err := keyID(sitePub)
	if err != nil {
		return nil, err
	}
	top := up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	if top.Signed.Delegations == nil {
		return nil, fmt.Errorf("%w: the repository delegates no site approval", ErrNotApproved)
	}
	i := slices.IndexFunc(top.Signed.Delegations.Roles, func(d metadata.DelegatedRole) bool { return d.Name == SiteRole(site) })
	if i < 0 {
		return nil, fmt.Errorf("%w: no approval role for site %s", ErrNotApproved, site)
	}
	if d := top.Signed.Delegations.Roles[i]; !slices.Equal(d.KeyIDs, []string{pinned}) || d.Threshold != 1 {
		return nil, fmt.Errorf("%w: the approval role of site %s is not delegated to this box's ota.site_key alone", ErrNotApproved, site)
	}
	p := approvalPath(site, name)
	if _, err := up.GetTargetInfo(p); err != nil { // loads and verifies the site's role
		return nil, fmt.Errorf("%w: %v", ErrNotApproved, err)
	}
	// Read the approval from the site's role itself: an entry the vendor's targets might list
	// under the same path must not count.
	sm := up.GetTrustedMetadataSet().Targets[SiteRole(site)]
	if sm == nil || sm.Signed.Targets[p] == nil {
		return nil, fmt.Errorf("%w: %s is not in the site's signed approvals", ErrNotApproved, name)
	}
	a := sm.Signed.Targets[p]
	if a.Length != tf.Length || !bytes.Equal(a.Hashes["sha256"], tf.Hashes["sha256"]) {
		return nil, fmt.Errorf("%w: the approval is for other bytes than %s", ErrNotApproved, name)
	}
	return a, nil
}
