package config

import (
	"path/filepath"
	"runtime"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/preproc"
)

// Config is the whole configuration file. The YAML names are DESIGN.md's; docs/contracts.md
// ("Configuration (issue 7)") gives each key's precise meaning.
type Config struct {
	DeviceID       string        `yaml:"device_id"`
	Site           string        `yaml:"site"`
	Group          string        `yaml:"group"`
	StateDir       string        `yaml:"state_dir"`
	Retention      Retention     `yaml:"retention"`
	DICOM          DICOM         `yaml:"dicom"`
	Selection      []Selection   `yaml:"selection"`
	Classification preproc.Rules `yaml:"classification"`
	Destinations   []Destination `yaml:"destinations"`
	Engine         Engine        `yaml:"engine"`
	Models         Models        `yaml:"models"`
	MQTT           MQTT          `yaml:"mqtt"`
	HTTP           HTTP          `yaml:"http"`
	Board          board.Config  `yaml:"board"`
	OTA            OTA           `yaml:"ota"`
}

// Retention says how long finished work is kept; 0 keeps it forever.
type Retention struct {
	Spool   time.Duration `yaml:"spool"`
	Results time.Duration `yaml:"results"`
	// Logs is how long the daily log files in state_dir/logs are kept (the journal keeps its
	// own copy, by its own rules).
	Logs time.Duration `yaml:"logs"`
}

// DICOM configures the receiver (netdicom.Options takes these values).
type DICOM struct {
	AETitle          string        `yaml:"ae_title"`
	Listen           string        `yaml:"listen"`
	TLS              DICOMTLS      `yaml:"tls"`
	AllowedCallers   []Caller      `yaml:"allowed_callers"`
	MaxAssociations  int           `yaml:"max_associations"`
	MaxPDU           uint32        `yaml:"max_pdu"`
	SeriesTimeout    time.Duration `yaml:"series_timeout"`
	DiskLowWatermark Size          `yaml:"disk_low_watermark"`
}

// DICOMTLS configures the TLS listener; an empty Listen means none.
type DICOMTLS struct {
	Listen   string `yaml:"listen"`
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
}

// Enabled reports whether a TLS listener is configured.
func (t DICOMTLS) Enabled() bool { return t.Listen != "" }

// Caller is one entry of dicom.allowed_callers; an empty field matches anything.
type Caller struct {
	AETitle string `yaml:"ae_title"`
	CIDR    string `yaml:"cidr"`
}

// Selection is one rule of which studies are processed. A study is processed when any rule
// matches it, and a rule matches when every field it sets matches; no rules means every study.
type Selection struct {
	CalledAE         string `yaml:"called_ae"`
	StudyDescription string `yaml:"study_description"` // a regular expression, case-insensitive
	// Age bounds in years, inclusive; nil means no bound.
	MinAgeYears *float64 `yaml:"min_age_years"`
	MaxAgeYears *float64 `yaml:"max_age_years"`
}

// Destination is a planning system (or PACS) that receives RT Structure Sets by C-STORE.
type Destination struct {
	Name          string          `yaml:"name"`
	AETitle       string          `yaml:"ae_title"`
	Host          string          `yaml:"host"`
	Port          int             `yaml:"port"`
	TLS           bool            `yaml:"tls"`
	CA            string          `yaml:"ca"`          // PEM CAs for the peer's certificate; empty: the system's roots
	ClientCert    string          `yaml:"client_cert"` // presented when the peer asks for a certificate
	ClientKey     string          `yaml:"client_key"`
	Clinical      bool            `yaml:"clinical"`
	ForwardImages bool            `yaml:"forward_images"`
	Profile       contour.Profile `yaml:"profile"`
}

// Engine selects the inference engine.
type Engine struct {
	Kind    string `yaml:"kind"`    // EngineCPU or EngineEdgeTPU
	Threads int    `yaml:"threads"` // CPU threads; 0: one per core (ThreadCount)
}

// MaxThreads bounds engine.threads.
const MaxThreads = 64

// ThreadCount is the number of CPU threads the engine runs with: engine.threads, or one per
// core (at most MaxThreads) when it is 0. TFLite's own default for an unset count is one
// thread, so 0 is never passed on.
func (e Engine) ThreadCount() int {
	if e.Threads > 0 {
		return e.Threads
	}
	return min(runtime.NumCPU(), MaxThreads)
}

// Engine kinds.
const (
	EngineCPU     = "cpu"
	EngineEdgeTPU = "edgetpu"
)

// Models says where model bundles come from.
type Models struct {
	Dir     string `yaml:"dir"`
	SeedDir string `yaml:"seed_dir"`
}

// MQTT configures telemetry; an empty Broker turns MQTT off.
type MQTT struct {
	Broker         string        `yaml:"broker"`
	ClientCert     string        `yaml:"client_cert"`
	ClientKey      string        `yaml:"client_key"`
	CA             string        `yaml:"ca"`
	TopicPrefix    string        `yaml:"topic_prefix"`
	HealthInterval time.Duration `yaml:"health_interval"`
	// The outbox bounds are additions to DESIGN.md's list (docs/contracts.md).
	OutboxMaxMessages int  `yaml:"outbox_max_messages"`
	OutboxMaxBytes    Size `yaml:"outbox_max_bytes"`
}

// Enabled reports whether a broker is configured.
func (m MQTT) Enabled() bool { return m.Broker != "" }

// HTTP configures the status page and metrics.
type HTTP struct {
	Listen string `yaml:"listen"`
	Token  string `yaml:"token"`
}

// OTA configures over-the-air model updates; an empty RepoURL turns them off.
type OTA struct {
	RepoURL             string        `yaml:"repo_url"`
	TrustedRoot         string        `yaml:"trusted_root"`
	CheckInterval       time.Duration `yaml:"check_interval"`
	Window              string        `yaml:"window"` // "HH:MM-HH:MM" local time; empty: any time
	TrialJobs           int           `yaml:"trial_jobs"`
	TrialMinutes        int           `yaml:"trial_minutes"`
	RequireSiteApproval bool          `yaml:"require_site_approval"`
	SiteKey             string        `yaml:"site_key"` // the site's ed25519 public key (PEM) approvals are signed with
}

// Enabled reports whether OTA updates are configured.
func (o OTA) Enabled() bool { return o.RepoURL != "" }

// Default returns the configuration a file is decoded onto: every default lives here, apart
// from the board's, which board.Config applies itself.
func Default() Config {
	return Config{
		StateDir:  "/var/lib/midline",
		Retention: Retention{Spool: 7 * 24 * time.Hour, Results: 30 * 24 * time.Hour, Logs: 30 * 24 * time.Hour},
		DICOM: DICOM{
			AETitle:          "MIDLINE",
			Listen:           ":11112",
			MaxAssociations:  8,
			MaxPDU:           256 << 10,
			SeriesTimeout:    10 * time.Second,
			DiskLowWatermark: 512 << 20,
		},
		Classification: preproc.DefaultRules(),
		Engine:         Engine{Kind: EngineCPU},
		Models:         Models{SeedDir: "/usr/share/midline/models"},
		MQTT: MQTT{
			TopicPrefix:       "midline/v1",
			HealthInterval:    30 * time.Second,
			OutboxMaxMessages: 10000,
			OutboxMaxBytes:    256 << 20,
		},
		HTTP: HTTP{Listen: "127.0.0.1:8080"},
		OTA: OTA{
			CheckInterval:       6 * time.Hour,
			TrialJobs:           3,
			TrialMinutes:        60,
			RequireSiteApproval: true,
		},
	}
}

// DefaultProfile is the profile a destination gets for keys it leaves out.
func DefaultProfile() contour.Profile { return contour.Profile{HoleMode: contour.HolesSeparate} }

// fillDefaults sets the defaults that depend on decoded values: list elements are decoded onto
// zero values, and models.dir follows state_dir.
func (c *Config) fillDefaults() {
	for i := range c.Destinations {
		if c.Destinations[i].Profile.HoleMode == "" {
			c.Destinations[i].Profile.HoleMode = DefaultProfile().HoleMode
		}
	}
	if c.Models.Dir == "" && c.StateDir != "" {
		c.Models.Dir = filepath.Join(c.StateDir, "models")
	}
}
