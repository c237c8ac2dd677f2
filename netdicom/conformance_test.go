package netdicom

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConformanceStatementIsCurrent fails when CONFORMANCE.md differs from what the tables
// generate; `go test ./netdicom -run Conformance -update` rewrites it.
func TestConformanceStatementIsCurrent(t *testing.T) {
	var b strings.Builder
	if err := WriteConformance(&b, "(this build)"); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("CONFORMANCE.md", []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("CONFORMANCE.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != b.String() {
		t.Error("CONFORMANCE.md is stale: run go test ./netdicom -run Conformance -update")
	}
}
