package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installScript runs scripts/install.sh with args and returns its output; it fails the test
// when the script does.
func installScript(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "scripts", "install.sh")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func fakeBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "midline")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInstallIntoStagingRoot runs scripts/install.sh --root as the current user: --dry-run
// changes nothing; the first run lays out the tree with its modes; a second run keeps the
// site's configuration, replaces the rest and leaves no temporary file; --low-ports adds the
// one capability.
func TestInstallIntoStagingRoot(t *testing.T) {
	repo := repoRoot(t)
	bin := fakeBinary(t)
	root := filepath.Join(t.TempDir(), "root")

	out := installScript(t, "--dry-run", "--root", root, "--binary", bin)
	if !strings.Contains(out, "would run: install -m 0755") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("--dry-run printed:\n%s", out)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("--dry-run created %s (%v)", root, err)
	}

	out = installScript(t, "--root", root, "--binary", bin)
	if !strings.Contains(out, "Next steps") || !strings.Contains(out, "systemctl enable --now midline") {
		t.Fatalf("no next steps:\n%s", out)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
		same string // the repository file it must equal
	}{
		{path: "etc/midline", mode: os.ModeDir | 0o750},
		{path: "etc/midline/midline.yaml", mode: 0o640, same: "firmware/coral.yaml"},
		{path: "var/lib/midline", mode: os.ModeDir | 0o750},
		{path: "usr/local/bin/midline", mode: 0o755},
		{path: "etc/systemd/system/midline.service", mode: 0o644, same: "scripts/midline.service"},
		{path: "usr/share/midline/models/dmg-t2/model.json", mode: 0o644, same: "models/dmg-t2/model.json"},
		{path: "usr/share/midline/models/dmg-t1c/model.json", mode: 0o644, same: "models/dmg-t1c/model.json"},
	} {
		fi, err := os.Stat(filepath.Join(root, tc.path))
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
		if tc.same != "" && !sameFile(t, filepath.Join(root, tc.path), filepath.Join(repo, tc.same)) {
			t.Errorf("%s differs from %s", tc.path, tc.same)
		}
	}
	if !sameFile(t, filepath.Join(root, "usr/local/bin/midline"), bin) {
		t.Error("the installed binary is not the one given")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/midline.service.d")); !os.IsNotExist(err) {
		t.Error("a capability drop-in without --low-ports")
	}

	// Again, after the site edited its configuration, with --low-ports.
	cfg := filepath.Join(root, "etc/midline/midline.yaml")
	site := []byte("device_id: edited-by-the-site\n")
	if err := os.WriteFile(cfg, site, 0o640); err != nil {
		t.Fatal(err)
	}
	out = installScript(t, "--root", root, "--binary", bin, "--low-ports")
	if b, _ := os.ReadFile(cfg); !bytes.Equal(b, site) || !strings.Contains(out, "keeping "+cfg) {
		t.Fatalf("the second run replaced the site's configuration:\n%s", out)
	}
	dropin, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/midline.service.d/low-ports.conf"))
	if err != nil || !strings.Contains(string(dropin), "AmbientCapabilities=CAP_NET_BIND_SERVICE\n") ||
		!strings.Contains(string(dropin), "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n") {
		t.Fatalf("--low-ports drop-in: %v\n%s", err, dropin)
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, "usr/*/*/*.new"))
	more, _ := filepath.Glob(filepath.Join(root, "usr/share/midline/models/*.new"))
	if len(leftovers)+len(more) > 0 {
		t.Errorf("temporary files left: %v %v", leftovers, more)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// TestSystemdUnit: the unit has the settings DESIGN.md and the hardening ask for, and
// systemd-analyze (where installed) verifies it without a word and rates its exposure.
func TestSystemdUnit(t *testing.T) {
	unit := filepath.Join(repoRoot(t), "scripts", "midline.service")
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			settings[k] = v
		}
	}
	for k, want := range map[string]string{
		"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "60", "Restart": "on-failure", "User": "midline",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/midline", "PrivateTmp": "yes",
		"ProtectHome": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "LimitCORE": "0", "MemoryMax": "75%",
		"ExecStart": "/usr/local/bin/midline serve --config /etc/midline/midline.yaml",
	} {
		if got, ok := settings[k]; !ok || got != want {
			t.Errorf("%s=%q, want %q (set: %v)", k, got, want, ok)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified")
	}
	// verify checks that ExecStart's program exists: point it at a stand-in.
	staged := filepath.Join(t.TempDir(), "midline.service")
	text := strings.ReplaceAll(string(b), "/usr/local/bin/midline", fakeBinary(t))
	if err := os.WriteFile(staged, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", staged).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=50", staged).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
	if err != nil {
		t.Errorf("systemd-analyze security --threshold=50: %v\n%s", err, out)
	}
}
