// Command smoke checks the board package on real hardware, one profile at a time. It is never run
// by `go test`: it reads and drives the box it runs on (fan, LED, optionally the watchdog), and
// some of what it checks takes a person looking at the box.
//
//	go run ./board/cmd/smoke -profile coral-devboard            # read, fan sweep, thermal pause
//	go run ./board/cmd/smoke -profile jetson-orin-nano -leds    # ... and show each LED pattern
//	go run ./board/cmd/smoke -profile generic-linux -watchdog   # ... and pet, then magic close
//
// It prints each step and ends with "smoke: N passed, N failed". See board/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/midline-rt/midline/board"
)

func main() {
	profile := flag.String("profile", "", "board profile: "+fmt.Sprint(board.ProfileNames()))
	root := flag.String("root", "/", "where sysfs is (a copy of a box's tree works too)")
	leds := flag.Bool("leds", false, "show every LED state for 3 s each, for a person to watch")
	wd := flag.Bool("watchdog", false, "open the watchdog device, pet it, then disarm it with the magic close (not under systemd's watchdog)")
	ledPin := flag.String("led-pin", "", "periph GPIO pin name of the status LED, for a carrier board that has one (the built-in profiles assign none)")
	settle := flag.Duration("settle", 5*time.Second, "how long the fan gets at each duty before its speed is read")
	flag.Parse()
	if *profile == "" {
		fmt.Fprintln(os.Stderr, "smoke: -profile is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s := &smoke{profile: *profile, opts: board.Options{Root: *root, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}}
	if *ledPin != "" {
		p, ok := board.ProfileByName(*profile)
		if !ok {
			fmt.Fprintf(os.Stderr, "smoke: unknown profile %q\n", *profile)
			os.Exit(2)
		}
		p.LEDPin = *ledPin
		s.opts.Profile = &p
	}
	s.readings(ctx)
	s.fanSweep(ctx, *settle)
	s.thermalPause(ctx)
	if *leds {
		s.ledStates(ctx)
	}
	if *wd {
		s.watchdog(ctx)
	}
	fmt.Printf("smoke: %d passed, %d failed\n", s.passed, s.failed)
	if s.failed > 0 {
		os.Exit(1)
	}
}

type smoke struct {
	profile        string
	opts           board.Options
	passed, failed int
	hottest        float64
}

func (s *smoke) check(what string, ok bool, detail string) {
	mark := "ok  "
	if ok {
		s.passed++
	} else {
		s.failed++
		mark = "FAIL"
	}
	fmt.Printf("%s %s: %s\n", mark, what, detail)
}

func (s *smoke) open(ctx context.Context, cfg board.Config) *board.Board {
	cfg.Profile = s.profile
	b, err := board.New(ctx, cfg, s.opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
	return b
}

// readings prints one sample as `midline board` will, and checks every temperature is readable.
func (s *smoke) readings(ctx context.Context) {
	b := s.open(ctx, board.Config{})
	defer b.Close()
	r := b.Sample(ctx)
	board.Format(os.Stdout, r)
	ok, n := 0, 0
	for _, t := range r.Temperatures {
		n++
		if t.OK {
			ok++
			if t.Role != board.RoleAmbient && t.Celsius > s.hottest {
				s.hottest = t.Celsius
			}
		}
	}
	s.check("temperatures", n > 0 && ok == n, fmt.Sprintf("%d of %d readable; %d parts missing (listed above)", ok, n, len(r.Missing)))
}

// fanSweep holds the fan at 30, 60 and 100 % through a flat curve and reads the tachometer.
func (s *smoke) fanSweep(ctx context.Context, settle time.Duration) {
	var last uint64
	for _, pct := range []float64{30, 60, 100} {
		b := s.open(ctx, board.Config{FanCurve: []board.FanPoint{{TempC: -50, DutyPct: pct}}})
		r := b.Sample(ctx)
		if r.Fan == nil {
			b.Close()
			s.check("fan", s.profile == board.ProfileGenericLinux, "no fan on this profile")
			return
		}
		sleep(ctx, settle)
		r = b.Sample(ctx)
		b.Close()
		if r.Fan.RPM == nil {
			s.check(fmt.Sprintf("fan at %.0f%%", pct), r.Fan.Error == "", "no tachometer; listen to the fan: "+r.Fan.Source)
			continue
		}
		spins := pct < 100 || *r.Fan.RPM > 0
		s.check(fmt.Sprintf("fan at %.0f%%", pct), r.Fan.Error == "" && *r.Fan.RPM >= last && spins, fmt.Sprintf("%d rpm (%s)", *r.Fan.RPM, r.Fan.Source))
		last = *r.Fan.RPM
	}
	if s.profile == board.ProfileJetson {
		fmt.Println("     (nvfancontrol also writes pwm1: stop it first, or these speeds are its own)")
	}
}

// thermalPause sets the high mark below the box's temperature and checks that jobs must wait.
func (s *smoke) thermalPause(ctx context.Context) {
	if s.hottest < 25 {
		s.check("thermal pause", false, fmt.Sprintf("hottest reading %.1f °C is too cool to test against", s.hottest))
		return
	}
	high := s.hottest - 10
	b := s.open(ctx, board.Config{ThermalHighC: high, ThermalLowC: high - 10})
	defer b.Close()
	r := b.Sample(ctx)
	s.check("thermal pause", !b.Thermal().MayRun() && len(r.Alarms) > 0, fmt.Sprintf("high mark %.1f °C: %v", high, r.Alarms))
}

// ledStates shows each state for a person to watch.
func (s *smoke) ledStates(ctx context.Context) {
	b := s.open(ctx, board.Config{})
	defer b.Close()
	for _, m := range b.Missing() {
		if m.Part == "status LED" {
			s.check("LED", false, m.Detail)
			return
		}
	}
	b.Start()
	for _, st := range []board.LEDState{board.LEDReady, board.LEDReceiving, board.LEDInferring, board.LEDUpdating, board.LEDFault} {
		b.Indicate(st, true)
		fmt.Printf("     LED should show %s\n", st)
		sleep(ctx, 3*time.Second)
		b.Indicate(st, false)
	}
	s.check("LED", b.Readings().LED != "", "patterns shown; a person must confirm they differed")
}

// watchdog pets the device three times, then disarms it; the box must not reboot afterwards.
func (s *smoke) watchdog(ctx context.Context) {
	o := s.opts
	o.Healthy = func() error { return nil }
	o.WatchdogInterval = time.Second
	b, err := board.New(ctx, board.Config{Profile: s.profile, Watchdog: true}, o)
	if err != nil {
		s.check("watchdog", false, err.Error())
		return
	}
	b.Start()
	sleep(ctx, 3500*time.Millisecond)
	pets := b.Readings().Watchdog.Pets
	err = b.Close()
	s.check("watchdog", pets >= 3 && err == nil, fmt.Sprintf("%d pets, magic close: %v (the box must stay up)", pets, err))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
