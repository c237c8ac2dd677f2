package board

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// DefaultSampleInterval is how often a started Board reads its sensors and sets its fan.
const DefaultSampleInterval = 5 * time.Second

// Options are what a Board needs besides its configuration. The zero value is the real machine;
// tests and the sim profile replace the parts they fake.
type Options struct {
	// Root is where sysfs is found ("/" on a box; a fake tree in tests).
	Root string
	// Clock drives the sampling, LED and watchdog loops and stamps readings.
	Clock  clockwork.Clock
	Logger *slog.Logger
	// Healthy says whether the pipeline is healthy; the watchdog is petted only while it returns
	// nil. Required when board.watchdog is set; it must fail when the pipeline stalls.
	Healthy func() error
	// Getenv reads the environment (os.Getenv by default); used to refuse a second watchdog owner.
	Getenv func(string) string
	// Sim is the simulated board for the sim profile (NewSim() by default).
	Sim *Sim
	// Profile replaces the built-in profile board.profile names (a new carrier board, a test).
	Profile *Profile
	// OpenI2C, PinByName and OpenWatchdog reach the hardware; by default periph's registries
	// (after host.Init) and the device file.
	OpenI2C      func(bus string) (i2c.BusCloser, error)
	PinByName    func(name string) gpio.PinIO
	OpenWatchdog func(path string) (io.WriteCloser, error)
	// ReadOnly opens the board to look, not to drive: the fan's duty is read, not set, and the
	// LED and watchdog are not opened, so `midline board` can run beside the daemon.
	ReadOnly bool
	// OnThermal, if set, is called with the new state each time accelerator jobs must start
	// waiting or may run again (for the daemon's events); it runs in the sampling goroutine and
	// must not call Sample.
	OnThermal func(ThermalState)
	// SampleInterval and WatchdogInterval override the defaults.
	SampleInterval   time.Duration
	WatchdogInterval time.Duration
}

var hostInit = sync.OnceValue(func() error {
	_, err := host.Init()
	return err
})

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.OpenI2C == nil {
		o.OpenI2C = func(bus string) (i2c.BusCloser, error) {
			if err := hostInit(); err != nil {
				return nil, err
			}
			return i2creg.Open(bus)
		}
	}
	if o.PinByName == nil {
		o.PinByName = func(name string) gpio.PinIO {
			if hostInit() != nil {
				return nil
			}
			return gpioreg.ByName(name)
		}
	}
	if o.OpenWatchdog == nil {
		o.OpenWatchdog = func(path string) (io.WriteCloser, error) { return os.OpenFile(path, os.O_WRONLY, 0) }
	}
	if o.SampleInterval <= 0 {
		o.SampleInterval = DefaultSampleInterval
	}
	return o
}

// Missing is a part the profile names that this box does not have (or that did not answer when
// the board started). It is reported once, in every Readings and one log line, never as errors.
type Missing struct {
	Part   string `json:"part"`
	Detail string `json:"detail"`
}

// tachometer reads a fan's speed.
type tachometer interface {
	rpm() (uint64, error)
}

// fileTach reads an RPM attribute; shown is its path on the box, for errors.
type fileTach struct{ path, shown string }

func (f fileTach) rpm() (uint64, error) {
	v, err := readUint(f.path, maxRPM)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.shown, err)
	}
	return v, nil
}

// Board is one box's hardware: built from a profile by New, sampled by Sample (or by its own
// loop after Start), released by Close.
type Board struct {
	cfg     Config
	prof    Profile
	opts    Options
	log     *slog.Logger
	thermal *Thermal
	led     *indicator
	sim     *Sim

	sensors   []*sensor
	fan       fanOutput
	fanCtl    fanControl
	fanWatch  partWatch
	tach      tachometer
	tachWatch partWatch
	stalls    int // samples in a row with the fan driven but not turning
	wd        *watchdog
	buses     []i2c.BusCloser
	missing   []Missing

	sampleMu sync.Mutex
	mu       sync.Mutex
	last     Readings

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeErr  error
}

// New builds the board that cfg.Profile names, looking up each of its parts; parts the box lacks
// are listed in Readings().Missing. It fails only on a bad configuration or a watchdog that was
// asked for and cannot be had.
func New(ctx context.Context, cfg Config, opts Options) (*Board, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	prof := profiles[cfg.Profile]
	if opts.Profile != nil {
		prof = *opts.Profile
	}
	prof = cfg.applyTo(prof)
	o := opts.withDefaults()
	b := &Board{cfg: cfg, prof: prof, opts: o, log: o.Logger.With("profile", prof.Name),
		thermal: newThermal(cfg.ThermalHighC, cfg.ThermalLowC), led: &indicator{},
		fanCtl: fanControl{curve: cfg.FanCurve, hystC: DefaultFanHysteresisC}}
	if prof.Name == ProfileSim {
		b.setupSim()
	} else {
		b.setupSensors(ctx)
		b.setupFan()
		b.setupLED()
	}
	if err := b.setupWatchdog(); err != nil {
		b.Close()
		return nil, err
	}
	for _, m := range b.missing {
		b.log.Info("board: part not present", "part", m.Part, "detail", m.Detail)
	}
	b.last = Readings{Profile: prof.Name, Temperatures: []TempReading{}}
	return b, nil
}

func (b *Board) addMissing(part, format string, args ...any) {
	b.missing = append(b.missing, Missing{Part: part, Detail: fmt.Sprintf(format, args...)})
}

func (b *Board) setupSim() {
	s := b.opts.Sim
	if s == nil {
		s = NewSim()
	}
	b.sim = s
	b.sensors = []*sensor{
		{name: "soc", source: "sim", role: RoleSoC, th: simThermo{s: s}},
		{name: "accel", source: "sim", role: RoleAccel, th: simThermo{s: s, accel: true}},
	}
	b.fan, b.tach = simFan{s}, simFan{s}
	if !b.opts.ReadOnly {
		b.led.pin = s.led
	}
}

// setupSensors finds the thermal zones, the accelerator's temperature and the I²C sensors.
func (b *Board) setupSensors(ctx context.Context) {
	root := b.opts.Root
	zones := thermalZones(root)
	if len(zones) == 0 {
		b.addMissing("thermal zones", "no /sys/class/thermal/thermal_zone*")
	}
	accelFound := false
	for _, z := range zones {
		role := RoleSoC
		if b.prof.AccelZone != "" && z.kind == b.prof.AccelZone {
			role, accelFound = RoleAccel, true
		}
		b.sensors = append(b.sensors, &sensor{name: z.kind, source: z.id, role: role, th: newFileThermometer(root, filepath.Join(z.dir, "temp"))})
	}
	if b.prof.AccelZone != "" && !accelFound {
		b.addMissing("accelerator temperature", "no thermal zone of type %s", b.prof.AccelZone)
	}
	if b.prof.ApexGlob != "" {
		b.setupApex(root)
	}
	for _, spec := range b.prof.I2C {
		if ctx.Err() != nil {
			return
		}
		b.setupI2C(spec)
	}
	b.probeSensors()
}

// probeSensors reads each sensor once and drops those that do not answer, as missing: a zone the
// kernel lists but cannot read (Orin Nano's cv zones read -256 °C while unpowered) is reported
// once here. A sensor that answered now and fails later is lost, and raises an alarm.
func (b *Board) probeSensors() {
	kept := b.sensors[:0]
	for _, s := range b.sensors {
		if _, err := s.th.sense(); err != nil {
			b.addMissing("temperature "+s.name, "%v", err)
			continue
		}
		kept = append(kept, s)
	}
	b.sensors = kept
}

func (b *Board) setupApex(root string) {
	files, _ := filepath.Glob(filepath.Join(root, b.prof.ApexGlob))
	if len(files) == 0 {
		b.addMissing("accelerator temperature", "no Edge TPU temperature at /%s (apex driver not loaded?)", b.prof.ApexGlob)
	}
	for _, f := range files {
		b.sensors = append(b.sensors, &sensor{name: filepath.Base(filepath.Dir(f)), source: onBox(root, f), role: RoleAccel, th: newFileThermometer(root, f)})
	}
}

func newFileTach(root, path string) fileTach { return fileTach{path: path, shown: onBox(root, path)} }

// onBox is path as the box names it, without the sysfs root a test puts in front.
func onBox(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return "/" + rel
}

func (b *Board) setupI2C(spec I2CSensorSpec) {
	part := fmt.Sprintf("i2c %s %s@%#x", spec.Part, spec.Bus, spec.Addr)
	open, ok := i2cParts[spec.Part]
	if !ok {
		b.addMissing(part, "no driver for part %q", spec.Part)
		return
	}
	bus, err := b.opts.OpenI2C(spec.Bus)
	if err != nil {
		b.addMissing(part, "open bus: %v", err)
		return
	}
	dev, err := open(bus, spec.Addr)
	if err != nil {
		b.addMissing(part, "%v", err)
		if cerr := bus.Close(); cerr != nil {
			b.log.Warn("board: close i2c bus", "bus", spec.Bus, "err", cerr)
		}
		return
	}
	b.buses = append(b.buses, bus)
	b.sensors = append(b.sensors, &sensor{name: spec.Name, source: fmt.Sprintf("%s@%#x", spec.Bus, spec.Addr), role: RoleAmbient, th: envThermometer{dev}})
}

// setupFan takes the fan (hwmon pwm1 or a GPIO PWM pin) and its tachometer.
func (b *Board) setupFan() {
	fanDir := b.setupHwmonFan()
	if b.prof.FanPWMPin != "" {
		if p := b.opts.PinByName(b.prof.FanPWMPin); p != nil {
			b.fan = pinFan{p}
		} else {
			b.addMissing("fan", "no GPIO pin %s", b.prof.FanPWMPin)
		}
	}
	if b.prof.TachAttr != "" {
		b.setupTach(fanDir)
	}
}

// setupHwmonFan opens the first hwmon fan the profile names and returns its folder.
func (b *Board) setupHwmonFan() string {
	if len(b.prof.FanHwmon) == 0 {
		return ""
	}
	root := b.opts.Root
	dir, ok := findHwmon(root, b.prof.FanHwmon, "pwm1")
	if !ok {
		b.addMissing("fan", "no hwmon device named %v with pwm1", b.prof.FanHwmon)
		return ""
	}
	_, names := hwmonDevices(root)
	f, err := openHwmonFan(dir, names[dir], onBox(root, dir), !b.opts.ReadOnly)
	if err != nil {
		b.addMissing("fan", "%v", err)
		return ""
	}
	b.fan = f
	return dir
}

// setupTach finds the tachometer: on the fan's own hwmon device if the profile names none, else
// on the device it names (or any device with the attribute).
func (b *Board) setupTach(fanDir string) {
	root, attr := b.opts.Root, b.prof.TachAttr
	if fanDir != "" && len(b.prof.TachHwmon) == 0 {
		if _, err := os.Stat(filepath.Join(fanDir, attr)); err == nil {
			b.tach = newFileTach(root, filepath.Join(fanDir, attr))
			return
		}
	}
	if dir, ok := findHwmon(root, b.prof.TachHwmon, attr); ok {
		b.tach = newFileTach(root, filepath.Join(dir, attr))
		return
	}
	b.addMissing("fan tachometer", "no hwmon attribute %s", attr)
}

func (b *Board) setupLED() {
	if b.opts.ReadOnly {
		return
	}
	if b.prof.LEDPin == "" {
		if b.prof.ExpectLED {
			b.addMissing("status LED", "no GPIO pin assigned in profile %s", b.prof.Name)
		}
		return
	}
	p := b.opts.PinByName(b.prof.LEDPin)
	if p == nil {
		b.addMissing("status LED", "no GPIO pin %s", b.prof.LEDPin)
		return
	}
	b.led.pin = p
}

// setupWatchdog opens the watchdog when board.watchdog asks for it.
func (b *Board) setupWatchdog() error {
	if !b.cfg.Watchdog || b.opts.ReadOnly {
		return nil
	}
	if b.opts.Getenv("WATCHDOG_USEC") != "" {
		return ErrSystemdWatchdog
	}
	if b.opts.Healthy == nil {
		return errors.New("board.watchdog is set but the daemon gave no health function")
	}
	path := b.prof.WatchdogDevice
	var dev io.WriteCloser
	if b.sim != nil {
		dev = &b.sim.wd
	} else {
		d, err := b.opts.OpenWatchdog(path)
		if err != nil {
			return fmt.Errorf("board.watchdog: open %s: %w", path, err)
		}
		dev = d
	}
	w := &watchdog{dev: dev, path: path, healthy: b.opts.Healthy}
	if f, ok := dev.(*os.File); ok {
		w.timeout = watchdogTimeout(f)
	}
	b.wd = w
	return nil
}

// Thermal is the thermal policy the job runner consults before accelerator work.
func (b *Board) Thermal() *Thermal { return b.thermal }

// Indicate sets (on) or clears a state of the status LED. States stack: the highest set one
// shows (fault, updating, inferring, receiving), ready when none is set.
func (b *Board) Indicate(s LEDState, on bool) { b.led.indicate(s, on) }

// Missing lists the parts this box lacks.
func (b *Board) Missing() []Missing { return append([]Missing(nil), b.missing...) }

// partWatch logs a part's failure once when it starts and once when it ends, so a sensor that
// disappears costs one log line, not one per sample.
type partWatch struct{ failing bool }

func (p *partWatch) observe(log *slog.Logger, part string, err error) {
	switch {
	case err != nil && !p.failing:
		p.failing = true
		log.Warn("board: part failing", "part", part, "err", err)
	case err == nil && p.failing:
		p.failing = false
		log.Info("board: part back", "part", part)
	}
}

// round3 rounds to three decimals, the precision telemetry carries (millidegrees).
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
