package board

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSimScript(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []SimStep
		err  string
	}{
		{name: "empty", in: "", want: []SimStep{}},
		{name: "heat wave", in: "45/50, 70/82 72/-\n60/65.5", want: []SimStep{{45, 50, false}, {70, 82, false}, {72, 0, true}, {60, 65.5, false}}},
		{name: "no slash", in: "45", err: "step 1"},
		{name: "not a number", in: "45/50 hot/50", err: `step 2 "hot/50"`},
		{name: "implausible", in: "45/500", err: "not a temperature"},
		{name: "NaN", in: "NaN/50", err: "not a temperature"},
		{name: "soc lost is not a thing", in: "-/50", err: "not a temperature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSimScript(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSimScript(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseSimScript(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
	if _, err := ParseSimScript(strings.Repeat("1/1 ", maxSimSteps+1)); err == nil {
		t.Fatal("an over-long script was accepted")
	}
}

// FuzzParseSimScript: whatever parses, written back and parsed again, gives the same steps.
func FuzzParseSimScript(f *testing.F) {
	for _, s := range []string{"45/50 70/82 72/- 60/65", "1e2/1", "-55/150", ",,", "0x10/5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		steps, err := ParseSimScript(s)
		if err != nil {
			return
		}
		var parts []string
		for _, st := range steps {
			parts = append(parts, st.String())
		}
		again, err := ParseSimScript(strings.Join(parts, " "))
		if err != nil || !reflect.DeepEqual(again, steps) {
			t.Fatalf("round trip of %q: %v, %v; want %v", s, again, err, steps)
		}
	})
}
