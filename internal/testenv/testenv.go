// Package testenv lets tests ask for the external programs they run against (dcmtk, mosquitto,
// dicom3tools, plastimatch). In CI a missing program fails the test; on a developer's machine the
// test is skipped with the make target that installs it.
package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// SetupTarget is the make target that installs every external program tests use.
const SetupTarget = "make setup"

// InCI reports whether the tests run in CI (CI=true), where nothing may be skipped for a missing
// tool.
func InCI() bool { return os.Getenv("CI") == "true" }

// TB is the part of testing.TB that Require uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

var _ TB = testing.TB(nil)

// Require returns the path of program on PATH. When it is missing the test fails in CI and is
// skipped elsewhere, naming the make target that installs it.
func Require(t TB, program string) string {
	t.Helper()
	return require(t, program, InCI(), lookPath)
}

// lookPath also looks in the sbin folders, where Debian puts daemons such as mosquitto and which
// a non-root PATH often lacks.
func lookPath(program string) (string, error) {
	p, err := exec.LookPath(program)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if q, e := exec.LookPath(filepath.Join(dir, program)); e == nil {
			return q, nil
		}
	}
	return "", err
}

func require(t TB, program string, ci bool, look func(string) (string, error)) string {
	t.Helper()
	p, err := look(program)
	if err == nil {
		return p
	}
	if ci {
		t.Fatalf("%s is required (CI=true) but missing: %v; `%s` installs it", program, err, SetupTarget)
	} else {
		t.Skipf("%s is missing (%v); run `%s` to install it", program, err, SetupTarget)
	}
	return ""
}

// Root is the repository's root folder (tests use its testdata, models and toolchain).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ToolchainPython returns the model toolchain's venv interpreter, which `make setup` makes;
// missing, the test fails in CI and is skipped elsewhere.
func ToolchainPython(t TB) string {
	t.Helper()
	py := filepath.Join(Root(), "scripts", "model", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		if InCI() {
			t.Fatalf("the model toolchain's venv is missing (CI=true): %v; `%s` makes it", err, SetupTarget)
		}
		t.Skipf("the model toolchain's venv is missing (%v); run `%s`", err, SetupTarget)
	}
	return py
}

// ShippedVersion is the version in models/<bundle>/model.json: tests that seed from the shipped
// bundles follow a model release instead of naming its number.
func ShippedVersion(bundle string) string {
	b, err := os.ReadFile(filepath.Join(Root(), "models", bundle, "model.json"))
	if err != nil {
		panic(err)
	}
	var m struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Version == "" {
		panic(fmt.Sprintf("models/%s/model.json: no version (%v)", bundle, err))
	}
	return m.Version
}

// Models copies the named shipped bundles (models/<name>) into a folder of the test's own and
// returns it, for a daemon's models.dir or seed_dir: a test then says which sequences have a
// model (and which series take the no-model path) whatever the release ships.
func Models(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		src := filepath.Join(Root(), "models", name)
		if err := os.CopyFS(filepath.Join(dir, name), os.DirFS(src)); err != nil {
			t.Fatalf("copying the shipped bundle %s: %v", name, err)
		}
	}
	return dir
}

// TestModels are the bundles the daemon's tests run with: T2 and T1C, so that the committed
// phantom study's FLAIR series takes the no-model path.
var TestModels = []string{"dmg-t2", "dmg-t1c"}
