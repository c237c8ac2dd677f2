package board

import (
	"encoding/binary"
	"fmt"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/mmr"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
	"periph.io/x/devices/v3/mcp9808"
)

// Role says what a temperature measures, and so what it drives: SoC and accelerator
// temperatures drive the fan and the thermal pause; an ambient sensor is only reported.
type Role string

// The roles a temperature can have.
const (
	RoleSoC     Role = "soc"
	RoleAccel   Role = "accel"
	RoleAmbient Role = "ambient"
)

// thermometer is one source of temperature. periph's sensors (physic.SenseEnv) fit through
// envThermometer; sysfs files through fileThermometer.
type thermometer interface {
	sense() (physic.Temperature, error)
}

// sensor is a thermometer with the names that health telemetry shows.
type sensor struct {
	name   string // e.g. cpu-thermal, apex_0, carrier
	source string // where it is read: a sysfs path or i2c bus@address
	role   Role
	th     thermometer
	watch  partWatch
}

// fileThermometer reads a millidegree attribute from sysfs; shown is its path on the box.
type fileThermometer struct{ path, shown string }

func newFileThermometer(root, path string) fileThermometer {
	return fileThermometer{path: path, shown: onBox(root, path)}
}

func (f fileThermometer) sense() (physic.Temperature, error) {
	t, err := readMilliC(f.path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.shown, err)
	}
	return t, nil
}

// envSenser is the one method of physic.SenseEnv that Midline uses.
type envSenser interface {
	Sense(e *physic.Env) error
}

// envThermometer reads a periph environmental sensor.
type envThermometer struct{ d envSenser }

func (e envThermometer) sense() (physic.Temperature, error) {
	var env physic.Env
	if err := e.d.Sense(&env); err != nil {
		return 0, err
	}
	return env.Temperature, nil
}

// i2cParts open the I²C temperature sensors a profile may name, through periph's drivers.
var i2cParts = map[string]func(bus i2c.Bus, addr uint16) (envSenser, error){
	"mcp9808": func(bus i2c.Bus, addr uint16) (envSenser, error) { return openMCP9808(bus, addr) },
	"bme280":  openBME280,
}

// openBME280 opens a Bosch BME280 (or BMP280: periph's driver tells them apart by chip ID) for
// temperature only, in forced mode: one conversion per read, asleep in between, so the sensor
// does not warm itself.
func openBME280(bus i2c.Bus, addr uint16) (envSenser, error) {
	d, err := bmxx80.NewI2C(bus, addr, &bmxx80.Opts{Temperature: bmxx80.O1x})
	if err != nil {
		return nil, fmt.Errorf("bme280 at %#x: %w", addr, err)
	}
	return d, nil
}

// MCP9808 identification registers and values (Microchip DS25095A, registers 0x06 and 0x07:
// manufacturer ID 0x0054, device ID 0x04 in the upper byte of the device ID/revision register).
const (
	mcp9808RegManufacturer = 0x06
	mcp9808RegDevice       = 0x07
	mcp9808Manufacturer    = 0x0054
	mcp9808DeviceID        = 0x04
)

// openMCP9808 checks that an MCP9808 answers at addr on bus (by its identification registers, so
// another part at the same address is not misread as a thermometer) and hands it to periph's
// driver.
func openMCP9808(bus i2c.Bus, addr uint16) (*mcp9808.Dev, error) {
	m := mmr.Dev8{Conn: &i2c.Dev{Bus: bus, Addr: addr}, Order: binary.BigEndian}
	mfr, err := m.ReadUint16(mcp9808RegManufacturer)
	if err != nil {
		return nil, fmt.Errorf("mcp9808 at %#x: read manufacturer ID: %w", addr, err)
	}
	dev, err := m.ReadUint16(mcp9808RegDevice)
	if err != nil {
		return nil, fmt.Errorf("mcp9808 at %#x: read device ID: %w", addr, err)
	}
	if mfr != mcp9808Manufacturer || dev>>8 != mcp9808DeviceID {
		return nil, fmt.Errorf("mcp9808 at %#x: manufacturer %#04x device %#04x is not an MCP9808: %w", addr, mfr, dev, ErrGarbage)
	}
	d, err := mcp9808.New(bus, &mcp9808.Opts{Addr: int(addr), Res: mcp9808.Maximum})
	if err != nil {
		return nil, fmt.Errorf("mcp9808 at %#x: %w", addr, err)
	}
	return d, nil
}
