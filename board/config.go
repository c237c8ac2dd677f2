package board

import (
	"errors"
	"fmt"
	"sort"
	"strings"
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
	// LEDPin names the status LED's GPIO pin as periph.io knows it (gpioreg.ByName, e.g.
	// "GPIO6"); empty keeps the profile's (the built-in boards have none: it is reported missing).
	LEDPin string `yaml:"led_pin" json:"led_pin,omitempty"`
	// FanPWMPin names a GPIO pin that drives the fan by PWM, for a carrier board whose fan is
	// not a hwmon device; empty keeps the profile's hwmon fan.
	FanPWMPin string `yaml:"fan_pwm_pin" json:"fan_pwm_pin,omitempty"`
	// I2CSensors, when set, replaces the profile's optional I²C thermometers (a carrier board's
	// own parts and addresses).
	I2CSensors []I2CSensorSpec `yaml:"i2c_sensors" json:"i2c_sensors,omitempty"`
}

// maxI2CSensors bounds board.i2c_sensors.
const maxI2CSensors = 8

// i2cAddrs are the addresses each part can be strapped to (MCP9808: DS25095A, A2..A0 under
// 0x18; BME280: BST-BME280-DS002, SDO low or high).
var i2cAddrs = map[string][2]uint16{"mcp9808": {0x18, 0x1f}, "bme280": {0x76, 0x77}}

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
	if err := validateCurve(c.FanCurve); err != nil {
		return err
	}
	return c.validateParts()
}

// validateParts checks the keys that name GPIO pins and I²C sensors.
func (c Config) validateParts() error {
	if c.Profile == ProfileSim && (c.LEDPin != "" || c.FanPWMPin != "" || len(c.I2CSensors) > 0) {
		return errors.New("board.led_pin, fan_pwm_pin and i2c_sensors: the sim profile has no GPIO or I²C")
	}
	for key, v := range map[string]string{"board.led_pin": c.LEDPin, "board.fan_pwm_pin": c.FanPWMPin} {
		if v != "" && !plainName(v, 32) {
			return fmt.Errorf("%s: %q is not a GPIO pin name (letters, digits, _ . -; at most 32)", key, v)
		}
	}
	if c.LEDPin != "" && c.LEDPin == c.FanPWMPin {
		return fmt.Errorf("board.led_pin and board.fan_pwm_pin both name pin %s", c.LEDPin)
	}
	if len(c.I2CSensors) > maxI2CSensors {
		return fmt.Errorf("board.i2c_sensors: %d sensors, at most %d", len(c.I2CSensors), maxI2CSensors)
	}
	names := map[string]bool{}
	for i, s := range c.I2CSensors {
		if err := s.validate(); err != nil {
			return fmt.Errorf("board.i2c_sensors[%d].%w", i, err)
		}
		if names[s.Name] {
			return fmt.Errorf("board.i2c_sensors[%d].name: %q is used twice", i, s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

func (s I2CSensorSpec) validate() error {
	r, ok := i2cAddrs[s.Part]
	switch {
	case !plainName(s.Name, 32):
		return fmt.Errorf("name: %q must be 1 to 32 letters, digits, _ . -", s.Name)
	case s.Bus == "" || !plainName(strings.TrimPrefix(s.Bus, "/dev/"), 32):
		return fmt.Errorf("bus: %q is not an I²C bus (e.g. /dev/i2c-1)", s.Bus)
	case !ok:
		return fmt.Errorf("part: %q is not one of mcp9808, bme280", s.Part)
	case s.Addr < r[0] || s.Addr > r[1]:
		return fmt.Errorf("addr: %#x is not an address of the %s (%#x to %#x)", s.Addr, s.Part, r[0], r[1])
	}
	return nil
}

// plainName reports whether s is 1 to max letters, digits, '_', '.' or '-'.
func plainName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// applyTo returns the profile with the parts this configuration names in place of its own.
func (c Config) applyTo(p Profile) Profile {
	if c.LEDPin != "" {
		p.LEDPin = c.LEDPin
	}
	if c.FanPWMPin != "" {
		p.FanPWMPin = c.FanPWMPin
	}
	if len(c.I2CSensors) > 0 {
		p.I2C = append([]I2CSensorSpec(nil), c.I2CSensors...)
	}
	return p
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
