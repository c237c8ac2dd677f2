package board

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/physic"
)

func TestParseMilliC(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want float64
		bad  bool
	}{
		{name: "typical", in: "47000", want: 47},
		{name: "fraction", in: "52250", want: 52.25},
		{name: "below zero", in: "-5500", want: -5.5},
		{name: "lowest plausible", in: "-55000", want: -55},
		{name: "highest plausible", in: "150000", want: 150},
		{name: "unpowered Orin cv zone", in: "-256000", bad: true},
		{name: "saturated", in: "2147483647", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "words", in: "garbage", bad: true},
		{name: "degrees with unit", in: "47 C", bad: true},
		{name: "float", in: "47.5", bad: true},
		{name: "overflow", in: "99999999999999999999999", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMilliC(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrGarbage) {
					t.Fatalf("parseMilliC(%q) = %v, %v; want ErrGarbage", tt.in, got, err)
				}
				return
			}
			if err != nil || got.Celsius() != tt.want {
				t.Fatalf("parseMilliC(%q) = %v (%v °C), %v; want %v °C", tt.in, got, got.Celsius(), err, tt.want)
			}
		})
	}
}

func FuzzParseMilliC(f *testing.F) {
	for _, s := range []string{"47000", "-256000", "", "garbage", "1e3", "+5", "150001"} {
		f.Add(s)
	}
	// Every temperature in the fake trees, as the kernel writes it.
	for _, glob := range []string{"testdata/*/sys/class/thermal/*/temp", "testdata/*/sys/class/apex/*/*temp*"} {
		files, _ := filepath.Glob(glob)
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(strings.TrimSpace(string(b)))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseMilliC(s)
		if err != nil {
			return
		}
		if c := got.Celsius(); c < -55 || c > 150 {
			t.Fatalf("parseMilliC(%q) accepted %v °C", s, c)
		}
		if got-physic.ZeroCelsius != physic.Temperature(got-physic.ZeroCelsius)/physic.MilliKelvin*physic.MilliKelvin {
			t.Fatalf("parseMilliC(%q) = %v is not a whole number of millikelvin", s, got)
		}
	})
}

func TestReadAttrBounded(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long")
	if err := os.WriteFile(long, []byte(strings.Repeat("9", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readAttr(long); !errors.Is(err, ErrGarbage) {
		t.Fatalf("a 1 MiB attribute: err = %v, want ErrGarbage", err)
	}
	if _, err := readAttr(dir); err == nil {
		t.Fatal("reading a directory as an attribute succeeded")
	}
	if _, err := readUint(long, maxRPM); err == nil {
		t.Fatal("readUint of a huge attribute succeeded")
	}
}

func TestThermalZonesNumericOrder(t *testing.T) {
	var got []string
	for _, z := range thermalZones("testdata/generic-linux") {
		got = append(got, z.id+"="+z.kind)
	}
	want := "thermal_zone0=acpitz thermal_zone1=x86_pkg_temp thermal_zone2=iwlwifi_1 thermal_zone10=pch_cannonlake"
	if strings.Join(got, " ") != want {
		t.Fatalf("zones = %v, want %s", got, want)
	}
}

func TestFindHwmon(t *testing.T) {
	root := "testdata/jetson-orin-nano"
	tests := []struct {
		name string
		want []string
		attr string
		dir  string
	}{
		{name: "fan by name", want: []string{"pwmfan"}, attr: "pwm1", dir: "hwmon1"},
		{name: "tachometer by attribute", attr: "rpm", dir: "hwmon2"},
		{name: "named device lacks attribute", want: []string{"ina3221"}, attr: "pwm1"},
		{name: "no such device", want: []string{"gpio_fan"}, attr: "pwm1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, ok := findHwmon(root, tt.want, tt.attr)
			if ok != (tt.dir != "") || (ok && filepath.Base(dir) != tt.dir) {
				t.Fatalf("findHwmon(%v, %s) = %q, %v; want %q", tt.want, tt.attr, dir, ok, tt.dir)
			}
		})
	}
}
