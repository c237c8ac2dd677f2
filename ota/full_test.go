package ota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/internal/testenv"
)

// The state-folder-full test runs the update in a child process in its own user and mount
// namespaces, on a small tmpfs mounted over its state folder: a real full file system, with
// no privilege needed and nothing of it visible outside the child.
const fullEnv = "MIDLINE_OTA_FULL_CHILD"

type fullSpec struct {
	RepoURL, Root, State, Target string
	Free                         int64 // bytes left free before the update starts
}

// fullResult is what the child saw.
type fullResult struct {
	Phase     Phase
	Err       string
	NoSpace   bool
	Active    string // the active T2 model's version, loaded and self-tested
	Slots     SeqState
	Staging   int // files left in staging
	FreeAfter int64
	Setup     string // a setup failure
}

func runFullChild(raw string) int {
	var c fullSpec
	var res fullResult
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		res.Setup = err.Error()
		return 0
	}
	syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "")
	if err := syscall.Mount("tmpfs", c.State, "tmpfs", 0, "size=4m"); err != nil {
		res.Setup = "mount tmpfs: " + err.Error()
		return 0
	}
	s, err := OpenSlots(filepath.Join(c.State, "models"), os.DirFS(filepath.Join(testenv.Root(), "models")))
	if err == nil {
		err = fill(c.State, c.Free)
	}
	if err != nil {
		res.Setup = err.Error()
		return 0
	}
	root, _ := os.ReadFile(c.Root)
	var last Report
	m, _, err := NewManager(s, ManagerOptions{Trust: Trust{RepoURL: c.RepoURL, TrustedRoot: root, MetaDir: filepath.Join(c.State, "ota", "tuf")},
		StateDir: c.State, Group: "ward-a", Engine: accel.Options{Threads: 1}, TrialJobs: 1, Report: func(r Report) { last = r }})
	if err == nil {
		var targets map[string]Target
		if targets, err = m.Check(); err == nil {
			_, err = m.Prepare(context.Background(), targets, c.Target)
		}
	}
	res.Phase = last.Phase
	if err != nil {
		res.Err, res.NoSpace = err.Error(), errors.Is(err, ErrNoSpace)
	}
	again, err := OpenSlots(filepath.Join(c.State, "models"), nil) // as the daemon's next start reads it
	if err != nil {
		res.Setup = err.Error()
		return 0
	}
	res.Slots = *again.State.Sequences["T2"]
	res.Active, err = selfTested(filepath.Join(c.State, "models", "T2", "active"))
	if err != nil {
		res.Setup = err.Error()
	}
	entries, _ := os.ReadDir(filepath.Join(c.State, "ota", "staging"))
	res.Staging = len(entries)
	res.FreeAfter = free(c.State)
	return 0
}

func free(dir string) int64 {
	var st syscall.Statfs_t
	syscall.Statfs(dir, &st)
	return int64(st.Bavail) * int64(st.Bsize)
}

// fill leaves about `left` bytes free in dir's file system.
func fill(dir string, left int64) error {
	n := free(dir) - left
	if n <= 0 {
		return fmt.Errorf("only %d bytes free before filling", free(dir))
	}
	return os.WriteFile(filepath.Join(dir, "filler"), make([]byte, n), 0o600)
}

func selfTested(dir string) (string, error) {
	b, err := accel.LoadBundle(dir)
	if err != nil {
		return "", err
	}
	m, err := b.Open(accel.Options{Threads: 1})
	if err != nil {
		return "", err
	}
	defer m.Close()
	return b.Meta.Version, b.SelfTest(context.Background(), m)
}

// TestStateFolderFull: an update that finds the state folder without room for its download,
// or that fills it while unpacking, is rejected with ErrNoSpace; the running model, the
// committed state and the active link stay as they were, and the space the attempt took is
// given back.
func TestStateFolderFull(t *testing.T) {
	r := newRig(t)
	name := r.publish(bundle(t, "2.1.0", nil))
	length := r.repo.targets.Signed.Targets[name].Length
	rootPath := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(rootPath, r.trust, 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(r.repo.Served())))
	defer srv.Close()
	for _, tt := range []struct {
		name   string
		free   int64
		detail string
	}{
		{"no room for the download", length / 2, "bytes free, the download needs"},
		{"room for the download, not the unpack", length + length/2, "while unpacking"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, _ := json.Marshal(fullSpec{RepoURL: srv.URL, Root: rootPath, State: t.TempDir(), Target: name, Free: tt.free})
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fullEnv+"="+string(spec))
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}}
			out, err := cmd.Output()
			if err != nil {
				if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
					t.Skipf("no user namespaces here: %v", err)
				}
				t.Fatalf("child: %v %s", err, out)
			}
			var res fullResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("child said %q: %v", out, err)
			}
			t.Logf("%+v", res)
			if res.Setup != "" {
				t.Fatal(res.Setup)
			}
			if res.Phase != PhaseRejected || !res.NoSpace || !strings.Contains(res.Err, tt.detail) {
				t.Fatalf("want rejected with ErrNoSpace (%q): %+v", tt.detail, res)
			}
			if res.Active != shippedT2 || res.Slots.Committed.Version != shippedT2 || res.Slots.Committed.Slot != "a" ||
				res.Slots.Trial != nil || res.Slots.Shadow != nil || res.Slots.Highest != shippedT2 {
				t.Fatalf("the running model changed: %+v", res)
			}
			if res.Staging != 0 || res.FreeAfter < tt.free-64<<10 {
				t.Fatalf("the attempt kept its space: %d staging files, %d bytes free (had %d)", res.Staging, res.FreeAfter, tt.free)
			}
		})
	}
}
