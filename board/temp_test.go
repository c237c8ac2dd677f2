package board

import (
	"context"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// The MCP9808's transactions, from Microchip's datasheet (DS25095A): register pointer first,
// then the 16-bit register MSB first. T_A (0x05) carries three alert flags in bits 15..13
// (T_A >= T_CRIT, T_A > T_UPPER, T_A < T_LOWER), the sign in bit 12 and 1/16 °C steps below.
// The limits of a part fresh from power-on are 0 °C, so at 25 °C the first two flags are set.
var (
	mcpIdentify = []i2ctest.IO{
		{Addr: 0x18, W: []byte{0x06}, R: []byte{0x00, 0x54}}, // manufacturer ID: 0x0054
		{Addr: 0x18, W: []byte{0x07}, R: []byte{0x04, 0x00}}, // device ID 0x04, revision 0x00
	}
	mcpInit = []i2ctest.IO{
		{Addr: 0x18, W: []byte{0x08, 0x03}},       // resolution: +0.0625 °C
		{Addr: 0x18, W: []byte{0x01, 0x00, 0x00}}, // CONFIG: continuous conversion, alert off
	}
	mcp25_0625 = i2ctest.IO{Addr: 0x18, W: []byte{0x05}, R: []byte{0xC1, 0x91}} // 0x191/16 = 25.0625 °C
	mcpMinus10 = i2ctest.IO{Addr: 0x18, W: []byte{0x05}, R: []byte{0x3F, 0x60}} // T_LOWER flag, sign, 0xF60/16-256 = -10 °C
)

func mcpProfile() *Profile {
	return &Profile{Name: "test-carrier", I2C: []I2CSensorSpec{{Name: "carrier", Bus: "/dev/i2c-1", Addr: 0x18, Part: "mcp9808"}}}
}

func playbackOpener(t *testing.T, bus *i2ctest.Playback) func(string) (i2c.BusCloser, error) {
	return func(name string) (i2c.BusCloser, error) {
		if name != "/dev/i2c-1" {
			t.Errorf("opened bus %q, want /dev/i2c-1", name)
		}
		return bus, nil
	}
}

// TestMCP9808 reads the carrier sensor through periph's driver, then loses it mid-run: the
// Playback bus has no more transactions, as a sensor pulled off the header answers none.
func TestMCP9808(t *testing.T) {
	ops := append(append(append([]i2ctest.IO(nil), mcpIdentify...), mcpInit...), mcp25_0625, mcpMinus10)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	var logs logBuf
	o := testOptions("testdata/generic-linux", &logs)
	o.Profile, o.OpenI2C = mcpProfile(), playbackOpener(t, bus)
	b, err := New(context.Background(), Config{Profile: ProfileGenericLinux}, o)
	if err != nil {
		t.Fatal(err)
	}
	if m := b.Missing(); len(m) != 0 {
		t.Fatalf("missing %v", m)
	}
	r := b.Sample(context.Background())
	carrier := r.Temperatures[len(r.Temperatures)-1]
	want := TempReading{Name: "carrier", Source: "/dev/i2c-1@0x18", Role: RoleAmbient, Celsius: -10, OK: true}
	if carrier != want {
		t.Fatalf("carrier = %+v, want %+v", carrier, want)
	}
	r = b.Sample(context.Background())
	carrier = r.Temperatures[len(r.Temperatures)-1]
	if carrier.OK || !strings.Contains(strings.Join(r.Alarms, "\n"), "temperature carrier (/dev/i2c-1@0x18) unreadable") {
		t.Fatalf("after the sensor went: %+v, alarms %q", carrier, r.Alarms)
	}
	if r.Thermal.AcceleratorMayRun != true {
		t.Fatal("an ambient sensor drove the thermal policy")
	}
	if err := b.Close(); err != nil { // Playback.Close: every transaction was used
		t.Fatal(err)
	}
}

func TestMCP9808WrongPart(t *testing.T) {
	tests := []struct {
		name string
		ops  []i2ctest.IO
		want string
	}{
		{name: "another part at 0x18", ops: []i2ctest.IO{mcpIdentify[0], {Addr: 0x18, W: []byte{0x07}, R: []byte{0x02, 0x01}}}, want: "is not an MCP9808"},
		{name: "nothing answers", want: "read manufacturer ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tt.ops, DontPanic: true}
			var logs logBuf
			o := testOptions("testdata/generic-linux", &logs)
			o.Profile, o.OpenI2C = mcpProfile(), playbackOpener(t, bus)
			b := newTestBoard(t, Config{Profile: ProfileGenericLinux}, o)
			m := b.Missing()
			if len(m) != 1 || m[0].Part != "i2c mcp9808 /dev/i2c-1@0x18" || !strings.Contains(m[0].Detail, tt.want) {
				t.Fatalf("missing = %+v, want one naming %q", m, tt.want)
			}
			if bus.Count != len(tt.ops) {
				t.Fatalf("%d of %d transactions used", bus.Count, len(tt.ops))
			}
		})
	}
}

// The BME280's transactions (Bosch BST-BME280-DS002: chip ID 0x60 in register 0xD0; trimming
// parameters at 0x88..0xA1 and 0xE1..0xE7, little-endian; ctrl_hum 0xF2, status 0xF3,
// ctrl_meas 0xF4, config 0xF5; data from 0xF7 as pressure, temperature, humidity, 20-bit values
// MSB first). The trimming values and raw reading are the worked example of Bosch's BMP280
// datasheet (BST-BMP280-DS001, section 3.12), whose temperature compensation the BME280 shares:
// dig_T1 27504, dig_T2 26435, dig_T3 -1000, dig_P1..P9 36477, -10685, 3024, 2855, 140, -7,
// 15500, -14600, 6000; adc_T 519888 is 25.08 °C.
var bme280Ops = []i2ctest.IO{
	{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x60}}, // chip ID: BME280
	{Addr: 0x76, W: []byte{0x88}, R: []byte{
		0x70, 0x6B, 0x43, 0x67, 0x18, 0xFC, // dig_T1..T3
		0x7D, 0x8E, 0x43, 0xD6, 0xD0, 0x0B, 0x27, 0x0B, 0x8C, 0x00, 0xF9, 0xFF, 0x8C, 0x3C, 0xF8, 0xC6, 0x70, 0x17, // dig_P1..P9
		0x00, 0x00, // reserved, dig_H1
	}},
	{Addr: 0x76, W: []byte{0xE1}, R: make([]byte, 7)}, // dig_H2..H6: humidity is off
	// ctrl_meas asleep (osrs_t x1, osrs_p off), ctrl_hum off, config (t_sb 1000 ms, no
	// filter), ctrl_meas again: it must be written last for ctrl_hum to take effect.
	{Addr: 0x76, W: []byte{0xF4, 0x20, 0xF2, 0x00, 0xF5, 0xA0, 0xF4, 0x20}},
}

// bme280Read is one forced-mode reading: start a conversion, see it done, read the data.
var bme280Read = []i2ctest.IO{
	{Addr: 0x76, W: []byte{0xF4, 0x21}},            // ctrl_meas: forced mode
	{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x00}}, // status: not measuring
	{Addr: 0x76, W: []byte{0xF7}, R: []byte{0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x80, 0x00}},
}

func TestBME280(t *testing.T) {
	ops := append(append(append([]i2ctest.IO(nil), bme280Ops...), bme280Read...), bme280Read...)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	var logs logBuf
	o := testOptions("testdata/generic-linux", &logs)
	o.Profile = &Profile{Name: "test-carrier", I2C: []I2CSensorSpec{{Name: "enclosure", Bus: "/dev/i2c-1", Addr: 0x76, Part: "bme280"}}}
	o.OpenI2C = playbackOpener(t, bus)
	b := newTestBoard(t, Config{Profile: ProfileGenericLinux}, o)
	if m := b.Missing(); len(m) != 0 {
		t.Fatalf("missing %v", m)
	}
	r := b.Sample(context.Background())
	got := r.Temperatures[len(r.Temperatures)-1]
	want := TempReading{Name: "enclosure", Source: "/dev/i2c-1@0x76", Role: RoleAmbient, Celsius: 25.08, OK: true}
	if got != want {
		t.Fatalf("enclosure = %+v, want %+v", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if bus.Count != len(ops) {
		t.Fatalf("%d of %d transactions used", bus.Count, len(ops))
	}
}
