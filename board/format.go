package board

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Report prints the board's readings once, as `midline board` does: it opens the board
// read-only (the fan, the LED and the watchdog stay with the daemon, if one runs), samples once,
// formats the readings and closes the board.
func Report(ctx context.Context, w io.Writer, cfg Config, opts Options) error {
	opts.ReadOnly = true
	b, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	r := b.Sample(ctx)
	if err := Format(w, r); err != nil {
		b.Close()
		return err
	}
	return b.Close()
}

// Format writes readings as the text `midline board` prints: one section per part, every
// temperature with its name, role and source, the alarms and the missing parts.
func Format(w io.Writer, r Readings) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "profile\t%s\n", r.Profile)
	if !r.At.IsZero() {
		fmt.Fprintf(tw, "at\t%s\n", r.At.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "accelerator\t%s\n", thermalLine(r.Thermal))
	fmt.Fprintf(tw, "temperatures\t%d\n", len(r.Temperatures))
	for _, t := range r.Temperatures {
		v := fmt.Sprintf("%.1f °C", t.Celsius)
		if !t.OK {
			v = "unreadable: " + t.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, t.Role, t.Source, v)
	}
	fmt.Fprintf(tw, "fan\t%s\n", fanLine(r.Fan))
	fmt.Fprintf(tw, "led\t%s\n", r.LED)
	fmt.Fprintf(tw, "watchdog\t%s\n", watchdogLine(r.Watchdog))
	list(tw, "alarms", r.Alarms, func(s string) string { return s })
	list(tw, "missing", r.Missing, func(m Missing) string { return m.Part + ": " + m.Detail })
	return tw.Flush()
}

func list[T any](w io.Writer, title string, items []T, line func(T) string) {
	if len(items) == 0 {
		fmt.Fprintf(w, "%s\tnone\n", title)
		return
	}
	fmt.Fprintf(w, "%s\t%d\n", title, len(items))
	for _, it := range items {
		fmt.Fprintf(w, "  %s\n", line(it))
	}
}

func thermalLine(t ThermalState) string {
	state := "may run"
	if !t.AcceleratorMayRun {
		state = "waits (thermal)"
	}
	return fmt.Sprintf("%s; pause at %.1f °C, resume at %.1f °C", state, t.HighC, t.LowC)
}

func fanLine(f *FanReading) string {
	if f == nil {
		return "none"
	}
	s := fmt.Sprintf("%.0f%% duty", f.DutyPct)
	if f.RPM != nil {
		s += fmt.Sprintf(", %d rpm", *f.RPM)
	}
	s += " (" + f.Source + ")"
	if f.Error != "" {
		s += "; error: " + f.Error
	}
	return s
}

func watchdogLine(w WatchdogReading) string {
	if w.Owner != "daemon" {
		return "not driven by midline (board.watchdog off; under systemd, systemd owns it)"
	}
	if w.Note != "" {
		return w.Device + ": " + w.Note
	}
	s := fmt.Sprintf("%s, %d pets", w.Device, w.Pets)
	if w.TimeoutS > 0 {
		s += fmt.Sprintf(", timeout %.0f s", w.TimeoutS)
	}
	switch {
	case w.Closed:
		s += ", disarmed (magic close)"
	case w.Starving != "":
		s += ", NOT petting: " + w.Starving
	}
	if w.Error != "" {
		s += "; error: " + w.Error
	}
	return s
}
