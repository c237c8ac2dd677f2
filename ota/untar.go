package ota

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Limits bound what a bundle tar may unpack to; zero fields take the defaults.
type Limits struct {
	MaxFiles     int   // entries (default 32)
	MaxFileBytes int64 // one file (default 256 MiB)
	MaxBytes     int64 // all files (default 512 MiB)
}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles == 0 {
		l.MaxFiles = 32
	}
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = 256 << 20
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = 512 << 20
	}
	return l
}

// ErrBadTar marks a bundle tar that is refused: a path that is not a plain file name, a link,
// a device, a repeated name, or more files or bytes than the limits.
var ErrBadTar = errors.New("ota: bundle tar refused")

var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Unpack writes a bundle tar's files into dir, which must exist and be empty. A bundle is a flat
// folder, so every entry is a regular file with a plain name (an optional "./" is accepted, and
// the "./" folder entry itself); anything else, including absolute paths, "..", links and
// devices, is refused before a byte of it is written. Files are fsynced; the caller syncs dir.
func Unpack(r io.Reader, dir string, lim Limits) error {
	lim = lim.withDefaults()
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadTar, err)
		}
		name, skip, err := entryName(h)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		if seen[name] {
			return fmt.Errorf("%w: %q twice", ErrBadTar, name)
		}
		seen[name] = true
		if len(seen) > lim.MaxFiles {
			return fmt.Errorf("%w: more than %d files", ErrBadTar, lim.MaxFiles)
		}
		if h.Size < 0 || h.Size > lim.MaxFileBytes || total+h.Size > lim.MaxBytes {
			return fmt.Errorf("%w: %q: %d bytes is beyond the limits", ErrBadTar, name, h.Size)
		}
		total += h.Size
		if err := writeFile(filepath.Join(dir, name), tr, h.Size); err != nil {
			return err
		}
	}
	if len(seen) == 0 {
		return fmt.Errorf("%w: no files", ErrBadTar)
	}
	return nil
}

// entryName checks one header; skip is true for the bundle folder's own "./" entry.
func entryName(h *tar.Header) (name string, skip bool, err error) {
	name = strings.TrimPrefix(h.Name, "./")
	switch h.Typeflag {
	case tar.TypeDir:
		if name == "" || name == "." {
			return "", true, nil
		}
		return "", false, fmt.Errorf("%w: folder %q (a bundle is flat)", ErrBadTar, h.Name)
	case tar.TypeReg:
	default:
		return "", false, fmt.Errorf("%w: %q is not a regular file (type %q)", ErrBadTar, h.Name, h.Typeflag)
	}
	if !plainName.MatchString(name) {
		return "", false, fmt.Errorf("%w: %q is not a plain file name", ErrBadTar, h.Name)
	}
	return name, false, nil
}

func writeFile(path string, r io.Reader, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("ota: unpack: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("%w: %s: %d of %d bytes", ErrBadTar, filepath.Base(path), n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// PackBundle writes a bundle folder's regular files as a flat tar in name order, with fixed
// owners, modes and times so that the same folder always gives the same bytes (and sha256).
func PackBundle(dir string, w io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("ota: pack: %w", err)
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := addFile(tw, filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ota: pack: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("ota: pack: %w", err)
	}
	h := &tar.Header{Name: filepath.Base(path), Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("ota: pack: %w", err)
	}
	_, err = io.Copy(tw, f)
	return err
}
