// Package atomicfile writes files crash-safely, as DESIGN.md's state folder asks: a temp file
// in the same folder, fsync, rename over the target, fsync of the folder. A reader sees the old
// file or the new one, never a torn one, and a rename that returned survives a power cut.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Options tune WriteWith.
type Options struct {
	// Mode of the file; 0 means 0640.
	Mode os.FileMode
	// NoSync skips both fsyncs: still never torn, but not durable. Benchmarks only.
	NoSync bool
}

// Write replaces path with data, mode 0640, durably.
func Write(path string, data []byte) error { return WriteWith(path, data, Options{}) }

// WriteWith replaces path with data as o says.
func WriteWith(path string, data []byte, o Options) error {
	if o.Mode == 0 {
		o.Mode = 0o640
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	_, err = tmp.Write(data)
	if err == nil && !o.NoSync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), o.Mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil || o.NoSync {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a folder's entries (a rename, a removal) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
