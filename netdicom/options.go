package netdicom

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Options configure the receiver. Field names follow the configuration keys under dicom: in
// DESIGN.md; the firmware decodes YAML into them, this package never parses configuration.
type Options struct {
	AETitle          string        // dicom.ae_title: the called AE title callers must use
	Listen           string        // dicom.listen, e.g. ":11112"
	TLS              *TLSOptions   // dicom.tls; nil: no TLS listener
	AllowedCallers   []Caller      // dicom.allowed_callers; empty: anyone who names our AE title
	MaxAssociations  int           // dicom.max_associations; 0: DefaultMaxAssociations
	MaxPDU           uint32        // dicom.max_pdu; 0: DefaultMaxPDU
	SeriesTimeout    time.Duration // dicom.series_timeout; 0: 10 s
	DiskLowWatermark uint64        // dicom.disk_low_watermark in bytes; 0: no check
	StateDir         string        // state_dir; the spool lives in state_dir/spool
	Retention        time.Duration // retention.spool: processed series older than this are removed; 0: kept

	// Not configuration: timing, hooks and test seams.
	ReleaseGrace time.Duration // wait after a release hint; 0: 1 s (never above SeriesTimeout)
	ARTIM        time.Duration // ARTIM timer: wait for A-ASSOCIATE-RQ and for close after release; 0: 30 s
	IdleTimeout  time.Duration // longest silence inside an association; 0: 5 min
	NoFsync      bool          // benchmarks only: acknowledgements are not durable
	Clock        Clock
	DiskFree     func(path string) (uint64, error)
	Failpoint    func(step string) error
	OnSeries     func(SeriesEvent) // called from the assembler goroutine; nil: events are logged
	OnInstance   func(Instance)    // called after each acknowledged instance; tests use it
	Logger       *slog.Logger
}

// TLSOptions configure the DICOM TLS listener (dicom.tls).
type TLSOptions struct {
	Listen   string
	Cert     string
	Key      string
	ClientCA string // when set, callers must present a certificate it signed
}

// Caller is one entry of dicom.allowed_callers. Empty fields match anything.
type Caller struct {
	AETitle string
	CIDR    string
}

// Defaults.
const (
	DefaultMaxAssociations = 8
	DefaultSeriesTimeout   = 10 * time.Second
	DefaultARTIM           = 30 * time.Second
	DefaultIdleTimeout     = 5 * time.Minute
)

// Clock is the time source; tests inject a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type caller struct {
	ae     string
	prefix netip.Prefix
	any    bool
}

func (o *Options) withDefaults() (Options, []caller, error) {
	c := *o
	if c.AETitle == "" || len(c.AETitle) > 16 {
		return c, nil, fmt.Errorf("netdicom: dicom.ae_title %q must have 1 to 16 characters", c.AETitle)
	}
	if c.StateDir == "" {
		return c, nil, errors.New("netdicom: state_dir is required")
	}
	if c.MaxAssociations <= 0 {
		c.MaxAssociations = DefaultMaxAssociations
	}
	if c.MaxPDU == 0 {
		c.MaxPDU = DefaultMaxPDU
	}
	if c.MaxPDU < MinPDU || c.MaxPDU > MaxPDULimit {
		return c, nil, fmt.Errorf("netdicom: dicom.max_pdu %d outside [%d, %d]", c.MaxPDU, MinPDU, MaxPDULimit)
	}
	if c.SeriesTimeout <= 0 {
		c.SeriesTimeout = DefaultSeriesTimeout
	}
	if c.ReleaseGrace <= 0 {
		c.ReleaseGrace = time.Second
	}
	if c.ARTIM <= 0 {
		c.ARTIM = DefaultARTIM
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	callers, err := parseCallers(c.AllowedCallers)
	return c, callers, err
}

func parseCallers(cs []Caller) ([]caller, error) {
	var out []caller
	for i, c := range cs {
		k := caller{ae: c.AETitle, any: c.CIDR == ""}
		if c.CIDR != "" {
			p, err := netip.ParsePrefix(c.CIDR)
			if err != nil {
				return nil, fmt.Errorf("netdicom: dicom.allowed_callers[%d].cidr: %w", i, err)
			}
			k.prefix = p.Masked()
		}
		out = append(out, k)
	}
	return out, nil
}

// callerAllowed checks a calling AE title and source address against allowed_callers.
func callerAllowed(callers []caller, ae string, addr netip.Addr) bool {
	if len(callers) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, c := range callers {
		if (c.ae == "" || c.ae == ae) && (c.any || c.prefix.Contains(addr)) {
			return true
		}
	}
	return false
}
