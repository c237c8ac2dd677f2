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
