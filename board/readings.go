package board

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Readings is one snapshot of the board for health telemetry (`midline.health/1`) and for
// `midline board`.
type Readings struct {
	Profile      string          `json:"profile"`
	At           time.Time       `json:"at,omitzero"`
	Temperatures []TempReading   `json:"temperatures"`
	Fan          *FanReading     `json:"fan,omitempty"`
	LED          string          `json:"led"`
	Thermal      ThermalState    `json:"thermal"`
	Watchdog     WatchdogReading `json:"watchdog"`
	// Alarms are conditions facilities must see: the thermal pause, unreadable sensors, a fan
	// that cannot be driven.
	Alarms  []string  `json:"alarms,omitempty"`
	Missing []Missing `json:"missing,omitempty"`
}

// TempReading is one temperature: its name (a thermal zone's type, apex_0, an I²C sensor's
// name), where it was read, what it measures, and the value or why there is none.
type TempReading struct {
	Name    string  `json:"name"`
	Source  string  `json:"source"`
	Role    Role    `json:"role"`
	Celsius float64 `json:"celsius"`
	OK      bool    `json:"ok"`
	Error   string  `json:"error,omitempty"`
}

// FanReading is the fan's duty as set and its speed where a tachometer reads it.
type FanReading struct {
	Source  string  `json:"source"`
	DutyPct float64 `json:"duty_pct"`
	RPM     *uint64 `json:"rpm,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Sample reads every sensor, applies the thermal policy, sets the fan and returns the new
// readings. A started Board calls it every sample interval; `midline board` calls it once.
func (b *Board) Sample(ctx context.Context) Readings {
	if ctx.Err() != nil {
		return b.Readings()
	}
	b.sampleMu.Lock()
	defer b.sampleMu.Unlock()
	now := b.opts.Clock.Now()
	if b.sim != nil {
		b.sim.advance()
	}
	r := Readings{Profile: b.prof.Name, At: now, Temperatures: make([]TempReading, 0, len(b.sensors))}
	hot, hotSrc, ok := b.readTemps(&r)
	if b.thermal.update(hot, hotSrc, ok, now) {
		st := b.thermal.State()
		b.log.Warn("board: thermal policy changed", "accelerator_may_run", st.AcceleratorMayRun, "celsius", round3(hot), "sensor", hotSrc)
		if b.opts.OnThermal != nil {
			b.opts.OnThermal(st)
		}
	}
	if !ok && len(b.sensors) > 0 {
		r.Alarms = append(r.Alarms, "no SoC or accelerator temperature readable; the fan runs full")
	}
	r.Fan = b.driveFan(hot, ok, &r)
	b.mu.Lock()
	b.last = r
	b.mu.Unlock()
	r = b.snapshot(r)
	b.led.setFault(len(r.Alarms) > 0)
	r.LED = b.led.state().String()
	return r
}

// readTemps reads every sensor into r and returns the hottest SoC or accelerator temperature.
func (b *Board) readTemps(r *Readings) (hot float64, src string, ok bool) {
	for _, s := range b.sensors {
		t, err := s.th.sense()
		s.watch.observe(b.log, s.name, err)
		tr := TempReading{Name: s.name, Source: s.source, Role: s.role}
		if err != nil {
			tr.Error = err.Error()
			r.Alarms = append(r.Alarms, fmt.Sprintf("temperature %s (%s) unreadable: %v", s.name, s.source, err))
		} else {
			tr.Celsius, tr.OK = round3(t.Celsius()), true
			if s.role != RoleAmbient && (!ok || tr.Celsius > hot) {
				hot, src, ok = tr.Celsius, s.name, true
			}
		}
		r.Temperatures = append(r.Temperatures, tr)
	}
	return hot, src, ok
}

// driveFan sets the fan from the hottest temperature and reads its speed.
func (b *Board) driveFan(hot float64, ok bool, r *Readings) *FanReading {
	if b.fan == nil {
		return nil
	}
	fr := &FanReading{Source: b.fan.source()}
	duty, err := b.fanDuty(hot, ok)
	fr.DutyPct = round3(duty)
	b.fanWatch.observe(b.log, "fan", err)
	if err != nil {
		fr.Error = err.Error()
		r.Alarms = append(r.Alarms, "fan: "+err.Error())
	}
	if b.tach != nil {
		rpm, err := b.tach.rpm()
		b.tachWatch.observe(b.log, "fan tachometer", err)
		if err == nil {
			fr.RPM = &rpm
			b.checkStall(duty, rpm, r)
		} else if fr.Error == "" {
			fr.Error = "tachometer: " + err.Error()
		}
	}
	return fr
}

// Stall detection: a fan driven at stallDutyPct or more that reads 0 rpm on stallSamples samples
// in a row has stopped (a seized bearing, a cut wire). One sample is not enough: a fan starting
// from rest reads 0 until it turns.
const (
	stallDutyPct = 20
	stallSamples = 2
)

func (b *Board) checkStall(duty float64, rpm uint64, r *Readings) {
	if b.opts.ReadOnly || duty < stallDutyPct || rpm > 0 {
		b.stalls = 0
		return
	}
	if b.stalls++; b.stalls >= stallSamples {
		r.Alarms = append(r.Alarms, fmt.Sprintf("fan stalled: 0 rpm at %.0f%% duty", duty))
	}
}

// fanDuty sets the fan from the curve, or on a read-only board reads what it runs at.
func (b *Board) fanDuty(hot float64, ok bool) (float64, error) {
	if b.opts.ReadOnly {
		return b.fan.duty()
	}
	duty := b.fanCtl.next(hot, ok)
	if err := b.fan.setDuty(duty); err != nil {
		return duty, fmt.Errorf("cannot be driven: %w", err)
	}
	return duty, nil
}

// snapshot adds the live parts (thermal policy and its alarm, LED, watchdog, missing parts) to a
// sample's readings, into new slices.
func (b *Board) snapshot(r Readings) Readings {
	r.Thermal = b.thermal.State()
	alarms := r.Alarms
	r.Alarms = nil
	if !r.Thermal.AcceleratorMayRun {
		r.Alarms = append(r.Alarms, "thermal: "+r.Thermal.Reason)
	}
	r.Alarms = append(r.Alarms, alarms...)
	r.LED = b.led.state().String()
	r.Watchdog = b.wd.reading()
	if b.opts.ReadOnly && b.cfg.Watchdog {
		r.Watchdog = WatchdogReading{Owner: "daemon", Device: b.prof.WatchdogDevice, Note: "not opened by this read-only reader"}
	}
	r.Missing = b.Missing()
	return r
}

// Readings returns the last sample's readings with the LED, watchdog and thermal state as they
// are now.
func (b *Board) Readings() Readings {
	b.mu.Lock()
	r := b.last // holds the sample's own alarms; snapshot adds the live ones
	b.mu.Unlock()
	return b.snapshot(r)
}

// Start runs the board's loops: sampling, the LED pattern and, when board.watchdog is set, the
// watchdog petter. They stop when Close is called. A second Start does nothing.
func (b *Board) Start() {
	b.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel = cancel
		b.led.start()
		b.every(ctx, b.opts.SampleInterval, func() { b.Sample(ctx) })
		if b.led.pin != nil {
			var w partWatch
			b.every(ctx, LEDStep, func() { w.observe(b.log, "status LED", b.led.tick()) })
		}
		if b.wd != nil {
			var w partWatch
			b.every(ctx, petInterval(b.wd.timeout, b.opts.WatchdogInterval), func() {
				w.observe(b.log, "watchdog", b.wd.pet(b.opts.Clock.Now()))
			})
		}
	})
}

// every runs f now and then every d until ctx ends, in a goroutine the Board owns and Close
// joins. The ticker is made before the goroutine starts, so a fake clock sees it at once.
func (b *Board) every(ctx context.Context, d time.Duration, f func()) {
	t := b.opts.Clock.NewTicker(d)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer t.Stop()
		f()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.Chan():
				f()
			}
		}
	}()
}

// Close stops the loops and waits for them, disarms the watchdog with the magic close, turns the
// LED off, hands the fan back to the kernel and closes the I²C buses. It returns the first
// errors of those steps; calling it again returns the same result.
func (b *Board) Close() error {
	b.closeOnce.Do(func() {
		b.startOnce.Do(func() {}) // a Start after Close starts nothing
		if b.cancel != nil {
			b.cancel()
		}
		b.wg.Wait()
		var errs []error
		if b.wd != nil {
			errs = append(errs, b.wd.close())
		}
		errs = append(errs, b.led.stop())
		if b.fan != nil && !b.opts.ReadOnly {
			errs = append(errs, b.fan.release())
		}
		for _, bus := range b.buses {
			errs = append(errs, bus.Close())
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}
