package board

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var testStart = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// logBuf collects a board's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines counts the log lines holding every one of subs.
func (l *logBuf) lines(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all && line != "" {
			n++
		}
	}
	return n
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// copyTree copies a fake sysfs tree so a test may change it.
func copyTree(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func noI2C(bus string) (i2c.BusCloser, error) { return nil, errors.New("no such bus " + bus) }

// testOptions are the options of a board on a fake tree, with a fake clock and a captured log.
func testOptions(root string, logs *logBuf) Options {
	return Options{Root: root, Clock: clockwork.NewFakeClockAt(testStart), Logger: slog.New(slog.NewTextHandler(logs, nil)),
		OpenI2C: noI2C, Getenv: func(string) string { return "" }}
}

func newTestBoard(t *testing.T, cfg Config, o Options) *Board {
	t.Helper()
	b, err := New(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./board -run %s -update to make it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestProfiles builds each profile on its fake tree, samples once and compares what
// `midline board` would print with a golden file.
func TestProfiles(t *testing.T) {
	for _, name := range ProfileNames() {
		t.Run(name, func(t *testing.T) {
			var logs logBuf
			root := t.TempDir()
			if name != ProfileSim {
				root = copyTree(t, name)
			}
			b := newTestBoard(t, Config{Profile: name}, testOptions(root, &logs))
			var out bytes.Buffer
			if err := Format(&out, b.Sample(context.Background())); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", out.Bytes())
			if n, m := logs.count("part not present"), len(b.Missing()); n != m {
				t.Errorf("%d missing parts logged %d times, want once each", m, n)
			}
		})
	}
}

func TestCoralFanFollowsApex(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileCoral)
	b := newTestBoard(t, Config{Profile: ProfileCoral}, testOptions(root, &logs))
	fan := filepath.Join(root, "sys/class/hwmon/hwmon0")
	wantAttr(t, filepath.Join(fan, "pwm1_enable"), "1\n")
	steps := []struct {
		apex string
		pwm  string
	}{
		{"52250\n", "123\n"}, // 48.4 % of 255
		{"75000\n", "255\n"},
		{"73000\n", "255\n"}, // within the hysteresis
		{"60000\n", "173\n"}, // slows to the curve at 63 °C: 68 %
	}
	for i, s := range steps {
		if err := os.WriteFile(filepath.Join(root, "sys/class/apex/apex_0/temp"), []byte(s.apex), 0o644); err != nil {
			t.Fatal(err)
		}
		b.Sample(context.Background())
		if got, _ := os.ReadFile(filepath.Join(fan, "pwm1")); string(got) != s.pwm {
			t.Fatalf("step %d: apex %s: pwm1 = %q, want %q", i, strings.TrimSpace(s.apex), got, s.pwm)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wantAttr(t, filepath.Join(fan, "pwm1_enable"), "2\n")
}

// TestSensorDisappears removes the Edge TPU's temperature mid-run (the apex driver unloaded),
// then puts back garbage, then a good value: one warning when it goes, one note when it returns,
// an alarm and the fault LED meanwhile.
func TestSensorDisappears(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileCoral)
	b := newTestBoard(t, Config{Profile: ProfileCoral}, testOptions(root, &logs))
	b.led.start() // the LED shows states; no loops, so every sample is the test's own
	apex := filepath.Join(root, "sys/class/apex/apex_0/temp")
	r := b.Sample(context.Background())
	if len(r.Alarms) != 0 || r.LED != "ready" {
		t.Fatalf("before: alarms %q, LED %s", r.Alarms, r.LED)
	}
	if err := os.Remove(apex); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r = b.Sample(context.Background())
	}
	tr := r.Temperatures[2]
	if tr.Name != "apex_0" || tr.OK || !strings.Contains(tr.Error, "no such file") {
		t.Fatalf("apex reading after removal: %+v", tr)
	}
	if len(r.Alarms) != 1 || !strings.Contains(r.Alarms[0], "apex_0") || r.LED != "fault" {
		t.Fatalf("after removal: alarms %q, LED %s", r.Alarms, r.LED)
	}
	if err := os.WriteFile(apex, []byte("\x00\xff garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = b.Sample(context.Background())
	if !strings.Contains(r.Temperatures[2].Error, ErrGarbage.Error()) {
		t.Fatalf("garbage: %+v", r.Temperatures[2])
	}
	if r.Thermal.AcceleratorMayRun != true || r.Fan.DutyPct != 45 {
		t.Fatalf("the other sensors (47 °C, through the hysteresis: the curve at 50 °C) drive the fan: %+v, %+v", r.Thermal, r.Fan)
	}
	if err := os.WriteFile(apex, []byte("51000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = b.Sample(context.Background())
	if len(r.Alarms) != 0 || !r.Temperatures[2].OK || r.LED != "ready" {
		t.Fatalf("after return: %+v", r)
	}
	if w, i := logs.count("part failing"), logs.count("part back"); w != 1 || i != 1 {
		t.Fatalf("logged %d failures and %d returns, want 1 and 1:\n%s", w, i, logs.b.String())
	}
}

// TestNoTemperatureRunsFanFull: with every zone unreadable the fan runs full and an alarm says so.
func TestNoTemperatureRunsFanFull(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileJetson)
	b := newTestBoard(t, Config{Profile: ProfileJetson}, testOptions(root, &logs))
	zones, _ := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*/temp"))
	for _, z := range zones {
		if err := os.WriteFile(z, []byte("N/A\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := b.Sample(context.Background())
	if r.Fan.DutyPct != 100 {
		t.Fatalf("fan %v%%, want 100", r.Fan.DutyPct)
	}
	wantAttr(t, filepath.Join(root, "sys/class/hwmon/hwmon1/pwm1"), "255\n")
	if !strings.Contains(strings.Join(r.Alarms, "\n"), "no SoC or accelerator temperature readable") {
		t.Fatalf("alarms %q", r.Alarms)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "defaults", cfg: Config{}},
		{name: "every profile", cfg: Config{Profile: ProfileJetson, ThermalHighC: 90, ThermalLowC: 80}},
		{name: "unknown profile", cfg: Config{Profile: "raspberry-pi"}, want: "board.profile"},
		{name: "low above high", cfg: Config{ThermalHighC: 70, ThermalLowC: 75}, want: "thermal_low_c"},
		{name: "unsorted curve", cfg: Config{FanCurve: []FanPoint{{60, 50}, {40, 30}}}, want: "fan_curve"},
		{name: "duty over 100", cfg: Config{FanCurve: []FanPoint{{40, 130}}}, want: "fan_curve[0]"},
		{name: "duty falls", cfg: Config{FanCurve: []FanPoint{{40, 50}, {60, 30}}}, want: "fan_curve[1]"},
		{name: "carrier parts", cfg: Config{Profile: ProfileCoral, LEDPin: "GPIO6", FanPWMPin: "PWM1", I2CSensors: []I2CSensorSpec{
			{Name: "enclosure", Bus: "/dev/i2c-1", Addr: 0x77, Part: "bme280"}, {Name: "inlet", Bus: "1", Addr: 0x1f, Part: "mcp9808"}}}},
		{name: "pins on sim", cfg: Config{LEDPin: "GPIO6"}, want: "sim profile has no GPIO"},
		{name: "pin with a space", cfg: Config{Profile: ProfileCoral, LEDPin: "GPIO 6"}, want: "board.led_pin"},
		{name: "one pin twice", cfg: Config{Profile: ProfileCoral, LEDPin: "GPIO6", FanPWMPin: "GPIO6"}, want: "both name pin GPIO6"},
		{name: "unknown part", cfg: Config{Profile: ProfileCoral, I2CSensors: []I2CSensorSpec{{Name: "a", Bus: "/dev/i2c-1", Addr: 0x48, Part: "tmp102"}}}, want: "i2c_sensors[0].part"},
		{name: "address of another part", cfg: Config{Profile: ProfileCoral, I2CSensors: []I2CSensorSpec{{Name: "a", Bus: "/dev/i2c-1", Addr: 0x18, Part: "bme280"}}}, want: "i2c_sensors[0].addr: 0x18"},
		{name: "no bus", cfg: Config{Profile: ProfileCoral, I2CSensors: []I2CSensorSpec{{Name: "a", Addr: 0x18, Part: "mcp9808"}}}, want: "i2c_sensors[0].bus"},
		{name: "no name", cfg: Config{Profile: ProfileCoral, I2CSensors: []I2CSensorSpec{{Bus: "/dev/i2c-1", Addr: 0x18, Part: "mcp9808"}}}, want: "i2c_sensors[0].name"},
		{name: "name twice", cfg: Config{Profile: ProfileCoral, I2CSensors: []I2CSensorSpec{
			{Name: "a", Bus: "/dev/i2c-1", Addr: 0x18, Part: "mcp9808"}, {Name: "a", Bus: "/dev/i2c-1", Addr: 0x19, Part: "mcp9808"}}}, want: "i2c_sensors[1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// TestStartClose runs the board's own loops on a fake clock: a sample at start and one per
// interval, the LED stepping, and Close stopping and joining them, turning the LED off, twice.
func TestStartClose(t *testing.T) {
	clk := clockwork.NewFakeClockAt(testStart)
	sim := NewSim(SimStep{SoCC: 50, AccelC: 60}, SimStep{SoCC: 50, AccelC: 75})
	var logs logBuf
	o := testOptions("", &logs)
	o.Clock, o.Sim, o.SampleInterval = clk, sim, 5*time.Second
	b, err := New(context.Background(), Config{Profile: ProfileSim}, o)
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	b.Start() // a second Start does nothing
	eventually(t, "first sample", func() bool { return sim.FanDuty() == 60 })
	eventually(t, "ready LED lit", func() bool { return sim.LED().Read() == gpio.High })
	b.Indicate(LEDReceiving, true)
	if got := b.Readings().LED; got != "receiving" {
		t.Fatalf("LED %s, want receiving", got)
	}
	clk.Advance(5 * time.Second)
	eventually(t, "second sample", func() bool { return b.Readings().At.Equal(testStart.Add(5 * time.Second)) })
	if sim.FanDuty() != 100 {
		t.Fatalf("fan %v%% at 75 °C, want 100", sim.FanDuty())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if sim.LED().Read() == gpio.High || b.Readings().LED != "off" {
		t.Fatal("LED still lit after Close")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b.Start() // after Close: nothing starts
	if b.Readings().LED != "off" {
		t.Fatal("Start after Close started the LED")
	}
}

// TestReadingsJSON pins the shape of the health telemetry a hot sim board reports, with the
// watchdog driven by the daemon.
func TestReadingsJSON(t *testing.T) {
	var logs logBuf
	o := testOptions("", &logs)
	o.Sim, o.Healthy = NewSim(SimStep{SoCC: 60, AccelC: 82}), func() error { return nil }
	b := newTestBoard(t, Config{Profile: ProfileSim, Watchdog: true}, o)
	b.led.start()
	b.Indicate(LEDInferring, true)
	if err := b.wd.pet(testStart); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(b.Sample(context.Background()), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sim-readings.json", append(got, '\n'))
}

// TestTachometerGarbage: a tachometer reading garbage costs its rpm, not the fan.
func TestTachometerGarbage(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileJetson)
	b := newTestBoard(t, Config{Profile: ProfileJetson}, testOptions(root, &logs))
	rpm := filepath.Join(root, "sys/class/hwmon/hwmon2/rpm")
	for _, bad := range []string{"-1\n", "fast\n", "99999999999\n", ""} {
		if err := os.WriteFile(rpm, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		f := b.Sample(context.Background()).Fan
		if f.RPM != nil || !strings.HasPrefix(f.Error, "tachometer: /sys/class/hwmon/hwmon2/rpm: ") || f.DutyPct == 0 {
			t.Fatalf("rpm %q: %+v", bad, f)
		}
	}
	if err := os.WriteFile(rpm, []byte("2200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f := b.Sample(context.Background()).Fan; f.RPM == nil || *f.RPM != 2200 || f.Error != "" {
		t.Fatalf("after recovery: %+v", f)
	}
	if n := logs.lines("part failing", "fan tachometer"); n != 1 {
		t.Fatalf("tachometer failure logged %d times, want 1", n)
	}
}

// TestReport: `midline board` beside a running daemon reads the fan instead of setting it, and
// opens neither the watchdog nor the LED.
func TestReport(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileJetson)
	o := testOptions(root, &logs)
	o.OpenWatchdog = func(string) (io.WriteCloser, error) { t.Fatal("the watchdog was opened"); return nil, nil }
	o.PinByName = func(string) gpio.PinIO { t.Fatal("a GPIO pin was taken"); return nil }
	o.Profile = &Profile{Name: ProfileJetson, FanHwmon: []string{"pwmfan"}, TachAttr: "rpm", LEDPin: "LED", WatchdogDevice: "/dev/watchdog"}
	var out bytes.Buffer
	if err := Report(context.Background(), &out, Config{Profile: ProfileJetson, Watchdog: true}, o); err != nil {
		t.Fatal(err)
	}
	wantAttr(t, filepath.Join(root, "sys/class/hwmon/hwmon1/pwm1"), "58\n") // untouched
	for _, want := range []string{"23% duty, 1530 rpm", "/dev/watchdog: not opened by this read-only reader"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestGPIOParts drives a status LED and a PWM fan on periph gpiotest pins, as a carrier board
// with both on its header would.
func TestGPIOParts(t *testing.T) {
	led, fan := &gpiotest.Pin{N: "LED0"}, &gpiotest.Pin{N: "PWM0"}
	pins := map[string]gpio.PinIO{"LED0": led, "PWM0": fan}
	var logs logBuf
	o := testOptions("testdata/generic-linux", &logs)
	o.Profile = &Profile{Name: "carrier", LEDPin: "LED0", FanPWMPin: "PWM0", ExpectLED: true}
	o.PinByName = func(n string) gpio.PinIO { return pins[n] }
	b := newTestBoard(t, Config{Profile: ProfileGenericLinux}, o)
	r := b.Sample(context.Background()) // hottest zone 41 °C: 31.5 %
	if r.Fan.Source != "gpio PWM0" || fan.D != gpio.Duty(math.Round(0.315*float64(gpio.DutyMax))) || fan.F != FanPWMFrequency {
		t.Fatalf("fan %+v; pin duty %v at %v", r.Fan, fan.D, fan.F)
	}
	if r.Fan.Error != "" || r.Fan.RPM != nil || len(b.Missing()) != 0 {
		t.Fatalf("fan %+v, missing %v", r.Fan, b.Missing())
	}
	b.led.start()
	if err := b.led.tick(); err != nil || led.Read() != gpio.High {
		t.Fatalf("ready LED: %v, %v", led.Read(), err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if led.Read() != gpio.Low || fan.D != gpio.DutyMax {
		t.Fatalf("after Close: LED %v, fan duty %v; want off and full", led.Read(), fan.D)
	}
}

// TestConfigNamesCarrierParts: board.led_pin and board.i2c_sensors put a carrier board's LED
// and BME280 in place of the built-in profile's (no LED, an MCP9808 at 0x18), without code.
func TestConfigNamesCarrierParts(t *testing.T) {
	led := &gpiotest.Pin{N: "GPIO6"}
	bus := &i2ctest.Playback{Ops: append(append(append([]i2ctest.IO(nil), bme280Ops...), bme280Read...), bme280Read...), DontPanic: true} // probed at New, then sampled
	var logs logBuf
	o := testOptions(copyTree(t, ProfileCoral), &logs)
	o.PinByName = func(n string) gpio.PinIO {
		if n == "GPIO6" {
			return led
		}
		return nil
	}
	o.OpenI2C = playbackOpener(t, bus)
	cfg := Config{Profile: ProfileCoral, LEDPin: "GPIO6",
		I2CSensors: []I2CSensorSpec{{Name: "enclosure", Bus: "/dev/i2c-1", Addr: 0x76, Part: "bme280"}}}
	b := newTestBoard(t, cfg, o)
	if m := b.Missing(); len(m) != 0 {
		t.Fatalf("missing %+v, want none: the LED pin and the sensor come from the configuration", m)
	}
	r := b.Sample(context.Background())
	if got := r.Temperatures[len(r.Temperatures)-1]; got.Name != "enclosure" || got.Celsius != 25.08 || !got.OK {
		t.Fatalf("enclosure reading %+v", got)
	}
	b.led.start()
	if err := b.led.tick(); err != nil || led.Read() != gpio.High {
		t.Fatalf("ready LED on GPIO6: %v, %v", led.Read(), err)
	}
	if err := b.Close(); err != nil { // Playback.Close: every transaction was used
		t.Fatal(err)
	}
}

func TestWatchdogLine(t *testing.T) {
	tests := []struct {
		w    WatchdogReading
		want string
	}{
		{WatchdogReading{Owner: "none"}, "not driven by midline (board.watchdog off; under systemd, systemd owns it)"},
		{WatchdogReading{Owner: "daemon", Device: "/dev/watchdog", Pets: 7, TimeoutS: 60}, "/dev/watchdog, 7 pets, timeout 60 s"},
		{WatchdogReading{Owner: "daemon", Device: "/dev/watchdog", Pets: 7, Starving: "queue stalled"}, "/dev/watchdog, 7 pets, NOT petting: queue stalled"},
		{WatchdogReading{Owner: "daemon", Device: "/dev/watchdog", Pets: 9, Closed: true}, "/dev/watchdog, 9 pets, disarmed (magic close)"},
		{WatchdogReading{Owner: "daemon", Device: "/dev/watchdog", Error: "pet /dev/watchdog: EIO"}, "/dev/watchdog, 0 pets; error: pet /dev/watchdog: EIO"},
	}
	for _, tt := range tests {
		if got := watchdogLine(tt.w); got != tt.want {
			t.Errorf("watchdogLine(%+v) = %q, want %q", tt.w, got, tt.want)
		}
	}
}

// TestFanStall: a fan driven at 42 % that reads 0 rpm twice in a row raises an alarm; once it
// turns again the alarm goes.
func TestFanStall(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileJetson)
	b := newTestBoard(t, Config{Profile: ProfileJetson}, testOptions(root, &logs))
	rpm := filepath.Join(root, "sys/class/hwmon/hwmon2/rpm")
	for i, s := range []struct {
		rpm     string
		stalled bool
	}{{"0", false}, {"0", true}, {"0", true}, {"1200", false}, {"0", false}} {
		if err := os.WriteFile(rpm, []byte(s.rpm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := b.Sample(context.Background())
		stalled := len(r.Alarms) == 1 && r.Alarms[0] == "fan stalled: 0 rpm at 43% duty"
		if stalled != s.stalled || (!s.stalled && len(r.Alarms) != 0) {
			t.Fatalf("sample %d at %s rpm: alarms %q, want stalled %v", i, s.rpm, r.Alarms, s.stalled)
		}
	}
}

// TestMissingPartsReportedOnce: a Coral without the apex driver and without a fan lists both in
// every Readings, logs each once, and raises no alarm for them however often it samples.
func TestMissingPartsReportedOnce(t *testing.T) {
	var logs logBuf
	root := copyTree(t, ProfileCoral)
	for _, d := range []string{"sys/class/apex", "sys/class/hwmon"} {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	b := newTestBoard(t, Config{Profile: ProfileCoral}, testOptions(root, &logs))
	var r Readings
	for range 5 {
		r = b.Sample(context.Background())
	}
	var parts []string
	for _, m := range r.Missing {
		parts = append(parts, m.Part)
	}
	want := "accelerator temperature,i2c mcp9808 /dev/i2c-1@0x18,fan,fan tachometer,status LED"
	if strings.Join(parts, ",") != want || len(r.Alarms) != 0 || r.Fan != nil {
		t.Fatalf("missing %v, alarms %q, fan %+v; want missing %s and nothing else", parts, r.Alarms, r.Fan, want)
	}
	if n := logs.count("part not present"); n != 5 {
		t.Fatalf("%d missing-part log lines after 5 samples, want 5 (one per part)", n)
	}
	if n := strings.Count(logs.b.String(), "level=WARN"); n != 0 {
		t.Fatalf("%d warnings logged for parts that are simply absent", n)
	}
}
