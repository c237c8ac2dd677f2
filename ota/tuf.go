package ota

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Trust says where a box gets its metadata and what it trusts first.
type Trust struct {
	RepoURL     string // ota.repo_url: metadata at the root, targets under targets/
	TrustedRoot []byte // ota.trusted_root's bytes; a newer root cached in MetaDir wins
	MetaDir     string // state_dir/ota/tuf: the last verified metadata (rollback protection)
	HTTP        *http.Client
	// Site and SiteKey (ota.site_key) check site approvals; without SiteKey no target is
	// approved.
	Site    string
	SiteKey ed25519.PublicKey
}

// Target is a verified target: where to get it, what it must be, and its custom metadata.
type Target struct {
	Name    string
	URL     string
	Want    Want
	Custom  Custom
	Expires time.Time // the earliest expiry of the metadata that vouched for it
	// Approval is nil when the site approved exactly these bytes (approve.go), else why not;
	// Site is what the site signed with its approval (its half of a downgrade authorisation).
	Approval error
	Site     SiteApproval
}

// ErrMetadata marks a metadata refresh that failed verification (a bad signature, an expired
// or replayed role) or could not be fetched; the box keeps its models.
var ErrMetadata = errors.New("ota: metadata refresh failed")

// Refresh runs the TUF client workflow (root chain, timestamp, snapshot, targets; signatures,
// thresholds, versions and expiry checked by go-tuf) and returns the targets with valid custom
// metadata, by name. Targets whose custom metadata does not parse are left out.
func Refresh(t Trust) (map[string]Target, error) {
	root := t.TrustedRoot
	if cached, err := os.ReadFile(filepath.Join(t.MetaDir, "root.json")); err == nil && len(cached) > 0 {
		root = cached // the newest root this box has verified (key rotation)
	}
	cfg, err := config.New(t.RepoURL, root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	cfg.LocalMetadataDir = t.MetaDir
	cfg.LocalTargetsDir = filepath.Join(t.MetaDir, "unused-targets")
	if t.HTTP != nil {
		if err := cfg.SetDefaultFetcherHTTPClient(t.HTTP); err != nil {
			return nil, err
		}
	}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	tm := up.GetTrustedMetadataSet()
	exp := tm.Timestamp.Signed.Expires
	for _, e := range []time.Time{tm.Snapshot.Signed.Expires, tm.Targets[metadata.TARGETS].Signed.Expires, tm.Root.Signed.Expires} {
		if e.Before(exp) {
			exp = e
		}
	}
	out := map[string]Target{}
	for name, tf := range up.GetTopLevelTargets() {
		if tf.Custom == nil {
			continue
		}
		c, err := ParseCustom(*tf.Custom)
		if err != nil {
			continue
		}
		sum := tf.Hashes["sha256"]
		u, err := url.JoinPath(t.RepoURL, "targets", fmt.Sprintf("%x.%s", []byte(sum), name))
		if err != nil {
			continue
		}
		tg := Target{Name: name, URL: u, Want: Want{Length: tf.Length, SHA256: sum}, Custom: c, Expires: exp,
			Approval: fmt.Errorf("%w: no ota.site_key configured", ErrNotApproved)}
		if t.SiteKey != nil {
			tg.Site, tg.Approval = approved(up, t.Site, t.SiteKey, name, tf)
		}
		out[name] = tg
	}
	return out, nil
}
