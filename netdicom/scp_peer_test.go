package netdicom

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEchoscu(t *testing.T) {
	ts := startServer(t, Options{})
	out := mustDcmtk(t, "echoscu", "-v", "-aet", "SCANNER", "-aec", "MIDLINE", "127.0.0.1", ts.port)
	if !strings.Contains(out, "Received Echo Response (Success)") {
		t.Errorf("echoscu output lacks a successful echo:\n%s", out)
	}
}

// TestStorescuTransferSyntaxes sends a phantom series with storescu proposing each transfer
// syntax Midline accepts, then checks every stored file against what was sent, data set by data
// set after re-encoding both with dcmconv.
func TestStorescuTransferSyntaxes(t *testing.T) {
	src := t.TempDir()
	series := uidFor(t.Name())
	files := phantom{series: series, n: 3, rows: 64, cols: 48}.write(t, src)
	convert := func(prog string, args ...string) []string {
		dir := t.TempDir()
		var out []string
		for _, f := range files {
			o := filepath.Join(dir, filepath.Base(f))
			mustDcmtk(t, prog, append(args, f, o)...)
			out = append(out, o)
		}
		return out
	}
	rleFiles := convert("dcmcrle")
	bigFiles := convert("dcmconv", "+tb")
	for _, tc := range []struct {
		name   string
		flags  []string
		files  []string
		wantTS string
	}{
		{"implicit", []string{"-xi"}, files, ImplicitVRLittleEndian},
		{"explicit-little", []string{"-xe"}, files, ExplicitVRLittleEndian},
		{"explicit-big", []string{"-xb"}, bigFiles, ExplicitVRBigEndian},
		{"deflated", []string{"-xd"}, files, DeflatedExplicitVRLE},
		{"rle", []string{"-xr"}, rleFiles, RLELossless},
		{"max-pdu-4096", []string{"-xe", "--max-pdu", "4096"}, files, ExplicitVRLittleEndian},
		{"max-pdu-131072", []string{"-xe", "--max-pdu", "131072"}, files, ExplicitVRLittleEndian},
		{"our-max-pdu-4096", []string{"-xe"}, files, ExplicitVRLittleEndian},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{}
			if tc.name == "our-max-pdu-4096" {
				o.MaxPDU = 4096
			}
			ts := startServer(t, o)
			args := append([]string{"-aet", "SCANNER", "-aec", "MIDLINE"}, tc.flags...)
			args = append(append(args, "127.0.0.1", ts.port), tc.files...)
			mustDcmtk(t, "storescu", args...)
			for i, f := range tc.files {
				stored := ts.storedPath(series, phantom{series: series}.instanceUID(i))
				if got := fileMeta(t, stored).TransferSyntax; got != tc.wantTS {
					t.Errorf("%s stored in %s, want %s", stored, got, tc.wantTS)
				}
				sameDataSet(t, f, stored, tc.wantTS == RLELossless)
			}
		})
	}
}

// TestStorescuParallelLargeSeries runs four storescu processes at once, one sending a
// 300-instance series, and checks the spool holds every instance intact.
func TestStorescuParallelLargeSeries(t *testing.T) {
	ts := startServer(t, Options{SeriesTimeout: time.Hour})
	type job struct {
		p     phantom
		files []string
	}
	var jobs []job
	for i, n := range []int{300, 20, 20, 20} {
		p := phantom{series: uidFor(t.Name() + string(rune('a'+i))), n: n, rows: 32, cols: 32}
		jobs = append(jobs, job{p, p.write(t, t.TempDir())})
	}
	var wg sync.WaitGroup
	errs := make([]string, len(jobs))
	for i, j := range jobs {
		wg.Go(func() {
			dir := filepath.Dir(j.files[0])
			out, err := dcmtk(t, 3*time.Minute, "storescu", "-aet", "SCANNER", "-aec", "MIDLINE", "+sd", "127.0.0.1", ts.port, dir)
			if err != nil {
				errs[i] = err.Error() + "\n" + out
			}
		})
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Fatalf("storescu %d: %s", i, e)
		}
	}
	for _, j := range jobs {
		for i, f := range j.files {
			stored := ts.storedPath(j.p.series, j.p.instanceUID(i))
			want := dataSetBytes(t, f)
			got := dataSetBytes(t, stored)
			if string(want) != string(got) {
				t.Fatalf("%s differs from %s", stored, f)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(ts.dir, "spool", "tmp")); err != nil {
		t.Fatal(err)
	}
}
