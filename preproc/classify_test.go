package preproc

import (
	"strconv"

	"context"
	"encoding/json"
	"fmt"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"os"
	"slices"
	"strings"
	"testing"
)

type corpusEntry struct {
	Name    string      `json:"name"`
	Expect  Label       `json:"expect"`
	Unfit   bool        `json:"unfit"`
	Flagged bool        `json:"flagged"`
	Header  Acquisition `json:"header"`
}

func readCorpus(t *testing.T) []corpusEntry {
	t.Helper()
	b, err := os.ReadFile("testdata/classify/corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Schema string        `json:"schema"`
		Series []corpusEntry `json:"series"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c.Series
}

// Every corpus header gets its expected label; the confusion table is logged.
func TestClassifyCorpus(t *testing.T) {
	corpus := readCorpus(t)
	if len(corpus) < 30 {
		t.Fatalf("corpus has %d headers, want at least 30", len(corpus))
	}
	c, err := NewClassifier(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	labels := []Label{T2, FLAIR, T1C, Unknown}
	confusion := map[[2]Label]int{}
	for _, e := range corpus {
		got := c.Classify(e.Header)
		confusion[[2]Label{e.Expect, got.Label}]++
		t.Logf("%-52s %-7s %s", e.Name, got.Label, got.Reason)
		if got.Label != e.Expect {
			t.Errorf("%s: %s (%s), want %s", e.Name, got.Label, got.Reason, e.Expect)
		}
		if got.Unfit != e.Unfit {
			t.Errorf("%s: unfit %v, want %v (%s)", e.Name, got.Unfit, e.Unfit, got.Reason)
		}
		if flagged := slices.Contains(got.Flags, FlagNo3DDistortionCorrection); flagged != (e.Flagged || hasAny(e.Header.ImageType, "ND", "DIS2D")) {
			t.Errorf("%s: flags %v", e.Name, got.Flags)
		}
		if got.Reason == "" {
			t.Errorf("%s: no reason", e.Name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "confusion (rows: expected, columns: classified), %d headers\n%-9s", len(corpus), "")
	for _, l := range labels {
		fmt.Fprintf(&b, "%9s", l)
	}
	for _, want := range labels {
		fmt.Fprintf(&b, "\n%-9s", want)
		for _, got := range labels {
			fmt.Fprintf(&b, "%9d", confusion[[2]Label{want, got}])
		}
	}
	t.Log(b.String())
}

func TestClassifyPhantom(t *testing.T) {
	c, err := NewClassifier(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []Label{T2, FLAIR, T1C} {
		v, err := LoadSeries(context.Background(), phantomPaths(t, string(seq)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := c.Classify(v.Header.Acquisition)
		if got.Label != seq {
			t.Errorf("phantom %s classified %s: %s", seq, got.Label, got.Reason)
		}
		if !slices.Contains(got.Flags, FlagNo3DDistortionCorrection) {
			t.Errorf("phantom %s (ImageType ND) not flagged: %v", seq, got.Flags)
		}
	}
}

func TestClassifierRules(t *testing.T) {
	r := DefaultRules()
	r.Names[T2] = append(r.Names[T2], `(`)
	if _, err := NewClassifier(r); err == nil || !strings.Contains(err.Error(), "names T2") {
		t.Errorf("bad pattern: %v", err)
	}
	flair := Acquisition{Modality: "MR", ScanningSequence: []string{"SE", "IR"}, RepetitionTime: 9000, EchoTime: 90, InversionTime: 2500}
	c0, _ := NewClassifier(DefaultRules())
	for _, tc := range []struct {
		agent, desc string
		flagged     bool
	}{{"", "t2_tirm_tra_dark-fluid", false}, {"Gadovist", "t2_tirm_tra_dark-fluid", true}, {"", "Ax T2 FLAIR +C", true}, {"", "Ax T2 FLAIR pre", false}} {
		flair.ContrastBolusAgent, flair.SeriesDescription = tc.agent, tc.desc
		got := c0.Classify(flair)
		if got.Label != FLAIR || slices.Contains(got.Flags, FlagAfterContrast) != tc.flagged {
			t.Errorf("%q %q: %s %v", tc.agent, tc.desc, got.Label, got.Flags)
		}
	}
	if _, err := NewClassifier(Rules{FLAIRMinTI: 1500}); err == nil {
		t.Error("rules with zero thresholds accepted")
	}
	// A site whose FLAIR uses TI 1300 ms moves the bound; the same header flips label.
	h := Acquisition{Modality: "MR", ScanningSequence: []string{"SE", "IR"}, RepetitionTime: 8000, EchoTime: 110, InversionTime: 1300, SeriesDescription: "ax flair"}
	c, _ := NewClassifier(DefaultRules())
	if got := c.Classify(h); got.Label != Unknown {
		t.Errorf("TI 1300 with default rules: %s", got.Label)
	}
	r = DefaultRules()
	r.FLAIRMinTI = 1200
	c, _ = NewClassifier(r)
	if got := c.Classify(h); got.Label != FLAIR {
		t.Errorf("TI 1300 with flair_min_ti_ms 1200: %s (%s)", got.Label, got.Reason)
	}
}

// Each corpus header, written as DICOM elements and read back by the loader's attribute
// extraction, classifies the same: the corpus stands for real headers.
func TestClassifyCorpusAsDICOMElements(t *testing.T) {
	c, _ := NewClassifier(DefaultRules())
	for _, e := range readCorpus(t) {
		a := e.Header
		elems := []*dicom.Element{el(t, tag.Modality, []string{a.Modality})}
		add := func(tg tag.Tag, v []string) {
			if len(v) > 0 && !(len(v) == 1 && v[0] == "") {
				elems = append(elems, el(t, tg, v))
			}
		}
		num := func(tg tag.Tag, x float64) {
			if x != 0 {
				add(tg, []string{strconv.FormatFloat(x, 'g', -1, 64)})
			}
		}
		add(tag.Manufacturer, []string{a.Manufacturer})
		add(tag.SeriesDescription, []string{a.SeriesDescription})
		add(tag.ProtocolName, []string{a.ProtocolName})
		add(tag.SequenceName, []string{a.SequenceName})
		add(tag.ImageType, a.ImageType)
		add(tag.ScanningSequence, a.ScanningSequence)
		add(tag.SequenceVariant, a.SequenceVariant)
		add(tag.MRAcquisitionType, []string{a.MRAcquisitionType})
		add(tag.ContrastBolusAgent, []string{a.ContrastBolusAgent})
		num(tag.RepetitionTime, a.RepetitionTime)
		num(tag.EchoTime, a.EchoTime)
		num(tag.InversionTime, a.InversionTime)
		if a.ContrastAdministered != "" {
			elems = append(elems, el(t, tag.ContrastBolusUsageSequence, [][]*dicom.Element{{el(t, tag.ContrastBolusAgentAdministered, []string{a.ContrastAdministered})}}))
		}
		back := acquisition(elems)
		if got, want := c.Classify(back), c.Classify(a); got.Label != want.Label || got.Reason != want.Reason {
			t.Errorf("%s: from DICOM %s (%s), from the corpus %s (%s)", e.Name, got.Label, got.Reason, want.Label, want.Reason)
		}
	}
}

// A localizer series (three orientations) cannot load as a volume, but its header classifies
// it as unfit before any pixel is read.
func TestReadHeaderClassifiesLocalizer(t *testing.T) {
	s := defaultSynth()
	s.n = 3
	s.iopOf = func(i int) [6]float64 {
		return [][6]float64{{1, 0, 0, 0, 1, 0}, {1, 0, 0, 0, 0, -1}, {0, 1, 0, 0, 0, -1}}[i]
	}
	s.extra = func(int) []*dicom.Element {
		return []*dicom.Element{el(t, tag.ProtocolName, []string{"localizer"})}
	}
	paths := s.write(t, t.TempDir())
	if _, err := LoadSeries(context.Background(), paths, Options{}); err == nil {
		t.Fatal("a three-plane series loaded as a volume")
	}
	h, err := ReadHeader(paths[0], Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewClassifier(DefaultRules())
	if got := c.Classify(h.Acquisition); !got.Unfit || got.Label != Unknown {
		t.Errorf("localizer: %+v", got)
	}
}
