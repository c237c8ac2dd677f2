package netdicom

import (
	"flag"
	"os"
	"reflect"
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

// TestReceivedAttributesCoverHeadInfo: the conformance statement's table of attributes read
// from received IODs names every field HeadInfo has, so a new one cannot go undocumented.
func TestReceivedAttributesCoverHeadInfo(t *testing.T) {
	documented := map[string]bool{}
	for _, a := range ReceivedAttributes {
		documented[a.Name] = true
	}
	ty := reflect.TypeFor[HeadInfo]()
	for i := range ty.NumField() {
		if name := ty.Field(i).Name; !documented[name] {
			t.Errorf("HeadInfo.%s is read from received data sets but missing from ReceivedAttributes", name)
		}
	}
	if len(documented) != ty.NumField() {
		t.Errorf("ReceivedAttributes names %d attributes, HeadInfo has %d fields", len(documented), ty.NumField())
	}
}

// TestConformanceHasPS32Sections checks the statement carries PS3.2 Annex A's sections, in order.
func TestConformanceHasPS32Sections(t *testing.T) {
	var b strings.Builder
	if err := WriteConformance(&b, "test"); err != nil {
		t.Fatal(err)
	}
	doc, at := b.String(), 0
	for _, h := range []string{"## 1 Overview", "## 2 Table of contents", "## 3 Introduction", "## 4 Networking",
		"### 4.1 Implementation model", "### 4.2 AE specifications", "#### 4.2.1 Association policies", "#### 4.2.2 Association initiation policy",
		"#### 4.2.3 Association acceptance policy", "### 4.3 Network interfaces", "### 4.4 Configuration",
		"## 5 Media interchange", "## 6 Support of character sets", "## 7 Security", "## 8 Annexes"} {
		i := strings.Index(doc[at:], "\n"+h)
		if i < 0 {
			t.Fatalf("no %q after offset %d", h, at)
		}
		at += i + 1
	}
}
