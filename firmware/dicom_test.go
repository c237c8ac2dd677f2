package main

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/midline-rt/midline/netdicom"
	"github.com/midline-rt/midline/netdicom/netdicomtest"
)

func TestEchoAndSendCommands(t *testing.T) {
	s, err := netdicom.NewServer(netdicom.Options{AETitle: "MIDLINE", StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := netdicomtest.Serve(t, s)
	var out, errb bytes.Buffer
	if code := run([]string{"echo", "--aec", "MIDLINE", addr}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Success") {
		t.Fatalf("echo: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	files, _ := filepath.Glob("../netdicom/testdata/mr_small_*.dcm")
	if code := run(append([]string{"send", "--aet", "CLI", "--aec", "MIDLINE", addr}, files...), &out, &errb); code != 0 {
		t.Fatalf("send: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "5 sent, 0 failed") {
		t.Errorf("send output:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"send", "--aec", "MIDLINE", addr, "../netdicom/testdata"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "5 sent, 0 failed") || !strings.Contains(errb.String(), "skipped") {
		t.Errorf("send of a folder with non-DICOM files: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := run([]string{"send", "--aec", "OTHER", addr, files[0]}, &out, &errb); code != 1 {
		t.Errorf("send to the wrong AE title: exit %d, want 1", code)
	}
}
