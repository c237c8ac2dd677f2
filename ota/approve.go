package ota

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
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

// Approve signs a site approval of target with the site's private key (sitePEM) and publishes
// it: the delegation to the site's key is added to (or corrected in) the top-level targets,
// `N.site-<site>.json` is signed by the site key, and targets, snapshot and timestamp are
// re-signed with the repository's online keys.
func (r *Repo) Approve(sitePEM, site, target string) error {
	if !groupRE.MatchString(site) || site == "*" {
		return fmt.Errorf("ota: approve: site %q: want 1 to 64 of A-Za-z0-9._-", site)
	}
	tf, ok := r.targets.Signed.Targets[target]
	if !ok || tf.Custom == nil {
		return fmt.Errorf("ota: approve: no target %q", target)
	}
	if c, err := ParseCustom(*tf.Custom); err != nil || c.Withdrawn {
		return fmt.Errorf("ota: approve: %s is withdrawn or has bad metadata (%v)", target, err)
	}
	sk, err := readKey(sitePEM)
	if err != nil {
		return err
	}
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
	sm.Signed.Version++
	sm.Signed.Expires = r.Opts.expires(siteExpiry)
	p := approvalPath(site, target)
	sm.Signed.Targets[p] = &metadata.TargetFiles{Length: tf.Length, Hashes: tf.Hashes, Path: p}
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

// approved checks a site approval of tf on a refreshed updater: go-tuf fetches and verifies the
// delegated role; the delegation must name exactly the pinned site key, and the approval must
// carry the target's length and sha256.
func approved(up *updater.Updater, site string, sitePub ed25519.PublicKey, name string, tf *metadata.TargetFiles) error {
	pinned, _, err := keyID(sitePub)
	if err != nil {
		return err
	}
	top := up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	if top.Signed.Delegations == nil {
		return fmt.Errorf("%w: the repository delegates no site approval", ErrNotApproved)
	}
	i := slices.IndexFunc(top.Signed.Delegations.Roles, func(d metadata.DelegatedRole) bool { return d.Name == SiteRole(site) })
	if i < 0 {
		return fmt.Errorf("%w: no approval role for site %s", ErrNotApproved, site)
	}
	if d := top.Signed.Delegations.Roles[i]; !slices.Equal(d.KeyIDs, []string{pinned}) || d.Threshold != 1 {
		return fmt.Errorf("%w: the approval role of site %s is not delegated to this box's ota.site_key alone", ErrNotApproved, site)
	}
	p := approvalPath(site, name)
	if _, err := up.GetTargetInfo(p); err != nil { // loads and verifies the site's role
		return fmt.Errorf("%w: %v", ErrNotApproved, err)
	}
	// Read the approval from the site's role itself: an entry the vendor's targets might list
	// under the same path must not count.
	sm := up.GetTrustedMetadataSet().Targets[SiteRole(site)]
	if sm == nil || sm.Signed.Targets[p] == nil {
		return fmt.Errorf("%w: %s is not in the site's signed approvals", ErrNotApproved, name)
	}
	a := sm.Signed.Targets[p]
	if a.Length != tf.Length || !bytes.Equal(a.Hashes["sha256"], tf.Hashes["sha256"]) {
		return fmt.Errorf("%w: the approval is for other bytes than %s", ErrNotApproved, name)
	}
	return nil
}
