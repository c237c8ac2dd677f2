package netdicom

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Spool folders under state_dir/spool.
const (
	spoolTmp    = "tmp"
	spoolSeries = "series" // instances of Process classes, one folder per SeriesInstanceUID
	spoolAside  = "aside"  // instances of SetAside classes
	spoolState  = "state"  // one JSON file per processed series
)

// Failpoints name the steps of a durable store, in order. A test's failpoint function returning
// an error at one of them stops the store there, as a crash would.
const (
	FailAfterWrite   = "write"
	FailAfterFsync   = "fsync"
	FailAfterRename  = "rename"
	FailAfterDirSync = "dirsync"
	FailBeforeReply  = "reply"
)

// ErrFailpoint is what test failpoints return; the association is dropped without an answer.
var ErrFailpoint = errors.New("netdicom: failpoint")

// Instance is one stored instance.
type Instance struct {
	Path           string
	Head           HeadInfo
	TransferSyntax string
	Size           int64
	Aside          bool
	Received       time.Time // the file's modification time; set by Scan only
	// Duplicate is set when the store found the same bytes already in the spool.
	Duplicate bool
}

// Spool stores received instances durably as Part 10 files.
type Spool struct {
	dir       string
	fsync     bool
	freeSpace func(path string) (uint64, error)
	watermark uint64
	failpoint func(step string) error
	seq       atomic.Uint64
	// mu orders pruning against commits: a commit holds it shared from folder creation to
	// rename, Prune holds it exclusively, so a late instance never lands in a folder being removed.
	mu      sync.RWMutex
	folders sync.Map // series folders that exist, their entries durable
}

// SpoolOptions configure a Spool.
type SpoolOptions struct {
	Dir              string // state_dir/spool
	NoFsync          bool   // benchmarks only: skips every fsync (acknowledgement is not durable)
	DiskLowWatermark uint64 // bytes; 0 disables the check
	DiskFree         func(path string) (uint64, error)
	Failpoint        func(step string) error // tests only
}

// OpenSpool creates the spool folders and removes temp files a crash left behind.
func OpenSpool(o SpoolOptions) (*Spool, error) {
	s := &Spool{dir: o.Dir, fsync: !o.NoFsync, freeSpace: o.DiskFree, watermark: o.DiskLowWatermark, failpoint: o.Failpoint}
	if s.freeSpace == nil {
		s.freeSpace = statfsFree
	}
	if s.failpoint == nil {
		s.failpoint = func(string) error { return nil }
	}
	for _, d := range []string{spoolSeries, spoolAside, spoolState} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("netdicom: open spool: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(o.Dir, spoolTmp)); err != nil {
		return nil, fmt.Errorf("netdicom: clear spool temp: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, spoolTmp), 0o750); err != nil {
		return nil, fmt.Errorf("netdicom: open spool: %w", err)
	}
	return s, nil
}

func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("netdicom: statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// HasSpace reports whether free disk space is above the low watermark.
func (s *Spool) HasSpace() bool {
	if s.watermark == 0 {
		return true
	}
	free, err := s.freeSpace(s.dir)
	return err == nil && free >= s.watermark
}

// validUID reports whether s can be a UID and so a safe file name.
func validUID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// Pending is an instance being received into a temp file.
type Pending struct {
	s    *Spool
	f    *os.File
	w    *bufio.Writer
	meta FileMeta
	n    int64
	err  error
}

// Begin starts an instance: the file meta is written first, the data set streams after it.
func (s *Spool) Begin(meta FileMeta) (*Pending, error) {
	name := filepath.Join(s.dir, spoolTmp, fmt.Sprintf("%d-%d.part", os.Getpid(), s.seq.Add(1)))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("netdicom: spool temp file: %w", err)
	}
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(f)
	p := &Pending{s: s, f: f, w: w, meta: meta}
	hdr := appendFileMeta(nil, meta)
	p.meta.DataOffset = int64(len(hdr))
	_, p.err = p.w.Write(hdr)
	return p, nil
}

// Write appends data set bytes as received. A write error is kept and reported by Commit, so
// the sender's data is still consumed.
func (p *Pending) Write(b []byte) (int, error) {
	if p.err == nil {
		_, p.err = p.w.Write(b)
		p.n += int64(len(b))
	}
	return len(b), nil
}

// writerPool recycles the spool's write buffers across instances.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

func (p *Pending) release() {
	if p.w != nil {
		p.w.Reset(nil)
		writerPool.Put(p.w)
		p.w = nil
	}
}

// Abort removes the temp file.
func (p *Pending) Abort() {
	p.release()
	p.f.Close()
	os.Remove(p.f.Name())
}

// Commit checks the data set against the command, then makes it durable: fsync, rename into its
// series folder, fsync of the folder. Only a nil error with StatusSuccess may be acknowledged.
func (p *Pending) Commit() (Instance, Status, error) {
	inst, st, err := p.commit()
	if err != nil || st != StatusSuccess {
		p.Abort()
	}
	return inst, st, err
}

func (p *Pending) commit() (Instance, Status, error) {
	if p.err == nil {
		p.err = p.w.Flush()
	}
	p.release()
	if p.err != nil {
		return Instance{}, StatusOutOfResources, fmt.Errorf("netdicom: spool write: %w", p.err)
	}
	head, err := ReadHead(io.NewSectionReader(p.f, p.meta.DataOffset, p.n), p.meta.TransferSyntax)
	if err != nil {
		return Instance{}, StatusCannotUnderstand, err
	}
	if head.SOPClassUID != p.meta.SOPClassUID || head.SOPInstanceUID != p.meta.SOPInstanceUID {
		return Instance{}, StatusDataSetMismatch, fmt.Errorf("netdicom: data set holds SOP class %q instance %q, command says %q %q",
			head.SOPClassUID, head.SOPInstanceUID, p.meta.SOPClassUID, p.meta.SOPInstanceUID)
	}
	inst := Instance{Head: head, TransferSyntax: p.meta.TransferSyntax, Size: p.meta.DataOffset + p.n}
	if c, _ := lookupSOPClass(head.SOPClassUID); c.Disposition != Process {
		inst.Aside = true
	}
	folder, err := p.s.folder(inst)
	if err != nil {
		return Instance{}, StatusCannotUnderstand, err
	}
	inst.Path = filepath.Join(folder, head.SOPInstanceUID+".dcm")
	dup, err := p.durable(folder, inst.Path)
	if err != nil {
		return Instance{}, StatusProcessingFail, err
	}
	inst.Duplicate = dup
	return inst, StatusSuccess, nil
}

func (s *Spool) folder(inst Instance) (string, error) {
	series := inst.Head.SeriesInstanceUID
	if !validUID(series) {
		if !inst.Aside {
			return "", badDataSet("Series Instance UID %q is not a valid UID", series)
		}
		series = "unknown"
	}
	top := spoolSeries
	if inst.Aside {
		top = spoolAside
	}
	return filepath.Join(s.dir, top, series), nil
}

// durable runs the commit steps in order; dup reports an identical re-send (nothing renamed).
func (p *Pending) durable(folder, path string) (dup bool, err error) {
	fp := p.s.failpoint
	if err := fp(FailAfterWrite); err != nil {
		return false, err
	}
	if p.s.fsync {
		if err := p.f.Sync(); err != nil {
			return false, fmt.Errorf("netdicom: fsync %s: %w", p.f.Name(), err)
		}
	}
	if err := fp(FailAfterFsync); err != nil {
		return false, err
	}
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	if err := p.s.ensureFolder(folder); err != nil {
		return false, err
	}
	if same, err := sameContent(p.f.Name(), path); err != nil || same {
		p.Abort() // an identical re-send: the stored copy stands
		return same, err
	}
	if err := os.Rename(p.f.Name(), path); err != nil {
		return false, fmt.Errorf("netdicom: spool rename: %w", err)
	}
	p.f.Close()
	if err := fp(FailAfterRename); err != nil {
		return false, err
	}
	if err := p.s.syncDir(folder); err != nil {
		return false, err
	}
	return false, fp(FailAfterDirSync)
}

// ensureFolder creates a series folder and makes its entry in the parent durable. Folders
// known to exist durably are remembered; Prune forgets the ones it removes.
func (s *Spool) ensureFolder(folder string) error {
	if _, ok := s.folders.Load(folder); ok {
		return nil
	}
	if err := os.Mkdir(folder, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("netdicom: spool folder: %w", err)
	}
	if err := s.syncDir(filepath.Dir(folder)); err != nil {
		return err
	}
	s.folders.Store(folder, true)
	return nil
}

func (s *Spool) syncDir(dir string) error {
	if !s.fsync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("netdicom: fsync folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("netdicom: fsync folder %s: %w", dir, err)
	}
	return nil
}

// sameContent reports whether path exists with exactly the bytes of tmp (compared in chunks,
// stopping at the first difference).
func sameContent(tmp, path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, nil
	}
	tt, err := os.Stat(tmp)
	if err != nil || tt.Size() != st.Size() {
		return false, err
	}
	a, err := os.Open(tmp)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer b.Close()
	var ba, bb [32 << 10]byte
	for {
		n, err := io.ReadFull(a, ba[:])
		if n > 0 {
			if _, err := io.ReadFull(b, bb[:n]); err != nil || !bytes.Equal(ba[:n], bb[:n]) {
				return false, nil
			}
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return true, nil
		default:
			return false, err
		}
	}
}

// Scan lists every stored instance, as after a restart. Files that do not read back as a
// complete instance header are reported in bad and left in place.
func (s *Spool) Scan() (insts []Instance, bad []string, err error) {
	for _, top := range []string{spoolSeries, spoolAside} {
		paths, err := filepath.Glob(filepath.Join(s.dir, top, "*", "*.dcm"))
		if err != nil {
			return nil, nil, err
		}
		slices.Sort(paths)
		for _, p := range paths {
			inst, err := readInstance(p)
			if err != nil {
				bad = append(bad, p)
				continue
			}
			inst.Aside = top == spoolAside
			insts = append(insts, inst)
		}
	}
	return insts, bad, nil
}

func readInstance(path string) (Instance, error) {
	f, err := os.Open(path)
	if err != nil {
		return Instance{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Instance{}, err
	}
	meta, err := ReadFileMeta(f)
	if err != nil {
		return Instance{}, err
	}
	head, err := ReadHead(io.NewSectionReader(f, meta.DataOffset, st.Size()-meta.DataOffset), meta.TransferSyntax)
	if err != nil {
		return Instance{}, err
	}
	return Instance{Path: path, Head: head, TransferSyntax: meta.TransferSyntax, Size: st.Size(), Received: st.ModTime()}, nil
}

// processedState is what the spool remembers about a processed series.
type processedState struct {
	SeriesUID  string `json:"series_uid"`
	Generation int    `json:"generation"`
	Digest     string `json:"digest"` // of the sorted SOP Instance UIDs processed
}

// instanceDigest identifies a set of instances by their SOP Instance UIDs.
func instanceDigest(sopUIDs []string) string {
	u := slices.Clone(sopUIDs)
	slices.Sort(u)
	h := sha256.Sum256([]byte(strings.Join(u, "\n")))
	return hex.EncodeToString(h[:])
}

// MarkProcessed records durably that a series generation was processed, so that a restart does
// not process it again.
func (s *Spool) MarkProcessed(ev SeriesEvent) error {
	b, err := json.Marshal(processedState{SeriesUID: ev.SeriesUID, Generation: ev.Generation, Digest: instanceDigest(ev.SOPInstanceUIDs)})
	if err != nil {
		return err
	}
	return s.writeAtomic(filepath.Join(s.dir, spoolState, ev.SeriesUID+".json"), b)
}

func (s *Spool) processed() (map[string]processedState, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, spoolState, "*.json"))
	if err != nil {
		return nil, err
	}
	out := map[string]processedState{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var ps processedState
		if json.Unmarshal(b, &ps) == nil && ps.SeriesUID != "" {
			out[ps.SeriesUID] = ps
		}
	}
	return out, nil
}

// writeAtomic writes a small file crash-safely: temp, fsync, rename, folder fsync.
func (s *Spool) writeAtomic(path string, b []byte) error {
	tmp := filepath.Join(s.dir, spoolTmp, fmt.Sprintf("%d-%d.state", os.Getpid(), s.seq.Add(1)))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("netdicom: write state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && s.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("netdicom: write state %s: %w", path, err)
	}
	return s.syncDir(filepath.Dir(path))
}

// Prune removes processed series whose files are all older than maxAge (with their processed
// mark) and set-aside instances older than maxAge. A series with instances newer than its
// processed mark is kept. It returns the series UIDs removed.
func (s *Spool) Prune(now time.Time, maxAge time.Duration) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done, err := s.processed()
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-maxAge)
	var removed []string
	for uid, ps := range done {
		folder := filepath.Join(s.dir, spoolSeries, uid)
		old, sops, err := allOlder(folder, cutoff)
		if err != nil || !old || instanceDigest(sops) != ps.Digest {
			continue
		}
		s.folders.Delete(folder)
		if err := os.RemoveAll(folder); err != nil {
			return removed, fmt.Errorf("netdicom: prune %s: %w", folder, err)
		}
		os.Remove(filepath.Join(s.dir, spoolState, uid+".json"))
		removed = append(removed, uid)
	}
	aside, _ := filepath.Glob(filepath.Join(s.dir, spoolAside, "*", "*.dcm"))
	for _, p := range aside {
		if st, err := os.Stat(p); err == nil && st.ModTime().Before(cutoff) {
			os.Remove(p)
			s.folders.Delete(filepath.Dir(p))
			os.Remove(filepath.Dir(p)) // only succeeds once the folder is empty
		}
	}
	slices.Sort(removed)
	return removed, s.syncDir(filepath.Join(s.dir, spoolSeries))
}

func allOlder(folder string, cutoff time.Time) (bool, []string, error) {
	ents, err := os.ReadDir(folder)
	if err != nil {
		return false, nil, err
	}
	var sops []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return false, nil, err
		}
		if !info.ModTime().Before(cutoff) {
			return false, nil, nil
		}
		sops = append(sops, strings.TrimSuffix(e.Name(), ".dcm"))
	}
	return true, sops, nil
}
