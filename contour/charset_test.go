package contour

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/midline-rt/midline/internal/synthmr"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/preproc"
)

// TestCharacterSetsSurviveThePlanningSystemsView copies the Patient and Study attributes of
// pydicom's public character-set test files (pydicom/data/charset_files, shipped in the pydicom
// wheel; their provenance is pydicom's FileInfo.txt beside them) into RT Structure Sets: in the
// source's own character set (the default: every file), and transcoded to UTF-8 (ISO_IR 192)
// and Latin-1 (ISO_IR 100) where that is safe, and has pydicom decode both sides: the names
// must read the same, or the writer must refuse.
func TestCharacterSetsSurviveThePlanningSystemsView(t *testing.T) {
	py := testenv.ToolchainPython(t)
	out, err := exec.Command(py, "-c", "import pydicom.data, os; print(os.path.dirname(pydicom.data.__file__))").Output()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "charset_files", "chr*.dcm"))
	if len(files) < 10 {
		t.Fatalf("found %d of pydicom's charset files", len(files))
	}
	dir := t.TempDir()
	paths, err := synthmr.Write(dir, synthmr.Spec{Rows: 8, Cols: 8, Slices: 2, Spacing: [2]float64{1, 1},
		IOP: [6]float64{1, 0, 0, 0, 1, 0}, Step: 2})
	if err != nil {
		t.Fatal(err)
	}
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type pair struct{ Source, Ours, Charset string }
	var pairs []pair
	for _, f := range files {
		ds, err := dicom.ParseFile(f, nil, dicom.SkipPixelData())
		if err != nil {
			t.Errorf("%s: suyashkumar/dicom cannot parse it: %v", filepath.Base(f), err)
			continue
		}
		var ps []*dicom.Element
		for _, e := range ds.Elements {
			if e.Tag.Group == 0x0010 || e.Tag == tag.SpecificCharacterSet {
				ps = append(ps, e)
			}
		}
		src := *v
		src.Header.PatientStudy = ps
		text, err := ReadSourceText(f)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		for _, cs := range []string{CharsetSource, CharsetUTF8, CharsetLatin1} {
			ss := &StructureSet{Source: &src, Revision: 1, Created: time.Unix(0, 0).UTC(), Charset: cs, Text: text,
				UIDs: DeriveUIDs(UIDInputs{SourceSOPInstanceUIDs: v.SOPInstanceUIDs, Config: f + cs}),
				Prov: Provenance{DeviceID: "t", ModelName: "m", ModelVersion: "0"}}
			var b bytes.Buffer
			err := WriteRTStruct(&b, ss)
			if cs != CharsetSource && errors.Is(err, ErrCharset) {
				t.Logf("%s: not representable in %s: refused (%v)", filepath.Base(f), cs, err)
				continue
			}
			if err != nil {
				t.Fatalf("%s as %s: %v", filepath.Base(f), cs, err)
			}
			p := filepath.Join(dir, filepath.Base(f)+"."+strings.ReplaceAll(cs, " ", "_")+".dcm")
			os.WriteFile(p, b.Bytes(), 0o644)
			pairs = append(pairs, pair{f, p, cs})
		}
	}
	in, _ := json.Marshal(pairs)
	script := `
import json, sys, pydicom
out = []
for p in json.load(sys.stdin):
    a = pydicom.dcmread(p["Source"], stop_before_pixels=True)
    b = pydicom.dcmread(p["Ours"])
    out.append([str(a.get("PatientName", "")), str(b.get("PatientName", "")), str(b.get("SpecificCharacterSet", ""))])
print(json.dumps(out))`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v\n%s", err, errOut(err))
	}
	var got [][3]any
	if err := json.Unmarshal(res, &got); err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		name := filepath.Base(pairs[i].Source) + " as " + cmp.Or(pairs[i].Charset, "the source's own")
		t.Logf("%s: %q -> %q", name, g[0], g[1])
		if g[0] != g[1] {
			t.Errorf("%s: PatientName reads %q in the source and %q in ours", name, g[0], g[1])
		}
	}
}

func errOut(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}
