package netdicom

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStorescuSetAsideAndRefusedClasses sends a Secondary Capture (set aside: stored, never
// assembled) and a CT image (refused per presentation context) with storescu.
func TestStorescuSetAsideAndRefusedClasses(t *testing.T) {
	ts := startServer(t, Options{SeriesTimeout: 20 * time.Millisecond})
	sc := phantom{series: uidFor("sc"), n: 1, rows: 8, cols: 8, sopClass: "1.2.840.10008.5.1.4.1.1.7"}
	scFile := sc.write(t, t.TempDir())[0]
	mustDcmtk(t, "storescu", "-aec", "MIDLINE", "127.0.0.1", ts.port, scFile)
	aside := filepath.Join(ts.dir, "spool", spoolAside, sc.series, sc.instanceUID(0)+".dcm")
	if string(dataSetBytes(t, aside)) != string(dataSetBytes(t, scFile)) {
		t.Errorf("secondary capture not set aside intact")
	}
	ct := phantom{series: uidFor("ct"), n: 1, rows: 8, cols: 8, sopClass: "1.2.840.10008.5.1.4.1.1.2"}
	ctFile := ct.write(t, t.TempDir())[0]
	out, err := dcmtk(t, 30*time.Second, "storescu", "-aec", "MIDLINE", "127.0.0.1", ts.port, ctFile)
	if err == nil && !strings.Contains(out, "No presentation context") && !strings.Contains(out, "no presentation context") {
		t.Errorf("storescu sent a CT image without complaint:\n%s", out)
	}
	if files, _ := filepath.Glob(filepath.Join(ts.dir, "spool", "*", ct.series, "*")); len(files) != 0 {
		t.Errorf("refused class stored: %v", files)
	}
	time.Sleep(100 * time.Millisecond)
	if evs := ts.events(); len(evs) != 0 {
		t.Errorf("set-aside or refused instances made series events: %+v", evs)
	}
	if _, err := os.Stat(filepath.Join(ts.dir, "spool", spoolSeries, sc.series)); !os.IsNotExist(err) {
		t.Errorf("secondary capture entered series assembly")
	}
}
