package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/peers"
)

// TestServeKeepsDailyLogFiles: midline serve writes its log to state_dir/logs beside stderr, in
// the file of the UTC day; SIGTERM stops it (exit 0).
func TestServeKeepsDailyLogFiles(t *testing.T) {
	state := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "midline.yaml")
	text := fmt.Sprintf("device_id: log-box\nsite: s\nstate_dir: %s\ndicom:\n  listen: 127.0.0.1:%d\nhttp:\n  listen: 127.0.0.1:%d\n"+
		"engine:\n  threads: 1\nboard:\n  profile: sim\n", state, peers.FreePort(t), peers.FreePort(t))
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		errs string
	}
	done := make(chan result, 1)
	go func() {
		code, _, errs := runCLI("serve", "--config", cfgPath)
		done <- result{code, errs}
	}()
	path := filepath.Join(state, "logs", "midline-"+time.Now().UTC().Format("2006-01-02")+".log")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), "daemon: model ready") {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("serve exited %d before logging a model: %s", r.code, r.errs)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no 'model ready' line in the day's log file")
		}
	}
	time.Sleep(200 * time.Millisecond) // serve's signal handler is set before the models load
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	r := <-done
	b, _ := os.ReadFile(path)
	first := strings.SplitN(string(b), "\n", 2)[0]
	if r.code != 0 || first == "" || !strings.Contains(r.errs, first) {
		t.Fatalf("exit %d; log file %q; stderr %q: want the same lines in both", r.code, b, r.errs)
	}
}
