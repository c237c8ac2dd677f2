package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/midline-rt/midline/internal/atomicfile"
)

// Download errors callers branch on.
var (
	// ErrTruncated: the server sent less than the signed length; the partial file is kept and
	// the next attempt resumes it.
	ErrTruncated = errors.New("ota: download truncated")
	// ErrTooLong: the server sent more than the signed length (whatever the hash of the prefix).
	ErrTooLong = errors.New("ota: download longer than its signed length")
	// ErrHashMismatch: the bytes do not hash to the signed sha256; the partial file is removed.
	ErrHashMismatch = errors.New("ota: download does not match its signed sha256")
	// ErrTooLarge: the signed length is beyond what the box accepts.
	ErrTooLarge = errors.New("ota: target larger than the box accepts")
)

// Want is what TUF says a target must be: its length and sha256.
type Want struct {
	Length int64
	SHA256 []byte
}

// Fetch downloads url into staging/<sha256>.tar, resuming a partial staging/<sha256>.part with
// an HTTP Range request, and checks length and sha256 while streaming (the partial prefix is
// hashed again from disk, never trusted). It returns the verified file's path.
func Fetch(ctx context.Context, hc *http.Client, url, staging string, want Want, maxBytes int64) (string, error) {
	if want.Length <= 0 || want.Length > maxBytes {
		return "", fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, want.Length, maxBytes)
	}
	if len(want.SHA256) != sha256.Size {
		return "", fmt.Errorf("%w: no sha256 in the target info", ErrHashMismatch)
	}
	name := fmt.Sprintf("%x", want.SHA256)
	done := filepath.Join(staging, name+".tar")
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return "", fmt.Errorf("ota: staging: %w", err)
	}
	if ok, _ := fileMatches(done, want); ok {
		return done, nil
	}
	part := filepath.Join(staging, name+".part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return "", fmt.Errorf("ota: staging: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := rehash(f, h, want.Length)
	if err != nil {
		return "", err
	}
	if have < want.Length {
		if err := getRange(ctx, hc, url, f, h, have, want.Length); err != nil {
			if !errors.Is(err, ErrTruncated) {
				os.Remove(part)
			}
			return "", err
		}
	}
	if !bytes.Equal(h.Sum(nil), want.SHA256) {
		os.Remove(part)
		return "", fmt.Errorf("%w: %s", ErrHashMismatch, url)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("ota: staging: %w", err)
	}
	if err := os.Rename(part, done); err != nil {
		return "", fmt.Errorf("ota: staging: %w", err)
	}
	return done, atomicfile.SyncDir(staging)
}

// rehash hashes the partial file's bytes; a partial file longer than the target starts over.
func rehash(f *os.File, h hash.Hash, length int64) (int64, error) {
	n, err := io.Copy(h, io.LimitReader(f, length+1))
	if err != nil {
		return 0, fmt.Errorf("ota: staging: %w", err)
	}
	if n > length {
		h.Reset()
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		_, err := f.Seek(0, io.SeekStart)
		return 0, err
	}
	return n, nil
}

// getRange asks for bytes from `have` on, appends them to f and feeds h, never more than the
// signed length: a server that ignores Range (200) starts the file over.
func getRange(ctx context.Context, hc *http.Client, url string, f *os.File, h hash.Hash, have, length int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("ota: download: %w", err)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)) {
			return fmt.Errorf("ota: download: Content-Range %q for a request from %d", resp.Header.Get("Content-Range"), have)
		}
	case resp.StatusCode == http.StatusOK:
		h.Reset()
		if err := f.Truncate(0); err != nil {
			return err
		}
		have = 0
	default:
		return fmt.Errorf("ota: download %s: HTTP %s", url, resp.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	rest := length - have
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, rest))
	if err != nil || n < rest {
		f.Sync() // keep what came, for the next attempt
		return fmt.Errorf("%w: %d of %d bytes: %v", ErrTruncated, have+n, length, err)
	}
	if k, _ := io.CopyN(io.Discard, resp.Body, 1); k > 0 {
		return fmt.Errorf("%w: %s", ErrTooLong, url)
	}
	return nil
}

// fileMatches reports whether path holds exactly the wanted bytes.
func fileMatches(path string, want Want) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, want.Length+1))
	return err == nil && n == want.Length && bytes.Equal(h.Sum(nil), want.SHA256), err
}
