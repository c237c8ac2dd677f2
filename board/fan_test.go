package board

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

var testCurve = []FanPoint{{TempC: 40, DutyPct: 30}, {TempC: 60, DutyPct: 60}, {TempC: 75, DutyPct: 100}}

func TestDutyAt(t *testing.T) {
	tests := []struct {
		c, want float64
	}{
		{c: -10, want: 0}, {c: 39.9, want: 0}, {c: 40, want: 30}, {c: 50, want: 45},
		{c: 60, want: 60}, {c: 67.5, want: 80}, {c: 75, want: 100}, {c: 120, want: 100},
	}
	for _, tt := range tests {
		if got := dutyAt(testCurve, tt.c); got != tt.want {
			t.Errorf("dutyAt(%v °C) = %v%%, want %v%%", tt.c, got, tt.want)
		}
	}
}

// TestFanHysteresis walks temperatures up and down and checks each duty: rising follows the
// curve at once, falling waits until the temperature is 3 °C below the point that set the duty.
func TestFanHysteresis(t *testing.T) {
	type step struct{ c, duty float64 }
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "rise follows the curve", steps: []step{{30, 0}, {40, 30}, {50, 45}, {60, 60}, {75, 100}}},
		{name: "small dip holds the duty", steps: []step{{60, 60}, {59, 60}, {58, 60}, {57, 60}, {60, 60}}},
		{name: "falls once past the hysteresis", steps: []step{{60, 60}, {56, 58.5}, {50, 49.5}, {37, 30}, {36.9, 0}}},
		{name: "hovering around the first point does not toggle", steps: []step{{40, 30}, {39.5, 30}, {40.2, 30.3}, {39.8, 30.3}, {38, 30.3}, {36, 0}, {39, 0}, {40, 30}}},
		{name: "no reading runs full, then the curve takes over with hysteresis", steps: []step{{50, 45}, {-1, 100}, {50, 49.5}, {50, 49.5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fanControl{curve: testCurve, hystC: 3}
			for i, s := range tt.steps {
				if got := f.next(s.c, s.c != -1); math.Abs(got-s.duty) > 1e-9 {
					t.Fatalf("step %d at %v °C: duty %v%%, want %v%%", i, s.c, got, s.duty)
				}
			}
		})
	}
}

func TestHwmonFanTakesAndReturnsControl(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"name": "pwmfan", "pwm1": "0", "pwm1_enable": "2"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := openHwmonFan(dir, "pwmfan", "/sys/class/hwmon/hwmon0", true)
	if err != nil {
		t.Fatal(err)
	}
	wantAttr(t, filepath.Join(dir, "pwm1_enable"), "1\n")
	for _, tt := range []struct {
		pct  float64
		want string
	}{{0, "0\n"}, {30, "77\n"}, {50, "128\n"}, {100, "255\n"}} {
		if err := f.setDuty(tt.pct); err != nil {
			t.Fatal(err)
		}
		wantAttr(t, filepath.Join(dir, "pwm1"), tt.want)
	}
	if err := f.release(); err != nil {
		t.Fatal(err)
	}
	wantAttr(t, filepath.Join(dir, "pwm1_enable"), "2\n")
}

func TestPinFan(t *testing.T) {
	p := &gpiotest.Pin{N: "PWM0"}
	f := pinFan{p}
	if err := f.setDuty(25); err != nil {
		t.Fatal(err)
	}
	if p.D != gpio.DutyMax/4 || p.F != FanPWMFrequency {
		t.Fatalf("pin duty %v at %v, want 25%% at %v", p.D, p.F, FanPWMFrequency)
	}
	if err := f.release(); err != nil || p.D != gpio.DutyMax {
		t.Fatalf("release: duty %v, err %v; want full", p.D, err)
	}
}

func wantAttr(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s = %q, want %q", path, got, want)
	}
}
