package board

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/physic"
)

// maxAttr bounds every sysfs read: the attributes Midline reads are a number or a short name,
// so anything longer is garbage and is refused rather than read.
const maxAttr = 64

// Plausible bounds for a temperature read from sysfs. A value outside them is a driver or wiring
// fault (a disconnected sensor often reads -273 °C or a saturated register), not a temperature to
// act on.
const (
	minPlausibleMilliC = -55_000
	maxPlausibleMilliC = 150_000
)

// ErrGarbage is wrapped by every error for an attribute whose content is not what the kernel's
// ABI promises.
var ErrGarbage = errors.New("unexpected content")

// readAttr reads a small sysfs attribute and trims its trailing newline. Its errors do not name
// the file: callers name it as the box does, without a test's fake root.
func readAttr(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", bare(err)
	}
	defer f.Close()
	buf := make([]byte, maxAttr+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", bare(err)
	}
	if n > maxAttr {
		return "", fmt.Errorf("longer than %d bytes: %w", maxAttr, ErrGarbage)
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// bare strips the path from a *fs.PathError, keeping the cause (errors.Is still sees it).
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// writeAttr writes a value to a sysfs attribute, as one write, the way the kernel expects.
func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return bare(err)
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return bare(err)
	}
	return f.Close()
}

// parseMilliC parses a temperature in millidegrees Celsius, the unit of the thermal zone `temp`,
// hwmon `tempN_input` and apex `temp` attributes.
func parseMilliC(s string) (physic.Temperature, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("temperature %q: %w", s, ErrGarbage)
	}
	if v < minPlausibleMilliC || v > maxPlausibleMilliC {
		return 0, fmt.Errorf("temperature %d m°C is outside %d..%d: %w", v, minPlausibleMilliC, maxPlausibleMilliC, ErrGarbage)
	}
	return physic.Temperature(v)*physic.MilliKelvin + physic.ZeroCelsius, nil
}

// readMilliC reads and parses a millidegree attribute.
func readMilliC(path string) (physic.Temperature, error) {
	s, err := readAttr(path)
	if err != nil {
		return 0, err
	}
	return parseMilliC(s)
}

// readUint reads a non-negative integer attribute no larger than max (fan RPM, pwm duty).
func readUint(path string, max uint64) (uint64, error) {
	s, err := readAttr(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("%q is not an integer in 0..%d: %w", s, max, ErrGarbage)
	}
	return v, nil
}

// zone is one thermal zone as sysfs shows it (Documentation/driver-api/thermal/sysfs-api.rst).
type zone struct {
	dir  string // e.g. <root>/sys/class/thermal/thermal_zone0
	id   string // thermal_zone0
	kind string // the zone's `type`, e.g. cpu-thermal
}

// thermalZones lists the thermal zones under root in numeric order.
func thermalZones(root string) []zone {
	dirs, _ := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*"))
	sortNumeric(dirs, "thermal_zone")
	zones := make([]zone, 0, len(dirs))
	for _, d := range dirs {
		kind, err := readAttr(filepath.Join(d, "type"))
		if err != nil || kind == "" {
			kind = "unknown"
		}
		zones = append(zones, zone{dir: d, id: filepath.Base(d), kind: kind})
	}
	return zones
}

// hwmonDevices maps each hwmon device under root to its `name` attribute, in numeric order
// (Documentation/hwmon/sysfs-interface.rst).
func hwmonDevices(root string) (dirs []string, names map[string]string) {
	dirs, _ = filepath.Glob(filepath.Join(root, "sys/class/hwmon/hwmon*"))
	sortNumeric(dirs, "hwmon")
	names = make(map[string]string, len(dirs))
	for _, d := range dirs {
		n, _ := readAttr(filepath.Join(d, "name"))
		names[d] = n
	}
	return dirs, names
}

// findHwmon returns the first hwmon device whose name is in want (in want's order) and which has
// attribute attr; with want empty, any device with attr.
func findHwmon(root string, want []string, attr string) (string, bool) {
	dirs, names := hwmonDevices(root)
	has := func(d string) bool { _, err := os.Stat(filepath.Join(d, attr)); return err == nil }
	if len(want) == 0 {
		for _, d := range dirs {
			if has(d) {
				return d, true
			}
		}
		return "", false
	}
	for _, w := range want {
		for _, d := range dirs {
			if names[d] == w && has(d) {
				return d, true
			}
		}
	}
	return "", false
}

// sortNumeric sorts paths ending in prefix+N by N, so thermal_zone10 follows thermal_zone9.
func sortNumeric(paths []string, prefix string) {
	num := func(p string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), prefix))
		if err != nil {
			return -1
		}
		return n
	}
	sort.SliceStable(paths, func(i, j int) bool { return num(paths[i]) < num(paths[j]) })
}
