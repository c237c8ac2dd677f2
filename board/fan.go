package board

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// dutyAt is the curve's duty (percent) at temperature c: nothing below the first point, linear
// between points, the last point's duty above it.
func dutyAt(curve []FanPoint, c float64) float64 {
	if len(curve) == 0 || c < curve[0].TempC {
		return 0
	}
	for i := 1; i < len(curve); i++ {
		a, b := curve[i-1], curve[i]
		if c < b.TempC {
			return a.DutyPct + (c-a.TempC)*(b.DutyPct-a.DutyPct)/(b.TempC-a.TempC)
		}
	}
	return curve[len(curve)-1].DutyPct
}

// fanControl turns temperatures into duty along a curve with hysteresis: the fan speeds up as
// soon as the curve says so, and slows down only once the temperature is hystC below the point
// that set its speed, so it does not hunt around a point.
type fanControl struct {
	curve []FanPoint
	hystC float64
	duty  float64
}

// next returns the duty for temperature c; ok false (no temperature readable) runs the fan full.
func (f *fanControl) next(c float64, ok bool) float64 {
	if !ok {
		f.duty = 100
		return f.duty
	}
	if up := dutyAt(f.curve, c); up >= f.duty {
		f.duty = up
		return f.duty
	}
	if down := dutyAt(f.curve, c+f.hystC); down < f.duty {
		f.duty = down
	}
	return f.duty
}

// fanOutput drives a fan at a duty in percent.
type fanOutput interface {
	setDuty(pct float64) error
	// duty reads back the duty the fan runs at, for a read-only board.
	duty() (float64, error)
	// release hands the fan back to whoever drove it before (the kernel's thermal governor).
	release() error
	source() string
}

// hwmonFan drives the pwm1 attribute of a hwmon device (0..255, Documentation/hwmon/
// sysfs-interface.rst), switching pwm1_enable to manual (1) while Midline drives it and back to
// its earlier mode on release.
type hwmonFan struct {
	dir        string
	name       string
	shown      string // dir as a path on the box, for readings
	prevEnable string // "" when the device has no pwm1_enable
}

// openHwmonFan opens the fan; take switches it to manual control (a read-only board leaves it).
func openHwmonFan(dir, name, shown string, take bool) (*hwmonFan, error) {
	f := &hwmonFan{dir: dir, name: name, shown: shown}
	enable := filepath.Join(dir, "pwm1_enable")
	if _, err := os.Stat(enable); err != nil || !take {
		return f, nil
	}
	prev, err := readAttr(enable)
	if err != nil {
		return nil, fmt.Errorf("%s/pwm1_enable: %w", shown, err)
	}
	if err := writeAttr(enable, "1"); err != nil {
		return nil, fmt.Errorf("%s/pwm1_enable: take manual control: %w", shown, err)
	}
	f.prevEnable = prev
	return f, nil
}

func (f *hwmonFan) setDuty(pct float64) error {
	v := int(math.Round(pct * 255 / 100))
	if err := writeAttr(filepath.Join(f.dir, "pwm1"), strconv.Itoa(v)); err != nil {
		return fmt.Errorf("%s/pwm1: %w", f.shown, err)
	}
	return nil
}

func (f *hwmonFan) duty() (float64, error) {
	v, err := readUint(filepath.Join(f.dir, "pwm1"), 255)
	if err != nil {
		return 0, fmt.Errorf("%s/pwm1: %w", f.shown, err)
	}
	return float64(v) * 100 / 255, nil
}

func (f *hwmonFan) release() error {
	if f.prevEnable == "" {
		return nil
	}
	if err := writeAttr(filepath.Join(f.dir, "pwm1_enable"), f.prevEnable); err != nil {
		return fmt.Errorf("%s/pwm1_enable: restore %s: %w", f.shown, f.prevEnable, err)
	}
	return nil
}

func (f *hwmonFan) source() string { return "hwmon " + f.name + " " + f.shown }

// FanPWMFrequency is the PWM frequency for a fan on a GPIO pin: 25 kHz, the Intel 4-wire fan
// specification's, above hearing.
const FanPWMFrequency = 25 * physic.KiloHertz

// pinFan drives a fan through a periph GPIO pin with hardware PWM.
type pinFan struct{ pin gpio.PinOut }

func (f pinFan) setDuty(pct float64) error {
	return f.pin.PWM(gpio.Duty(math.Round(pct*float64(gpio.DutyMax)/100)), FanPWMFrequency)
}

// duty is unknown: periph's gpio.PinOut cannot read a PWM setting back.
func (f pinFan) duty() (float64, error) {
	return 0, errors.New("gpio " + f.pin.Name() + ": duty cannot be read back")
}

// release leaves the fan at full speed: nobody else drives this pin, and full is safe.
func (f pinFan) release() error { return f.pin.PWM(gpio.DutyMax, FanPWMFrequency) }

func (f pinFan) source() string { return "gpio " + f.pin.Name() }

// maxRPM bounds a tachometer reading; faster is garbage.
const maxRPM = 100_000
