package ota

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/internal/atomicfile"
)

// A repository folder (README.md, "Repository"):
//
//	REPO/keys/{targets,snapshot,timestamp}.pem   online keys (mode 0600)
//	REPO/repository/                               what is served: N.root.json, root.json,
//	                                                N.targets.json, N.snapshot.json, timestamp.json,
//	                                                targets/<sha256>.<name>-<version>.tar
//	ROOTKEYS/root.pem                              the offline root key, kept apart
const (
	keysDir  = "keys"
	servedIn = "repository"
)

// RepoOptions set expiry periods and the clock; zero fields take the defaults.
type RepoOptions struct {
	Now             func() time.Time
	RootExpiry      time.Duration // default 365 days
	TargetsExpiry   time.Duration // default 90 days
	SnapshotExpiry  time.Duration // default 30 days
	TimestampExpiry time.Duration // default 7 days
}

func (o RepoOptions) withDefaults() RepoOptions {
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.RootExpiry, 365*24*time.Hour)
	def(&o.TargetsExpiry, 90*24*time.Hour)
	def(&o.SnapshotExpiry, 30*24*time.Hour)
	def(&o.TimestampExpiry, 7*24*time.Hour)
	return o
}

func (o RepoOptions) expires(d time.Duration) time.Time {
	return o.Now().UTC().Add(d).Truncate(time.Second)
}

// Repo is an opened repository with its online keys: targets, snapshot and timestamp.
type Repo struct {
	Dir       string
	Opts      RepoOptions
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	keys      map[string]ed25519.PrivateKey
}

// Served is the folder a web server serves as ota.repo_url.
func (r *Repo) Served() string { return filepath.Join(r.Dir, servedIn) }

// Init makes a new repository: one ed25519 key per top-level role, the root key written to
// rootKeys (to be moved offline), the others to dir/keys, and version 1 of every role.
func Init(dir, rootKeys string, o RepoOptions) (*Repo, error) {
	o = o.withDefaults()
	if _, err := os.Stat(filepath.Join(dir, servedIn, "1.root.json")); err == nil {
		return nil, fmt.Errorf("ota: init: %s already holds a repository", dir)
	}
	for _, d := range []string{filepath.Join(dir, keysDir), filepath.Join(dir, servedIn, "targets"), rootKeys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("ota: init: %w", err)
		}
	}
	r := &Repo{Dir: dir, Opts: o, keys: map[string]ed25519.PrivateKey{}}
	r.root = metadata.Root(o.expires(o.RootExpiry))
	var rootKey ed25519.PrivateKey
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		keyDir := filepath.Join(dir, keysDir)
		if role == metadata.ROOT {
			keyDir, rootKey = rootKeys, k
		} else {
			r.keys[role] = k
		}
		if err := writeKey(filepath.Join(keyDir, role+".pem"), k); err != nil {
			return nil, err
		}
		if err := addPublic(r.root, k, role); err != nil {
			return nil, err
		}
	}
	if err := r.writeRoot(rootKey); err != nil {
		return nil, err
	}
	r.targets = metadata.Targets(o.expires(o.TargetsExpiry))
	r.targets.Signed.Version = 0 // publishSigned bumps it to 1
	r.snapshot = metadata.Snapshot(o.expires(o.SnapshotExpiry))
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp(o.expires(o.TimestampExpiry))
	r.timestamp.Signed.Version = 0
	return r, r.publishSigned()
}

// OpenRepo reads a repository's latest metadata and its online keys.
func OpenRepo(dir string, o RepoOptions) (*Repo, error) {
	r := &Repo{Dir: dir, Opts: o.withDefaults(), keys: map[string]ed25519.PrivateKey{}}
	s := r.Served()
	var err error
	if r.root, err = metadata.Root().FromFile(filepath.Join(s, "root.json")); err != nil {
		return nil, fmt.Errorf("ota: open repository: %w", err)
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(s, "timestamp.json")); err != nil {
		return nil, fmt.Errorf("ota: open repository: %w", err)
	}
	sv := r.timestamp.Signed.Meta["snapshot.json"].Version
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(s, fmt.Sprintf("%d.snapshot.json", sv))); err != nil {
		return nil, fmt.Errorf("ota: open repository: %w", err)
	}
	tv := r.snapshot.Signed.Meta["targets.json"].Version
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(s, fmt.Sprintf("%d.targets.json", tv))); err != nil {
		return nil, fmt.Errorf("ota: open repository: %w", err)
	}
	for _, role := range []string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if r.keys[role], err = readKey(filepath.Join(dir, keysDir, role+".pem")); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Targets lists the targets with their custom metadata, by name.
func (r *Repo) Targets() map[string]Custom {
	out := map[string]Custom{}
	for name, t := range r.targets.Signed.Targets {
		if t.Custom != nil {
			c, _ := ParseCustom(*t.Custom)
			out[name] = c
		}
	}
	return out
}

// Publish adds a bundle (a folder or a tar of one) as a target released to groups ("*" for
// all), or replaces the target of the same name and version, and re-signs targets, snapshot and
// timestamp. It returns the target's name.
func (r *Repo) Publish(bundle string, groups []string) (string, error) {
	tarBytes, meta, err := readBundle(bundle)
	if err != nil {
		return "", err
	}
	engines := make([]string, 0, len(meta.Targets))
	for k := range meta.Targets {
		engines = append(engines, k)
	}
	slices.Sort(engines)
	if len(groups) == 0 {
		groups = []string{"*"}
	}
	c := Custom{Name: meta.Name, Sequence: meta.Sequence, Version: meta.Version, MinFirmware: meta.Runtime.MinFirmware,
		Engines: engines, Groups: groups}
	if err := c.Validate(); err != nil {
		return "", err
	}
	name := TargetName(c.Name, c.Version)
	sum := sha256.Sum256(tarBytes)
	path := filepath.Join(r.Served(), "targets", hex.EncodeToString(sum[:])+"."+name)
	if err := atomicfile.Write(path, tarBytes); err != nil {
		return "", fmt.Errorf("ota: publish: %w", err)
	}
	if err := r.setTarget(name, int64(len(tarBytes)), sum[:], c); err != nil {
		return "", err
	}
	return name, r.publishSigned()
}

// Recall marks a target withdrawn in signed metadata: boxes running it go back to their
// previous committed model, and no box installs it again.
func (r *Repo) Recall(name string) error {
	t, ok := r.targets.Signed.Targets[name]
	if !ok || t.Custom == nil {
		return fmt.Errorf("ota: recall: no target %q", name)
	}
	c, err := ParseCustom(*t.Custom)
	if err != nil {
		return err
	}
	c.Withdrawn = true
	if err := r.setTarget(name, t.Length, t.Hashes["sha256"], c); err != nil {
		return err
	}
	return r.publishSigned()
}

// AuthoriseDowngrade signs a downgrade authorisation (ota/README.md, "Deliberate rollback"):
// target, a listed bundle, may replace `from` on a box whose highest committed version of that
// model is `from`. Every target of the same model with a version above the target's and up to
// `from` is withdrawn in the same signed metadata, since a box that took the downgrade would
// otherwise accept them again. It returns the targets withdrawn. With site approval on, the
// site signs its half by approving the target again (`midline ota approve`).
func (r *Repo) AuthoriseDowngrade(target, from string) ([]string, error) {
	t, ok := r.targets.Signed.Targets[target]
	if !ok || t.Custom == nil {
		return nil, fmt.Errorf("ota: downgrade: no target %q", target)
	}
	c, err := ParseCustom(*t.Custom)
	if err != nil {
		return nil, fmt.Errorf("ota: downgrade: %w", err)
	}
	if c.Withdrawn {
		return nil, fmt.Errorf("ota: downgrade: %s is withdrawn", target)
	}
	if !slices.Contains(c.DowngradeFrom, from) {
		c.DowngradeFrom = append(c.DowngradeFrom, from)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("ota: downgrade: %w", err)
	}
	withdrawn, err := r.withdrawBetween(c, from)
	if err != nil {
		return nil, err
	}
	if err := r.setTarget(target, t.Length, t.Hashes["sha256"], c); err != nil {
		return nil, err
	}
	return withdrawn, r.publishSigned()
}

// withdrawBetween withdraws the targets of c's model and sequence whose version is above c's
// and not above from.
func (r *Repo) withdrawBetween(c Custom, from string) ([]string, error) {
	var out []string
	listed := r.Targets()
	for name, tf := range r.targets.Signed.Targets {
		o, ok := listed[name]
		if !ok || o.Withdrawn || o.Name != c.Name || o.Sequence != c.Sequence ||
			CompareVersions(o.Version, c.Version) <= 0 || CompareVersions(o.Version, from) > 0 {
			continue
		}
		o.Withdrawn = true
		if err := r.setTarget(name, tf.Length, tf.Hashes["sha256"], o); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// RefreshTimestamp signs a new timestamp (the online key's routine job, e.g. from cron or
// `ota serve`), so that boxes keep seeing fresh metadata when nothing was published.
func (r *Repo) RefreshTimestamp() error {
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = r.Opts.expires(r.Opts.TimestampExpiry)
	return r.signWrite(r.timestamp, metadata.TIMESTAMP, "timestamp.json")
}

func (r *Repo) setTarget(name string, length int64, sum []byte, c Custom) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	cj := json.RawMessage(raw)
	r.targets.Signed.Targets[name] = &metadata.TargetFiles{Length: length, Hashes: metadata.Hashes{"sha256": sum},
		Custom: &cj, Path: name}
	return nil
}

// publishSigned bumps and signs targets, snapshot and timestamp, in the order a client reads
// them backwards: targets first, timestamp last, so a client never sees a timestamp whose
// snapshot is not there yet.
func (r *Repo) publishSigned() error {
	o := r.Opts
	r.targets.Signed.Version++
	r.targets.Signed.Expires = o.expires(o.TargetsExpiry)
	if err := r.signWrite(r.targets, metadata.TARGETS, fmt.Sprintf("%d.targets.json", r.targets.Signed.Version)); err != nil {
		return err
	}
	r.snapshot.Signed.Version++
	r.snapshot.Signed.Expires = o.expires(o.SnapshotExpiry)
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	if err := r.signWrite(r.snapshot, metadata.SNAPSHOT, fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version)); err != nil {
		return err
	}
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	return r.RefreshTimestamp()
}

type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
	ToBytes(bool) ([]byte, error)
}

func (r *Repo) signWrite(m signable, role, file string) error {
	k, ok := r.keys[role]
	if !ok {
		return fmt.Errorf("ota: no %s key", role)
	}
	return signWrite(m, []ed25519.PrivateKey{k}, filepath.Join(r.Served(), file))
}

func signWrite(m signable, keys []ed25519.PrivateKey, paths ...string) error {
	m.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadSigner(k, crypto.Hash(0))
		if err != nil {
			return fmt.Errorf("ota: signer: %w", err)
		}
		if _, err := m.Sign(s); err != nil {
			return fmt.Errorf("ota: sign: %w", err)
		}
	}
	b, err := m.ToBytes(true)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := atomicfile.Write(p, b); err != nil {
			return fmt.Errorf("ota: write %s: %w", filepath.Base(p), err)
		}
	}
	return nil
}

// writeRoot signs root with the given root keys and writes N.root.json and root.json.
func (r *Repo) writeRoot(keys ...ed25519.PrivateKey) error {
	s := r.Served()
	return signWrite(r.root, keys, filepath.Join(s, fmt.Sprintf("%d.root.json", r.root.Signed.Version)), filepath.Join(s, "root.json"))
}

// RotateKey replaces the online key of role (targets, snapshot or timestamp) with a new one:
// root version N+1 names the new key and is signed by the offline root key from rootKeys, then
// the role's metadata is re-signed with the new key. Boxes follow the chain of root versions.
func (r *Repo) RotateKey(rootKeys, role string) error {
	if !slices.Contains([]string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}, role) {
		return fmt.Errorf("ota: rotate: %q is not an online role", role)
	}
	rootKey, err := readKey(filepath.Join(rootKeys, "root.pem"))
	if err != nil {
		return err
	}
	k, err := newKey()
	if err != nil {
		return err
	}
	for _, id := range slices.Clone(r.root.Signed.Roles[role].KeyIDs) {
		if err := r.root.Signed.RevokeKey(id, role); err != nil {
			return fmt.Errorf("ota: rotate: %w", err)
		}
	}
	if err := addPublic(r.root, k, role); err != nil {
		return err
	}
	r.root.Signed.Version++
	r.root.Signed.Expires = r.Opts.expires(r.Opts.RootExpiry)
	if err := r.writeRoot(rootKey); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(r.Dir, keysDir, role+".pem"), k); err != nil {
		return err
	}
	r.keys[role] = k
	return r.publishSigned()
}

func readBundle(path string) ([]byte, accel.BundleMeta, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, accel.BundleMeta{}, fmt.Errorf("ota: publish: %w", err)
	}
	dir := path
	if !st.IsDir() {
		tmp, err := os.MkdirTemp("", "midline-publish-")
		if err != nil {
			return nil, accel.BundleMeta{}, err
		}
		defer os.RemoveAll(tmp)
		f, err := os.Open(path)
		if err != nil {
			return nil, accel.BundleMeta{}, err
		}
		err = Unpack(f, tmp, Limits{})
		f.Close()
		if err != nil {
			return nil, accel.BundleMeta{}, err
		}
		dir = tmp
	}
	b, err := accel.LoadBundle(dir)
	if err != nil {
		return nil, accel.BundleMeta{}, fmt.Errorf("ota: publish: %w", err)
	}
	var buf bytes.Buffer
	if err := PackBundle(dir, &buf); err != nil {
		return nil, accel.BundleMeta{}, err
	}
	return buf.Bytes(), b.Meta, nil
}

func newKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("ota: key: %w", err)
	}
	return k, nil
}

func addPublic(root *metadata.Metadata[metadata.RootType], k ed25519.PrivateKey, role string) error {
	pub, err := metadata.KeyFromPublicKey(k.Public())
	if err != nil {
		return fmt.Errorf("ota: key: %w", err)
	}
	return root.Signed.AddKey(pub, role)
}

func writeKey(path string, k ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("ota: write key: %w", err)
	}
	return os.Chmod(path, 0o600)
}

// readPEM reads the first PEM block of a key file (at most 8 KiB: keys are small); what names
// the key in errors.
func readPEM(path, what string) (*pem.Block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ota: %s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 8192))
	if err != nil {
		return nil, fmt.Errorf("ota: %s: %w", what, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("ota: %s %s: not PEM", what, path)
	}
	return blk, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	blk, err := readPEM(path, "key")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ota: key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("ota: key " + path + ": not ed25519")
	}
	return ek, nil
}
