package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/ota"
)

// TestOTARepositoryCommands runs init, publish (the shipped bundle, under a new repository),
// recall and timestamp as IT would, and reads the result back.
func TestOTARepositoryCommands(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	bundle := filepath.Join(testenv.Root(), "models", "dmg-t2")
	for _, args := range [][]string{
		{"ota", "init", "--repo", repo},
		{"ota", "publish", "--repo", repo, "--group", "ward-a", bundle},
		{"ota", "recall", "--repo", repo, "--target", "dmg-t2-1.0.0.tar"},
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
	c := r.Targets()["dmg-t2-1.0.0.tar"]
	if !c.Withdrawn || strings.Join(c.Groups, ",") != "ward-a" {
		t.Fatalf("target %+v", c)
	}
	var errb bytes.Buffer
	if code := run([]string{"ota", "approve"}, &bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), "not implemented") {
		t.Fatalf("approve: %d %s", code, errb.String())
	}
}
