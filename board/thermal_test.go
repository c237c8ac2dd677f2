package board

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestThermalPauseResume scripts the sim board through a heat wave: accelerator jobs wait from
// the high mark (80 °C) until the low mark (70 °C), with an alarm and the fault LED meanwhile.
func TestThermalPauseResume(t *testing.T) {
	steps := []struct {
		soc, accel float64
		mayRun     bool
	}{
		{45, 50, true},
		{70, 79.9, true},
		{72, 80, false}, // at the high mark: wait
		{75, 85, false},
		{70, 71, false}, // between the marks: still waiting
		{68, 70, true},  // at the low mark: resume
		{70, 75, true},  // between the marks again: still running
	}
	var script []SimStep
	for _, s := range steps {
		script = append(script, SimStep{SoCC: s.soc, AccelC: s.accel})
	}
	sim := NewSim(script...)
	var logs logBuf
	o := testOptions("", &logs)
	var events []ThermalState
	o.Sim, o.OnThermal = sim, func(st ThermalState) { events = append(events, st) }
	b := newTestBoard(t, Config{Profile: ProfileSim}, o)
	b.led.start() // the LED shows states; no loops, so every sample is the test's own
	for i, s := range steps {
		r := b.Sample(context.Background())
		if r.Thermal.AcceleratorMayRun != s.mayRun || b.Thermal().MayRun() != s.mayRun {
			t.Fatalf("step %d (accel %v °C): may run %v, want %v", i, s.accel, r.Thermal.AcceleratorMayRun, s.mayRun)
		}
		alarmed := len(r.Alarms) == 1 && strings.HasPrefix(r.Alarms[0], "thermal: accel at")
		if alarmed == s.mayRun || (r.LED == "fault") == s.mayRun {
			t.Fatalf("step %d: alarms %q, LED %s", i, r.Alarms, r.LED)
		}
	}
	if n := logs.count("thermal policy changed"); n != 2 {
		t.Fatalf("%d policy changes logged, want 2", n)
	}
	if len(events) != 2 || events[0].AcceleratorMayRun || !events[1].AcceleratorMayRun || events[0].Reason == "" {
		t.Fatalf("OnThermal events %+v, want a pause then a resume", events)
	}
}

func TestThermalWait(t *testing.T) {
	th := newThermal(80, 70)
	if err := th.Wait(context.Background()); err != nil {
		t.Fatalf("Wait while cool: %v", err)
	}
	th.update(90, "apex_0", true, testStart)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := th.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait while hot with a cancelled context = %v", err)
	}
	done := make(chan error)
	go func() { done <- th.Wait(context.Background()) }()
	th.update(75, "apex_0", true, testStart) // between the marks: the waiter stays
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v above the low mark", err)
	default:
	}
	th.update(69, "apex_0", true, testStart)
	if err := <-done; err != nil {
		t.Fatalf("Wait after cooling: %v", err)
	}
	if th.update(99, "x", false, testStart) || !th.MayRun() {
		t.Fatal("no reading changed the policy")
	}
}
