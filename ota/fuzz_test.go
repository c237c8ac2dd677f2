package ota

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func tarOf(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		tw.WriteHeader(&h)
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestUnpackRefuses(t *testing.T) {
	reg := func(name string, size int64) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeReg, Size: size, Mode: 0o644}
	}
	cases := map[string][]byte{
		"absolute":   tarOf(t, reg("/etc/passwd", 1)),
		"dotdot":     tarOf(t, reg("../x", 1)),
		"nested":     tarOf(t, reg("a/b", 1)),
		"symlink":    tarOf(t, tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}),
		"hardlink":   tarOf(t, tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "model.json"}),
		"device":     tarOf(t, tar.Header{Name: "d", Typeflag: tar.TypeChar}),
		"folder":     tarOf(t, tar.Header{Name: "sub/", Typeflag: tar.TypeDir}),
		"twice":      tarOf(t, reg("a", 1), reg("a", 1)),
		"empty":      tarOf(t),
		"too big":    tarOf(t, reg("a", 2000)),
		"too many":   tarOf(t, reg("a", 1), reg("b", 1), reg("c", 1)),
		"not a tar":  []byte("hello"),
		"hidden dot": tarOf(t, reg(".bashrc", 1)),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			err := Unpack(bytes.NewReader(b), dir, Limits{MaxFiles: 2, MaxFileBytes: 1000, MaxBytes: 1500})
			wantErr(t, err, ErrBadTar)
		})
	}
	dir := t.TempDir()
	if err := Unpack(bytes.NewReader(tarOf(t, tar.Header{Name: "./", Typeflag: tar.TypeDir}, reg("./a", 3), reg("b", 2))), dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "xxx" {
		t.Fatalf("a = %q", b)
	}
}

// FuzzUnpack: no input escapes the folder, panics or writes beyond the limits; what unpacks
// packs and unpacks again to the same files (round trip).
func FuzzUnpack(f *testing.F) {
	f.Add(tarOf(f, tar.Header{Name: "model.json", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}))
	f.Add(tarOf(f, tar.Header{Name: "../x", Typeflag: tar.TypeReg, Size: 1}))
	f.Add(tarOf(f, tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}))
	if b, err := os.ReadFile(filepath.Join("testdata", "bundle-small.tar")); err == nil {
		f.Add(b)
	}
	base := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "fuzz-unpack-"); err == nil { // fsync on tmpfs is free
		base = shm
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		dir := filepath.Join(root, "slot")
		os.Mkdir(dir, 0o755)
		lim := Limits{MaxFiles: 8, MaxFileBytes: 1 << 16, MaxBytes: 1 << 17}
		if err := Unpack(bytes.NewReader(b), dir, lim); err != nil {
			return
		}
		var total int64
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !e.Type().IsRegular() {
				t.Fatalf("%s is not a regular file", e.Name())
			}
			info, _ := e.Info()
			total += info.Size()
		}
		if rootEntries, _ := os.ReadDir(root); len(rootEntries) != 1 || len(entries) > 8 || total > 1<<17 {
			t.Fatalf("wrote outside the slot or beyond the limits: %d entries, %d bytes", len(entries), total)
		}
		var again bytes.Buffer
		if err := PackBundle(dir, &again); err != nil {
			t.Fatal(err)
		}
		dir2 := filepath.Join(root, "again")
		os.Mkdir(dir2, 0o755)
		if err := Unpack(&again, dir2, lim); err != nil {
			t.Fatalf("packed bundle does not unpack: %v", err)
		}
	})
}

// FuzzParseCustom: custom metadata never panics, and what parses validates and survives a
// marshal and parse unchanged.
func FuzzParseCustom(f *testing.F) {
	f.Add([]byte(`{"name":"dmg-t2","sequence":"T2","version":"1.1.0","min_firmware":"0.1.0","engines":["cpu"],"groups":["*"],"withdrawn":false}`))
	f.Add([]byte(`{"name":"dmg-t2","sequence":"T2","version":"1.1.0-rc.1","min_firmware":"0.1.0","engines":["cpu","edgetpu"],"groups":["ward-a"],"withdrawn":true}`))
	f.Add([]byte(`{"name":"x","extra":1}`))
	f.Add([]byte(`{"name":"dmg-t2","sequence":"T2","version":"1.0.0","min_firmware":"0.1.0","engines":["cpu"],"groups":["*"],"withdrawn":false,"downgrade_from":["1.1.0","1.2.0-rc.1"]}`))
	f.Add([]byte(`{"name":"dmg-t2","sequence":"T2","version":"1.0.0","min_firmware":"0.1.0","engines":["cpu"],"groups":["*"],"downgrade_from":["0.9.0"]}`))
	f.Add([]byte(`{"name":"dmg-t2","sequence":"T2","version":"1.0.0","min_firmware":"0.1.0","engines":["cpu"],"groups":["*"],"downgrade_from":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCustom(b)
		if err != nil {
			return
		}
		if c.Validate() != nil || CompareVersions(c.Version, c.Version) != 0 {
			t.Fatalf("parsed but invalid: %+v", c)
		}
		for _, f := range c.DowngradeFrom {
			if CompareVersions(f, c.Version) <= 0 {
				t.Fatalf("downgrade_from %s not above %s", f, c.Version)
			}
		}
		again, _ := json.Marshal(c)
		if c2, err := ParseCustom(again); err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, c, c2)
		}
	})
}

// FuzzParseSiteApproval: a site approval's custom metadata never panics, and what parses names
// only versions above the approved one, and survives a marshal and parse unchanged.
func FuzzParseSiteApproval(f *testing.F) {
	f.Add([]byte(`{"downgrade_from":["1.1.0"]}`), "1.0.0")
	f.Add([]byte(`{}`), "1.0.0")
	f.Add([]byte(`{"downgrade_from":[]}`), "1.0.0")
	f.Add([]byte(`{"downgrade_from":["1.1.0","1.1.0"]}`), "1.0.0")
	f.Add([]byte(`{"downgrade_from":"1.1.0","x":1}`), "1.0.0")
	f.Fuzz(func(t *testing.T, b []byte, version string) {
		a, err := ParseSiteApproval(b, version)
		if err != nil {
			return
		}
		for _, f := range a.DowngradeFrom {
			if CompareVersions(f, version) <= 0 {
				t.Fatalf("downgrade_from %s not above %s", f, version)
			}
		}
		again, _ := json.Marshal(a)
		if a2, err := ParseSiteApproval(again, version); err != nil || !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0}, {"1.0.10", "1.0.9", 1}, {"1.0.0-rc1", "1.0.0", -1}, {"2.0.0", "10.0.0", -1},
		{"1.0.0-a", "1.0.0-b", -1}, {"junk", "0.0.1", -1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
