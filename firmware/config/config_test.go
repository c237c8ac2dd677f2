package config

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/preproc"
)

// minimal is the smallest valid file; the table rows add one line each.
const minimal = "device_id: box-1\nsite: s\nboard:\n  profile: sim\n"

func TestExamples(t *testing.T) {
	for _, name := range []string{"demo.yaml", "coral.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(filepath.Join("..", name))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Destinations) != 1 || c.Destinations[0].Profile.HoleMode != contour.HolesSeparate {
				t.Errorf("destinations = %+v", c.Destinations)
			}
		})
	}
}

func TestDefaultsAndOverrides(t *testing.T) {
	c, err := Parse([]byte(minimal + "classification:\n  flair_min_ti_ms: 1500\n  names:\n    T2: ['\\bt2w']\n" +
		"destinations:\n  - {name: tps, ae_title: TPS, host: tps.example, port: 104}\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := preproc.DefaultRules()
	if c.Classification.FLAIRMinTI != 1500 || c.Classification.STIRMaxTI != def.STIRMaxTI {
		t.Errorf("classification thresholds: %+v", c.Classification)
	}
	if got := c.Classification.Names; len(got[preproc.T2]) != 1 || len(got[preproc.FLAIR]) != len(def.Names[preproc.FLAIR]) {
		t.Errorf("names: an override replaces its own list and keeps the others: %v", got)
	}
	if c.MQTT.TopicPrefix != "midline/v1" || c.HTTP.Listen != "127.0.0.1:8080" || c.DICOM.SeriesTimeout != 10*time.Second {
		t.Errorf("defaults lost: %+v %+v", c.MQTT, c.HTTP)
	}
	if c.Destinations[0].Profile.HoleMode != contour.HolesSeparate || c.Models.Dir != "/var/lib/midline/models" {
		t.Errorf("derived defaults: %+v %+v", c.Destinations[0].Profile, c.Models)
	}
}

// TestThreadCount: engine.threads 0 (the default) runs one thread per core, never TFLite's own
// default for an unset count (one thread); a set count is kept.
func TestThreadCount(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Engine.ThreadCount(), min(runtime.NumCPU(), MaxThreads); c.Engine.Threads != 0 || got != want {
		t.Errorf("default engine.threads %d runs %d threads, want %d (one per core)", c.Engine.Threads, got, want)
	}
	if c, err = Parse([]byte(minimal + "engine:\n  threads: 3\n")); err != nil || c.Engine.ThreadCount() != 3 {
		t.Errorf("engine.threads 3: %v threads, %v", c.Engine.ThreadCount(), err)
	}
}

// TestBoardCarrierKeys: the GPIO pin names and I²C sensors of a carrier board decode from YAML
// (addresses in hex, as datasheets give them), and a wrong address names its key.
func TestBoardCarrierKeys(t *testing.T) {
	const carrier = "device_id: a\nsite: b\nboard:\n  profile: coral-devboard\n  led_pin: GPIO6\n  fan_pwm_pin: PWM1\n" +
		"  i2c_sensors:\n    - {name: enclosure, bus: /dev/i2c-1, addr: 0x77, part: bme280}\n"
	c, err := Parse([]byte(carrier))
	if err != nil {
		t.Fatal(err)
	}
	want := []board.I2CSensorSpec{{Name: "enclosure", Bus: "/dev/i2c-1", Addr: 0x77, Part: "bme280"}}
	if c.Board.LEDPin != "GPIO6" || c.Board.FanPWMPin != "PWM1" || !reflect.DeepEqual(c.Board.I2CSensors, want) {
		t.Fatalf("board = %+v", c.Board)
	}
	_, err = Parse([]byte(strings.Replace(carrier, "0x77", "0x18", 1)))
	if err == nil || !strings.Contains(err.Error(), "board.i2c_sensors[0].addr: 0x18") {
		t.Fatalf("wrong address: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown key names its line", minimal + "mqtt:\n  brokr: tcp://x:1\n", []string{`line 6: unknown key "brokr"`}},
		{"unknown top-level key", "device_id: a\nsitee: b\n", []string{`line 2: unknown key "sitee"`}},
		{"wrong type", minimal + "dicom:\n  max_associations: many\n", []string{"line 6", "many"}},
		{"integer duration", minimal + "mqtt:\n  health_interval: 30\n", []string{"line 6", "time.Duration"}},
		{"duplicate key", minimal + "site: t\n", []string{"line 5", `"site" already defined`}},
		{"two documents", minimal + "---\nsite: t\n", []string{"line 5", "second YAML document"}},
		{"empty", "", []string{"empty file"}},
		{"not a mapping", "- a\n", []string{"line 1"}},
		{"bad size", minimal + "dicom:\n  disk_low_watermark: lots\n", []string{"line 6", "bad size"}},
		{"missing identity", "board:\n  profile: sim\n", []string{"device_id: required", "site: required"}},
		{"device_id with a slash", strings.Replace(minimal, "box-1", "a/b", 1), []string{"device_id: must be"}},
		{"no board profile", "device_id: a\nsite: b\n", []string{"board.profile: required"}},
		{"long AE title", minimal + "dicom:\n  ae_title: ABCDEFGHIJKLMNOPQ\n", []string{"dicom.ae_title", "16"}},
		{"AE title with backslash", minimal + "dicom:\n  ae_title: 'A\\B'\n", []string{"dicom.ae_title", "backslash"}},
		{"bad port", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 70000}\n  - {name: b, ae_title: B, host: h, port: 0}\n",
			[]string{"destinations[0].port: must be 1..65535", "destinations[1].port: must be 1..65535"}},
		{"duplicate destination", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 1}\n  - {name: a, ae_title: A, host: h, port: 2}\n",
			[]string{`destinations[1].name: "a" is also destinations[0].name`}},
		{"TLS files on a plain destination", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 1, ca: ca.pem}\n",
			[]string{"destinations[0].tls: ca, client_cert and client_key need tls: true"}},
		{"destination key without cert", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 1, tls: true, client_key: k.pem}\n",
			[]string{"destinations[0].client_cert: client_cert and client_key go together"}},
		{"bad hole mode", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 1, profile: {hole_mode: donut}}\n",
			[]string{"destinations[0].profile.hole_mode"}},
		{"ROI name too long", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 1, profile: {roi_names: {T2: GTV_T2_AI_TOO_LONG}}}\n",
			[]string{"destinations[0].profile.roi_names.T2", "16"}},
		{"ROI name for an unknown sequence", minimal + "destinations:\n  - {name: a, ae_title: A, host: h, port: 1, profile: {roi_names: {DWI: X}}}\n",
			[]string{"roi_names.DWI: unknown sequence"}},
		{"open http without token", minimal + "http:\n  listen: 0.0.0.0:8080\n", []string{"http.token: required"}},
		{"all interfaces without token", minimal + "http:\n  listen: :8080\n", []string{"http.token: required"}},
		{"short token", minimal + "http:\n  listen: 10.0.0.1:8080\n  token: short\n", []string{"http.token: must be at least 16"}},
		{"broker scheme", minimal + "mqtt:\n  broker: http://broker:1883\n", []string{`mqtt.broker: scheme "http"`}},
		{"broker without port", minimal + "mqtt:\n  broker: tcp://broker\n", []string{"mqtt.broker: want scheme://host:port"}},
		{"TLS files on plain broker", minimal + "mqtt:\n  broker: tcp://b:1883\n  ca: ca.pem\n", []string{"need a TLS scheme"}},
		{"client cert without key", minimal + "mqtt:\n  client_cert: c.pem\n", []string{"client_cert and client_key go together"}},
		{"wildcard prefix", minimal + "mqtt:\n  topic_prefix: midline/#\n", []string{"mqtt.topic_prefix"}},
		{"ages inverted", minimal + "selection:\n  - {min_age_years: 40, max_age_years: 18}\n", []string{"selection[0]: min_age_years (40) is above max_age_years (18)"}},
		{"selection on another called AE", minimal + "selection:\n  - {called_ae: OTHER}\n",
			[]string{`selection[0].called_ae: "OTHER" never matches: the receiver answers only to dicom.ae_title "MIDLINE"`}},
		{"negative log retention", minimal + "retention:\n  logs: -1h\n", []string{"retention.logs: must not be negative"}},
		{"empty selection rule", minimal + "selection:\n  - {}\n", []string{"selection[0]: matches every study"}},
		{"bad regexp", minimal + "selection:\n  - {study_description: 'brain('}\n", []string{"selection[0].study_description"}},
		{"classification out of order", minimal + "classification:\n  stir_max_ti_ms: 2000\n", []string{"classification: classification thresholds out of order"}},
		{"bad regexp in classification", minimal + "classification:\n  unfit: ['(']\n", []string{"classification:"}},
		{"edgetpu on jetson", "device_id: a\nsite: b\nboard:\n  profile: jetson-orin-nano\nengine:\n  kind: edgetpu\n", []string{"engine.kind: edgetpu is not available"}},
		{"unknown engine", minimal + "engine:\n  kind: gpu\n", []string{"engine.kind: must be cpu or edgetpu"}},
		{"thermal inverted", "device_id: a\nsite: b\nboard:\n  profile: sim\n  thermal_low_c: 90\n", []string{"board.thermal_low_c"}},
		{"tls without cert", minimal + "dicom:\n  tls:\n    listen: :2762\n", []string{"dicom.tls: cert and key are required"}},
		{"tls on the same port", minimal + "dicom:\n  listen: :104\n  tls: {listen: ':104', cert: c, key: k}\n", []string{"dicom.tls.listen: uses the same port"}},
		{"bad cidr", minimal + "dicom:\n  allowed_callers:\n    - {cidr: 10.0.0.0/33}\n", []string{"dicom.allowed_callers[0].cidr"}},
		{"max_pdu", minimal + "dicom:\n  max_pdu: 100\n", []string{"dicom.max_pdu"}},
		{"series timeout", minimal + "dicom:\n  series_timeout: 1h\n", []string{"dicom.series_timeout"}},
		{"negative retention", minimal + "retention:\n  spool: -1h\n", []string{"retention.spool"}},
		{"OTA over http", minimal + "ota:\n  repo_url: http://updates.example/\n  trusted_root: r.json\n", []string{"ota.repo_url: must be https"}},
		{"OTA without root", minimal + "ota:\n  repo_url: https://updates.example/\n  site_key: s.pem\n", []string{"ota.trusted_root: required"}},
		{"OTA approval without site key", minimal + "ota:\n  repo_url: https://updates.example/\n  trusted_root: r.json\n", []string{"ota.site_key: required"}},
		{"OTA window", minimal + "ota:\n  window: 22-04\n", []string{"ota.window"}},
		{"OTA without trial", minimal + "ota:\n  trial_jobs: 0\n  trial_minutes: 0\n", []string{"ota.trial_jobs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadBounds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte(minimal+"#"+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load of an oversized file: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file: no error")
	}
}

func TestParseWindow(t *testing.T) {
	s, e, err := ParseWindow("22:00-04:30")
	if err != nil || s != 22*60 || e != 4*60+30 {
		t.Fatalf("ParseWindow = %d, %d, %v", s, e, err)
	}
	for _, bad := range []string{"22:00", "25:00-01:00", "10:00-10:00"} {
		if _, _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q): no error", bad)
		}
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"0": 0, "512MiB": 512 << 20, "2GiB": 2 << 30, "1GB": 1e9, "17": 17, "3 KiB": 3 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "1.5GiB", "MiB", "99999999999TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): no error", bad)
		}
	}
	if s := Size(512 << 20).String(); s != "512MiB" {
		t.Errorf("String = %s", s)
	}
}
