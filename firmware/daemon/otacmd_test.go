package daemon

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseOTACommand(t *testing.T) {
	ok := map[string]OTACommand{
		`{"schema":"midline.ota-cmd/1","target":"dmg-t2-1.2.0.tar","now":true}`:   {Schema: OTACommandSchema, Target: "dmg-t2-1.2.0.tar", Now: true},
		`{"schema":"midline.ota-cmd/1","action":"update","target":"x.tar"}`:       {Schema: OTACommandSchema, Action: "update", Target: "x.tar"},
		` {"schema":"midline.ota-cmd/1","action":"check"}` + "\n":                 {Schema: OTACommandSchema, Action: "check"},
		`{"schema":"midline.ota-cmd/1","action":"check","target":"","now":false}`: {Schema: OTACommandSchema, Action: "check"},
	}
	for raw, want := range ok {
		got, err := ParseOTACommand([]byte(raw))
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", raw, got, err, want)
		}
	}
	refused := map[string]string{
		`{"schema":"midline.ota-cmd/1","action":"rollback","target":"x.tar"}`: `action "rollback"`,
		`{"schema":"midline.ota-cmd/1","taget":"x.tar"}`:                      `unknown field "taget"`,
		`{"schema":"midline.ota-cmd/1","target":"x.tar","nwo":true}`:          `unknown field "nwo"`,
		`{"schema":"midline.ota-cmd/2","target":"x.tar"}`:                     `schema "midline.ota-cmd/2"`,
		`{"target":"x.tar"}`:                                           `schema ""`,
		`{"schema":"midline.ota-cmd/1","now":"yes"}`:                   `cannot unmarshal string`,
		`{"schema":"midline.ota-cmd/1"}{"schema":"midline.ota-cmd/1"}`: `data after the object`,
		`{"schema":"midline.ota-cmd/1"}}`:                              `data after the object`,
		`update x.tar`:                                                 `invalid character`,
		``:                                                             `EOF`,
		`{"schema":"midline.ota-cmd/1","target":"` + strings.Repeat("a", MaxOTACommand) + `"}`: `more than 4096`,
	}
	for raw, want := range refused {
		_, err := ParseOTACommand([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80s: error %v, want one containing %q", raw, err, want)
		}
	}
}

// FuzzParseOTACommand: an ota/cmd payload never panics, and a command it accepts is of the
// schema, has a known action and survives a marshal and parse unchanged.
func FuzzParseOTACommand(f *testing.F) {
	f.Add([]byte(`{"schema":"midline.ota-cmd/1","action":"update","target":"dmg-t2-1.2.0.tar","now":true}`))
	f.Add([]byte(`{"schema":"midline.ota-cmd/1","action":"check"}`))
	f.Add([]byte(`{"schema":"midline.ota-cmd/1","action":"rollback"}`))
	f.Add([]byte(`{"schema":"midline.ota-cmd/1","target":"\u00e9\ud800"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cmd, err := ParseOTACommand(raw)
		if err != nil {
			return
		}
		if len(raw) > MaxOTACommand || cmd.Schema != OTACommandSchema || (cmd.Action != "" && cmd.Action != "update" && cmd.Action != "check") {
			t.Fatalf("accepted %+v from %d bytes", cmd, len(raw))
		}
		b, err := json.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseOTACommand(b)
		if err != nil || again != cmd {
			t.Fatalf("%+v marshals to %s, which parses to %+v, %v", cmd, b, again, err)
		}
	})
}
