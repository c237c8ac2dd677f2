package board

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Thermal is the thermal policy: at or above the high mark accelerator jobs must wait (reception
// continues) and an alarm is raised; at or below the low mark they may run again. The daemon's
// job runner asks MayRun or blocks in Wait before each accelerator job.
type Thermal struct {
	highC, lowC float64

	mu      sync.Mutex
	waiting bool
	since   time.Time
	reason  string
	resume  chan struct{} // closed when jobs may run again; nil while they may
}

func newThermal(highC, lowC float64) *Thermal {
	return &Thermal{highC: highC, lowC: lowC}
}

// MayRun reports whether accelerator jobs may run now.
func (t *Thermal) MayRun() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.waiting
}

// Wait returns nil once accelerator jobs may run, or ctx's error if it ends first.
func (t *Thermal) Wait(ctx context.Context) error {
	t.mu.Lock()
	ch := t.resume
	t.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ThermalState is the policy's state for health telemetry.
type ThermalState struct {
	AcceleratorMayRun bool      `json:"accelerator_may_run"`
	HighC             float64   `json:"high_c"`
	LowC              float64   `json:"low_c"`
	Since             time.Time `json:"since,omitzero"`
	Reason            string    `json:"reason,omitempty"`
}

// State returns the policy's state.
func (t *Thermal) State() ThermalState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return ThermalState{AcceleratorMayRun: !t.waiting, HighC: t.highC, LowC: t.lowC, Since: t.since, Reason: t.reason}
}

// update applies the hottest reading (c, from src); ok false means no temperature could be read,
// which changes nothing: the fan runs full and the alarm comes from the lost sensors instead.
// It reports whether the state changed.
func (t *Thermal) update(c float64, src string, ok bool, now time.Time) bool {
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case !t.waiting && c >= t.highC:
		t.waiting, t.since, t.resume = true, now, make(chan struct{})
		t.reason = fmt.Sprintf("%s at %.1f °C reached the high mark %.1f °C; accelerator jobs wait until %.1f °C", src, c, t.highC, t.lowC)
		return true
	case t.waiting && c <= t.lowC:
		close(t.resume)
		t.waiting, t.since, t.resume, t.reason = false, now, nil, ""
		return true
	}
	return false
}
