package board

import (
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// LEDState is what the status LED shows. Each state has its own blink pattern, so a person at
// the box can tell them apart on a single LED.
type LEDState int

// The LED states, in rising priority: when several are set, the highest shows.
const (
	LEDOff LEDState = iota
	LEDReady
	LEDReceiving
	LEDInferring
	LEDUpdating
	LEDFault
)

var ledNames = [...]string{"off", "ready", "receiving", "inferring", "updating", "fault"}

func (s LEDState) String() string {
	if s < 0 || int(s) >= len(ledNames) {
		return "unknown"
	}
	return ledNames[s]
}

// LEDStep is the time one step of a pattern lasts.
const LEDStep = 100 * time.Millisecond

// ledPeriod is the length of every pattern, in steps.
const ledPeriod = 10

// ledPatterns are one period of each state's pattern, one character per LEDStep ('#' on, '.'
// off). Every pattern lasts one second, so any two differ within the same second.
var ledPatterns = [len(ledNames)]string{
	LEDOff:       "..........",
	LEDReady:     "##########", // steady
	LEDReceiving: "#####.....", // slow blink, 1 Hz
	LEDInferring: "#.#.#.#.#.", // fast blink, 5 Hz
	LEDUpdating:  "#.#.......", // double flash
	LEDFault:     "#.#.#.....", // triple flash
}

// ledLevel is the LED's level at step n of state s's pattern.
func ledLevel(s LEDState, n int) gpio.Level {
	p := ledPatterns[s]
	return p[n%len(p)] == '#'
}

// indicator drives the status LED: the daemon sets and clears activities, the board sets its own
// fault, and tick steps the shown pattern.
type indicator struct {
	pin gpio.PinOut // nil when the board has no LED

	mu      sync.Mutex
	set     [len(ledNames)]bool
	fault   bool // the board's own fault (a thermal alarm, a lost part)
	running bool
	shown   LEDState
	step    int
}

// indicate sets or clears one state.
func (l *indicator) indicate(s LEDState, on bool) {
	if s <= LEDOff || int(s) >= len(ledNames) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set[s] = on
}

func (l *indicator) setFault(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fault = on
}

// state is the state shown: the highest one set, ready when none, off before start.
func (l *indicator) state() LEDState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

func (l *indicator) stateLocked() LEDState {
	if !l.running {
		return LEDOff
	}
	if l.fault {
		return LEDFault
	}
	for s := LEDFault; s > LEDReady; s-- {
		if l.set[s] {
			return s
		}
	}
	return LEDReady
}

// tick writes the next step; a new state starts its pattern from the beginning.
func (l *indicator) tick() error {
	l.mu.Lock()
	s := l.stateLocked()
	if s != l.shown {
		l.shown, l.step = s, 0
	}
	n := l.step
	l.step++
	l.mu.Unlock()
	if l.pin == nil {
		return nil
	}
	return l.pin.Out(ledLevel(s, n))
}

func (l *indicator) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = true
}

// stop turns the LED off.
func (l *indicator) stop() error {
	l.mu.Lock()
	l.running = false
	l.mu.Unlock()
	if l.pin == nil {
		return nil
	}
	return l.pin.Out(gpio.Low)
}
