package board

import (
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func TestLEDPatternsDistinct(t *testing.T) {
	seen := map[string]LEDState{}
	for s := LEDOff; s <= LEDFault; s++ {
		p := ledPatterns[s]
		if len(p) != int(ledPeriod) {
			t.Errorf("%s: pattern %q lasts %d steps, want %d", s, p, len(p), ledPeriod)
		}
		if other, dup := seen[p]; dup {
			t.Errorf("%s and %s share the pattern %q", s, other, p)
		}
		seen[p] = s
	}
}

func TestLEDPriority(t *testing.T) {
	l := &indicator{}
	check := func(want LEDState) {
		t.Helper()
		if got := l.state(); got != want {
			t.Fatalf("state %s, want %s", got, want)
		}
	}
	check(LEDOff) // not started
	l.start()
	check(LEDReady)
	l.indicate(LEDReceiving, true)
	check(LEDReceiving)
	l.indicate(LEDInferring, true)
	check(LEDInferring)
	l.indicate(LEDUpdating, true)
	check(LEDUpdating)
	l.setFault(true)
	check(LEDFault)
	l.setFault(false)
	l.indicate(LEDUpdating, false)
	l.indicate(LEDInferring, false)
	check(LEDReceiving)
	l.indicate(LEDFault, true)
	check(LEDFault)
	l.indicate(LEDFault, false)
	l.indicate(LEDReceiving, false)
	l.indicate(LEDState(42), true) // ignored
	check(LEDReady)
}

// TestLEDTicks drives a periph gpiotest pin step by step and reads back each level.
func TestLEDTicks(t *testing.T) {
	pin := &gpiotest.Pin{N: "LED"}
	l := &indicator{pin: pin}
	l.start()
	levels := func(n int) string {
		var s []byte
		for range n {
			if err := l.tick(); err != nil {
				t.Fatal(err)
			}
			s = append(s, map[gpio.Level]byte{gpio.High: '#', gpio.Low: '.'}[pin.Read()])
		}
		return string(s)
	}
	if got := levels(12); got != "############" {
		t.Fatalf("ready: %s", got)
	}
	l.indicate(LEDInferring, true)
	if got := levels(12); got != "#.#.#.#.#.#." {
		t.Fatalf("inferring: %s", got)
	}
	l.indicate(LEDUpdating, true) // a new state starts its pattern from the beginning
	if got := levels(15); got != "#.#.......#.#.." {
		t.Fatalf("updating: %s", got)
	}
	l.setFault(true)
	if got := levels(10); got != "#.#.#....." {
		t.Fatalf("fault: %s", got)
	}
	if err := l.stop(); err != nil || pin.Read() != gpio.Low {
		t.Fatalf("stop: %v, pin %v", err, pin.Read())
	}
}
