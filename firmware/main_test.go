package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestVersionReportsRuntimeAndEngines(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"midline  " + version, "tflite   2.14.1", "cpu: available", "edgetpu: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestVersionJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var v versionInfo
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if v.TFLite != "2.14.1" || len(v.Engines) != 2 || v.Engines[0].Kind != "cpu" || !v.Engines[0].Available {
		t.Errorf("version JSON = %+v", v)
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"version", "--bogus"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
		if !strings.Contains(errb.String(), "usage") {
			t.Errorf("run(%q) printed no usage: %q", args, errb.String())
		}
	}
}

func TestBoardPrintsTheSimulatedBoard(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"board", "--profile", "sim"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "sim") || !strings.Contains(strings.ToLower(out.String()), "fan") {
		t.Errorf("board output:\n%s", out.String())
	}
	if code := run([]string{"board", "--profile", "toaster"}, &out, &errb); code != 2 {
		t.Errorf("unknown profile: exit %d, want 2", code)
	}
}
