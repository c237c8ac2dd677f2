package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recorder is a TB that records instead of stopping the test.
type recorder struct{ fatal, skip string }

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skipf(format string, a ...any)  { r.skip = fmt.Sprintf(format, a...) }

func missing(string) (string, error) { return "", errors.New("not found") }

func TestMissingToolFailsInCIAndSkipsElsewhere(t *testing.T) {
	var ci, local recorder
	require(&ci, "storescu", true, missing)
	require(&local, "storescu", false, missing)
	if ci.fatal == "" || ci.skip != "" || !strings.Contains(ci.fatal, SetupTarget) {
		t.Errorf("in CI: fatal %q, skip %q; want a failure naming %q", ci.fatal, ci.skip, SetupTarget)
	}
	if local.skip == "" || local.fatal != "" || !strings.Contains(local.skip, SetupTarget) {
		t.Errorf("locally: fatal %q, skip %q; want a skip naming %q", local.fatal, local.skip, SetupTarget)
	}
}

func TestPresentToolIsReturned(t *testing.T) {
	var r recorder
	found := func(p string) (string, error) { return "/usr/bin/" + p, nil }
	if got := require(&r, "echoscu", true, found); got != "/usr/bin/echoscu" || r.fatal != "" || r.skip != "" {
		t.Errorf("require = %q (fatal %q, skip %q)", got, r.fatal, r.skip)
	}
}

// TestSetupInstalledThePeers checks what `make setup` promises: every external program the
// project's tests and demo run against. In CI a missing one fails here first, by name.
func TestSetupInstalledThePeers(t *testing.T) {
	for _, p := range []string{"echoscu", "storescu", "storescp", "dcmdump", "dciodvfy", "plastimatch",
		"mosquitto", "mosquitto_sub", "mosquitto_pub"} {
		t.Run(p, func(t *testing.T) { Require(t, p) })
	}
}
