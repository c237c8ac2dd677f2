package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/ota"
)

// shippedT2 is the version of the shipped T2 bundle the slots are seeded from.
var shippedT2 = testenv.ShippedVersion("dmg-t2")

// TestOTARepositoryCommands runs init, publish (the shipped bundle, under a new repository),
// recall and timestamp as IT would, and reads the result back.
func TestOTARepositoryCommands(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	bundle := filepath.Join(testenv.Root(), "models", "dmg-t2")
	for _, args := range [][]string{
		{"ota", "init", "--repo", repo},
		{"ota", "publish", "--repo", repo, "--group", "ward-a", bundle},
		{"ota", "recall", "--repo", repo, "--target", "dmg-t2-" + shippedT2 + ".tar"},
		{"ota", "timestamp", "--repo", repo},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	r, err := ota.OpenRepo(repo, ota.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Targets()["dmg-t2-"+shippedT2+".tar"]
	if !c.Withdrawn || strings.Join(c.Groups, ",") != "ward-a" {
		t.Fatalf("target %+v", c)
	}
	// The site's physicist approves the target with the site key.
	keys := filepath.Join(t.TempDir(), "site")
	for _, args := range [][]string{
		{"ota", "publish", "--repo", repo, bundleV(t, "2.1.0")},
		{"ota", "site-key", "--out", keys},
		{"ota", "approve", "--repo", repo, "--key", filepath.Join(keys, "site.pem"), "--site", "ward-site", "--target", "dmg-t2-2.1.0.tar"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "repository", "1.site-ward-site.json")); err != nil {
		t.Fatalf("no signed approval: %v", err)
	}
	var errb bytes.Buffer
	if code := run([]string{"ota", "approve", "--repo", repo, "--key", filepath.Join(keys, "site.pem"), "--site", "ward-site",
		"--target", "dmg-t2-" + shippedT2 + ".tar"}, &bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), "withdrawn") {
		t.Fatalf("approving a withdrawn target: %d %s", code, errb.String())
	}
}

// bundleV copies the shipped T2 bundle under another version.
func bundleV(t *testing.T, version string) string {
	t.Helper()
	src := filepath.Join(testenv.Root(), "models", "dmg-t2")
	dst := filepath.Join(t.TempDir(), "dmg-t2")
	os.MkdirAll(dst, 0o755)
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		if e.Name() == "model.json" {
			var m map[string]any
			json.Unmarshal(b, &m)
			m["version"] = version
			m["runtime"] = map[string]any{"min_firmware": "0.0.0"} // whatever the test build's version
			b, _ = json.Marshal(m)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	return dst
}

// TestOTADowngradeAndSiteKeyCommands runs the commands of a deliberate rollback and of the site
// approval's lifecycle as IT and the site's physicist would, and reads the result back.
func TestOTADowngradeAndSiteKeyCommands(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	oldKeys, newKeys := filepath.Join(t.TempDir(), "site"), filepath.Join(t.TempDir(), "site2")
	old, bad := "dmg-t2-"+shippedT2+".tar", "dmg-t2-2.1.0.tar"
	ok := func(want string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), want) {
			t.Fatalf("%v: exit %d: %s%s", args, code, out.String(), errb.String())
		}
	}
	ok("repository", "ota", "init", "--repo", repo)
	ok("published", "ota", "publish", "--repo", repo, filepath.Join(testenv.Root(), "models", "dmg-t2"))
	ok("published", "ota", "publish", "--repo", repo, bundleV(t, "2.1.0"))
	ok("site key", "ota", "site-key", "--out", oldKeys)
	ok("approved", "ota", "approve", "--repo", repo, "--key", filepath.Join(oldKeys, "site.pem"), "--site", "s", "--target", bad)
	ok("withdrawn: "+bad, "ota", "downgrade", "--repo", repo, "--target", old, "--from", "2.1.0")
	ok("approved", "ota", "approve", "--repo", repo, "--key", filepath.Join(oldKeys, "site.pem"), "--site", "s", "--target", old)
	ok("revoked", "ota", "revoke", "--repo", repo, "--key", filepath.Join(oldKeys, "site.pem"), "--site", "s", "--target", old)
	ok("site key", "ota", "site-key", "--out", newKeys)
	ok("re-signed: none", "ota", "site-rotate", "--repo", repo, "--key", filepath.Join(newKeys, "site.pem"), "--site", "s")
	var errb bytes.Buffer
	if code := run([]string{"ota", "approve", "--repo", repo, "--key", filepath.Join(oldKeys, "site.pem"), "--site", "s", "--target", old},
		&bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), "site-rotate") {
		t.Fatalf("approval with the rotated-out key: %d %s", code, errb.String())
	}
	r, err := ota.OpenRepo(repo, ota.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Targets(); !c[bad].Withdrawn || strings.Join(c[old].DowngradeFrom, ",") != "2.1.0" {
		t.Fatalf("targets %+v", c)
	}
}
