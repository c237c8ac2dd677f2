package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	for _, name := range []string{"demo.yaml", "coral.yaml"} {
		var out, errb bytes.Buffer
		if code := run([]string{"config", "check", name}, &out, &errb); code != 0 {
			t.Fatalf("config check %s = %d: %s", name, code, errb.String())
		}
		if !strings.HasPrefix(out.String(), "ok: "+name+"\n") || !strings.Contains(out.String(), "engine") {
			t.Errorf("config check %s printed %q", name, out.String())
		}
	}
}

func TestConfigCheckReportsEveryError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "device_id: a\nsite: b\nboard: {profile: sim}\ndestinations:\n  - {name: x, ae_title: X, host: h, port: 0}\nhttp: {listen: ':80'}\n"
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"config", "check", p}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"destinations[0].port: must be 1..65535", "http.token: required"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if code := run([]string{"config"}, &out, &errb); code != 2 {
		t.Errorf("config without check = %d, want 2", code)
	}
}
