package board

import (
	"fmt"
	"strconv"
	"strings"
)

// maxSimSteps bounds a parsed script; a demo needs a few dozen.
const maxSimSteps = 10_000

// ParseSimScript reads a script for the sim board: steps separated by spaces or commas, each
// "SOC/ACCEL" in °C, ACCEL "-" for a lost accelerator sensor. "45/50 70/82 72/- 60/65" heats the
// accelerator past the default high mark, loses its sensor, then cools down.
func ParseSimScript(s string) ([]SimStep, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) > maxSimSteps {
		return nil, fmt.Errorf("board: sim script has more than %d steps", maxSimSteps)
	}
	steps := make([]SimStep, 0, len(fields))
	for i, f := range fields {
		st, err := parseSimStep(f)
		if err != nil {
			return nil, fmt.Errorf("board: sim script step %d %q: %w", i+1, f, err)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

func parseSimStep(f string) (SimStep, error) {
	soc, accel, ok := strings.Cut(f, "/")
	if !ok {
		return SimStep{}, fmt.Errorf("want SOC/ACCEL")
	}
	var st SimStep
	var err error
	if st.SoCC, err = simCelsius(soc); err != nil {
		return SimStep{}, err
	}
	if accel == "-" {
		st.AccelLost = true
		return st, nil
	}
	st.AccelC, err = simCelsius(accel)
	return st, err
}

func simCelsius(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= minPlausibleMilliC/1000 && v <= maxPlausibleMilliC/1000) { // NaN too
		return 0, fmt.Errorf("%q is not a temperature in %d..%d °C", s, minPlausibleMilliC/1000, maxPlausibleMilliC/1000)
	}
	return v, nil
}

// String writes the step as ParseSimScript reads it.
func (st SimStep) String() string {
	accel := "-"
	if !st.AccelLost {
		accel = strconv.FormatFloat(st.AccelC, 'g', -1, 64)
	}
	return strconv.FormatFloat(st.SoCC, 'g', -1, 64) + "/" + accel
}
