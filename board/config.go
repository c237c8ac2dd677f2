package board

import (
	"errors"
	"fmt"
	"sort"
)

// Config is the `board` section of the firmware's configuration (DESIGN.md: profile, fan_curve,
// thermal_high_c, thermal_low_c, watchdog). The firmware decodes it; Validate checks it.
type Config struct {
	// Profile names the board: sim, generic-linux, coral-devboard or jetson-orin-nano.
	Profile string `yaml:"profile" json:"profile"`
	// FanCurve maps temperature to fan duty; empty means DefaultFanCurve.
	FanCurve []FanPoint `yaml:"fan_curve" json:"fan_curve,omitempty"`
	// ThermalHighC is the temperature at or above which accelerator jobs wait; 0 means the default.
	ThermalHighC float64 `yaml:"thermal_high_c" json:"thermal_high_c,omitempty"`
	// ThermalLowC is the temperature at or below which waiting jobs resume; 0 means the default.
	ThermalLowC float64 `yaml:"thermal_low_c" json:"thermal_low_c,omitempty"`
	// Watchdog lets the daemon drive /dev/watchdog itself. Only for a box without systemd: under
	// systemd the daemon reports WATCHDOG=1 and systemd owns the device, never both.
	Watchdog bool `yaml:"watchdog" json:"watchdog"`
}

// FanPoint is one point of a fan curve: at TempC and above, the fan runs at least at DutyPct
// (0 to 100); between points the duty is interpolated linearly.
type FanPoint struct {
	TempC   float64 `yaml:"temp_c" json:"temp_c"`
	DutyPct float64 `yaml:"duty_pct" json:"duty_pct"`
}

// Defaults, in one place. The high mark sits below the throttle points of both boards' SoCs and
// of the Edge TPU (the apex driver's first trip point is 85 °C), so Midline pauses its own jobs
// before the hardware slows them.
const (
	DefaultThermalHighC = 80.0
	DefaultThermalLowC  = 70.0
	// DefaultFanHysteresisC is how far the temperature must fall below a curve point before the
	// fan slows again, so that it does not hunt around a point.
	DefaultFanHysteresisC = 3.0
)

// DefaultFanCurve is used when the configuration gives none.
var DefaultFanCurve = []FanPoint{{TempC: 40, DutyPct: 30}, {TempC: 60, DutyPct: 60}, {TempC: 75, DutyPct: 100}}

// withDefaults returns c with every zero value replaced by its default.
func (c Config) withDefaults() Config {
	if c.Profile == "" {
		c.Profile = ProfileSim
	}
	if len(c.FanCurve) == 0 {
		c.FanCurve = append([]FanPoint(nil), DefaultFanCurve...)
	}
	if c.ThermalHighC == 0 {
		c.ThermalHighC = DefaultThermalHighC
	}
	if c.ThermalLowC == 0 {
		c.ThermalLowC = DefaultThermalLowC
	}
	return c
}

// Validate checks a configuration after defaults are applied, naming the first bad key.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, ok := profiles[c.Profile]; !ok {
		return fmt.Errorf("board.profile: unknown profile %q (want one of %v)", c.Profile, ProfileNames())
	}
	if c.ThermalLowC >= c.ThermalHighC {
		return fmt.Errorf("board.thermal_low_c (%g) must be below board.thermal_high_c (%g)", c.ThermalLowC, c.ThermalHighC)
	}
	if c.ThermalHighC > 125 || c.ThermalLowC < 0 {
		return errors.New("board.thermal_high_c and thermal_low_c must lie between 0 and 125 °C")
	}
	return validateCurve(c.FanCurve)
}

func validateCurve(pts []FanPoint) error {
	if !sort.SliceIsSorted(pts, func(i, j int) bool { return pts[i].TempC < pts[j].TempC }) {
		return errors.New("board.fan_curve: points must be in rising temp_c order")
	}
	for i, p := range pts {
		if p.DutyPct < 0 || p.DutyPct > 100 {
			return fmt.Errorf("board.fan_curve[%d]: duty_pct %g is outside 0..100", i, p.DutyPct)
		}
		if i > 0 && (p.TempC == pts[i-1].TempC || p.DutyPct < pts[i-1].DutyPct) {
			return fmt.Errorf("board.fan_curve[%d]: temperatures must rise strictly and duty must not fall", i)
		}
	}
	return nil
}
