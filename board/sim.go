package board

import (
	"bytes"
	"errors"
	"sync"

	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"
)

// SimStep is one sample's worth of the simulated board's temperatures.
type SimStep struct {
	SoCC   float64
	AccelC float64
	// AccelLost makes the accelerator's sensor unreadable at this step, as a sensor that
	// disappears does.
	AccelLost bool
}

// DefaultSimStep is the sim board's temperatures when nobody scripts them: a box idling in a
// cool machine room.
var DefaultSimStep = SimStep{SoCC: 45, AccelC: 50}

// Sim is the simulated board of the `sim` profile. Its temperatures follow a script, one step
// per Board.Sample, holding the last step once the script ends; its fan, LED and watchdog record
// what the board did to them. It is deterministic: the same script gives the same readings.
type Sim struct {
	mu    sync.Mutex
	steps []SimStep
	i     int
	duty  float64
	led   *gpiotest.Pin
	wd    simWatchdog
}

// NewSim returns a simulated board that will play steps (DefaultSimStep if none).
func NewSim(steps ...SimStep) *Sim {
	s := &Sim{led: &gpiotest.Pin{N: "SIM_LED", Num: 0, Fn: "Out"}}
	s.Script(steps...)
	return s
}

// Script replaces the script; the next sample plays its first step.
func (s *Sim) Script(steps ...SimStep) {
	if len(steps) == 0 {
		steps = []SimStep{DefaultSimStep}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps, s.i = append([]SimStep(nil), steps...), -1
}

// advance moves to the next step; Board.Sample calls it first.
func (s *Sim) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.i < len(s.steps)-1 {
		s.i++
	}
}

func (s *Sim) step() SimStep {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steps[max(s.i, 0)]
}

// LED is the simulated status LED pin (periph's gpiotest pin).
func (s *Sim) LED() *gpiotest.Pin { return s.led }

// FanDuty is the duty, in percent, the board last set.
func (s *Sim) FanDuty() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duty
}

// WatchdogWrites returns every byte written to the simulated watchdog device.
func (s *Sim) WatchdogWrites() []byte { return s.wd.bytes() }

// simThermo reads one of the step's temperatures.
type simThermo struct {
	s     *Sim
	accel bool
}

var errSimLost = errors.New("sim: sensor lost")

func (t simThermo) sense() (physic.Temperature, error) {
	st := t.s.step()
	c := st.SoCC
	if t.accel {
		if st.AccelLost {
			return 0, errSimLost
		}
		c = st.AccelC
	}
	return physic.Temperature(c*1000)*physic.MilliKelvin + physic.ZeroCelsius, nil
}

// simFan records the duty and turns it into a plausible speed: 5000 rpm at full duty.
type simFan struct{ s *Sim }

func (f simFan) setDuty(pct float64) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.duty = pct
	return nil
}

func (f simFan) duty() (float64, error) { return f.s.FanDuty(), nil }
func (f simFan) release() error         { return nil }
func (f simFan) source() string         { return "sim" }
func (f simFan) rpm() (uint64, error) {
	return uint64(f.s.FanDuty() * 50), nil
}

// simWatchdog is an in-memory watchdog device.
type simWatchdog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *simWatchdog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *simWatchdog) Close() error { return nil }

func (w *simWatchdog) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}
