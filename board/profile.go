package board

import "sort"

// The profiles board.profile may name.
const (
	ProfileSim          = "sim"
	ProfileGenericLinux = "generic-linux"
	ProfileCoral        = "coral-devboard"
	ProfileJetson       = "jetson-orin-nano"
)

// Profile says where a board keeps its parts. It is data: New looks each part up under the
// sysfs root and reports the ones it cannot find as missing.
type Profile struct {
	Name string
	// AccelZone is the type of the thermal zone that measures the accelerator (Jetson: the GPU).
	AccelZone string
	// ApexGlob matches the Coral apex driver's temperature files, relative to the sysfs root.
	ApexGlob string
	// FanHwmon lists hwmon device names (their `name` file) whose pwm1 drives the fan, in order
	// of preference.
	FanHwmon []string
	// TachAttr is the hwmon attribute holding the fan speed in RPM; TachHwmon names the hwmon
	// device that has it (empty: the fan's own hwmon device, else any device with the attribute).
	TachAttr  string
	TachHwmon []string
	// I2C lists optional sensors on the carrier board.
	I2C []I2CSensorSpec
	// LEDPin and FanPWMPin are periph GPIO pin names (gpioreg.ByName); empty means none.
	LEDPin    string
	FanPWMPin string
	// ExpectLED says the box should show its state on a status LED, so an unassigned LEDPin is
	// reported as missing.
	ExpectLED bool
	// WatchdogDevice is the watchdog character device, used only when board.watchdog is set.
	WatchdogDevice string
}

// I2CSensorSpec names an optional I²C temperature sensor: its bus (i2creg name), address and
// part: "mcp9808" (addresses 0x18..0x1f) or "bme280" (0x76, 0x77; a BMP280 works too).
type I2CSensorSpec struct {
	Name string `yaml:"name" json:"name"`
	Bus  string `yaml:"bus" json:"bus"`
	Addr uint16 `yaml:"addr" json:"addr"`
	Part string `yaml:"part" json:"part"`
}

// profiles are the built-in boards. Their paths come from the kernel's documented ABIs and the
// vendors' drivers (see testdata/README.md); none has yet been checked on real hardware.
var profiles = map[string]Profile{
	ProfileSim: {Name: ProfileSim, WatchdogDevice: "sim"},
	ProfileGenericLinux: {
		Name:           ProfileGenericLinux,
		WatchdogDevice: "/dev/watchdog",
	},
	ProfileCoral: {
		Name:     ProfileCoral,
		ApexGlob: "sys/class/apex/apex_*/temp",
		FanHwmon: []string{"gpio_fan", "pwmfan"},
		TachAttr: "fan1_input",
		// The header's pins 3 and 5 are I2C2, /dev/i2c-1 on Mendel Linux.
		I2C:            []I2CSensorSpec{{Name: "carrier", Bus: "/dev/i2c-1", Addr: 0x18, Part: "mcp9808"}},
		ExpectLED:      true,
		WatchdogDevice: "/dev/watchdog",
	},
	ProfileJetson: {
		Name:      ProfileJetson,
		AccelZone: "gpu-thermal",
		FanHwmon:  []string{"pwmfan"},
		// L4T's tachometer driver registers its own hwmon device with an `rpm` attribute.
		TachAttr: "rpm",
		// The header's pins 3 and 5 are I²C bus 7 on the Orin Nano developer kit.
		I2C:            []I2CSensorSpec{{Name: "carrier", Bus: "/dev/i2c-7", Addr: 0x18, Part: "mcp9808"}},
		ExpectLED:      true,
		WatchdogDevice: "/dev/watchdog",
	},
}

// ProfileNames lists the built-in profiles, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ProfileByName returns a built-in profile.
func ProfileByName(name string) (Profile, bool) {
	p, ok := profiles[name]
	return p, ok
}
