package config

import (
	"errors"
	"fmt"
	"github.com/midline-rt/midline/contour"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/netdicom"
	"github.com/midline-rt/midline/preproc"
)

// problems collects validation errors, each naming its key path.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Validate checks every value and the consistency between them. The error lists each problem
// on its own line, starting with the key path (destinations[1].port: must be 1..65535).
func (c Config) Validate() error {
	var p problems
	c.validateIdentity(&p)
	c.validateRetention(&p)
	c.DICOM.validate(&p)
	for i, s := range c.Selection {
		path := fmt.Sprintf("selection[%d]", i)
		s.validate(&p, path)
		if s.CalledAE != "" && s.CalledAE != c.DICOM.AETitle {
			// The receiver refuses associations to any other called AE title.
			p.add(path+".called_ae", "%q never matches: the receiver answers only to dicom.ae_title %q", s.CalledAE, c.DICOM.AETitle)
		}
	}
	if _, err := preproc.NewClassifier(c.Classification); err != nil {
		p.add("classification", "%v", strings.TrimPrefix(err.Error(), "preproc: "))
	}
	c.validateDestinations(&p)
	c.validateEngine(&p)
	c.MQTT.validate(&p)
	c.validateHTTP(&p)
	c.validateBoard(&p)
	c.OTA.validate(&p)
	return errors.Join(p...)
}

// topicLevel is what device_id, site and group must look like: each is one MQTT topic level,
// a folder-safe name and (device_id) the RTSTRUCT's DeviceSerialNumber (LO, 64 characters).
var topicLevel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

const topicLevelRule = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

func (c Config) validateIdentity(p *problems) {
	for _, k := range []struct{ key, v string }{{"device_id", c.DeviceID}, {"site", c.Site}} {
		if k.v == "" {
			p.add(k.key, "required")
		} else if !topicLevel.MatchString(k.v) {
			p.add(k.key, "%s", topicLevelRule)
		}
	}
	if c.Group != "" && !topicLevel.MatchString(c.Group) {
		p.add("group", "%s", topicLevelRule)
	}
	if c.StateDir == "" {
		p.add("state_dir", "required")
	}
}

func (c Config) validateRetention(p *problems) {
	for _, k := range []struct {
		key string
		d   time.Duration
	}{{"spool", c.Retention.Spool}, {"results", c.Retention.Results}, {"logs", c.Retention.Logs}} {
		if k.d < 0 {
			p.add("retention."+k.key, "must not be negative (0 keeps forever)")
		}
	}
}

func (d DICOM) validate(p *problems) {
	checkAE(p, "dicom.ae_title", d.AETitle, true)
	checkListen(p, "dicom.listen", d.Listen, true)
	t := d.TLS
	switch {
	case t.Listen == "" && (t.Cert != "" || t.Key != "" || t.ClientCA != ""):
		p.add("dicom.tls.listen", "required when cert, key or client_ca is set")
	case t.Listen != "":
		checkListen(p, "dicom.tls.listen", t.Listen, true)
		if t.Cert == "" || t.Key == "" {
			p.add("dicom.tls", "cert and key are required with listen")
		}
		if samePort(t.Listen, d.Listen) {
			p.add("dicom.tls.listen", "uses the same port as dicom.listen")
		}
	}
	for i, c := range d.AllowedCallers {
		path := fmt.Sprintf("dicom.allowed_callers[%d]", i)
		if c.AETitle == "" && c.CIDR == "" {
			p.add(path, "matches every caller; set ae_title, cidr or both")
		}
		checkAE(p, path+".ae_title", c.AETitle, false)
		if _, err := netip.ParsePrefix(c.CIDR); c.CIDR != "" && err != nil {
			p.add(path+".cidr", "want an address prefix such as 10.1.2.0/24 or 10.1.2.3/32: %v", err)
		}
	}
	if d.MaxAssociations < 1 || d.MaxAssociations > 64 {
		p.add("dicom.max_associations", "must be 1..64")
	}
	if d.MaxPDU < netdicom.MinPDU || d.MaxPDU > netdicom.MaxPDULimit {
		p.add("dicom.max_pdu", "must be %d..%d bytes", netdicom.MinPDU, netdicom.MaxPDULimit)
	}
	if d.SeriesTimeout < time.Second || d.SeriesTimeout > 10*time.Minute {
		p.add("dicom.series_timeout", "must be 1s..10m (scanners pause 5 to 60 s between instances)")
	}
}

func (s Selection) validate(p *problems, path string) {
	if s == (Selection{}) {
		p.add(path, "matches every study; set at least one of called_ae, study_description, min_age_years, max_age_years")
	}
	checkAE(p, path+".called_ae", s.CalledAE, false)
	if _, err := regexp.Compile("(?i)" + s.StudyDescription); err != nil {
		p.add(path+".study_description", "not a regular expression: %v", err)
	}
	for _, a := range []struct {
		key string
		v   *float64
	}{{"min_age_years", s.MinAgeYears}, {"max_age_years", s.MaxAgeYears}} {
		if a.v != nil && !(*a.v >= 0 && *a.v <= 150) {
			p.add(path+"."+a.key, "must be 0..150")
		}
	}
	if s.MinAgeYears != nil && s.MaxAgeYears != nil && *s.MinAgeYears > *s.MaxAgeYears {
		p.add(path, "min_age_years (%g) is above max_age_years (%g)", *s.MinAgeYears, *s.MaxAgeYears)
	}
}

// destinationName keeps names usable in file names, logs and `midline jobs resend --to NAME`.
var destinationName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (c Config) validateDestinations(p *problems) {
	seen := map[string]int{}
	for i, d := range c.Destinations {
		path := fmt.Sprintf("destinations[%d]", i)
		switch j, dup := seen[d.Name]; {
		case d.Name == "":
			p.add(path+".name", "required")
		case !destinationName.MatchString(d.Name):
			p.add(path+".name", "must be 1 to 32 lower-case letters, digits, '_' or '-'")
		case dup:
			p.add(path+".name", "%q is also destinations[%d].name", d.Name, j)
		}
		seen[d.Name] = i
		checkAE(p, path+".ae_title", d.AETitle, true)
		checkHost(p, path+".host", d.Host)
		if d.Port < 1 || d.Port > 65535 {
			p.add(path+".port", "must be 1..65535")
		}
		checkKeyPair(p, path, d.ClientCert, d.ClientKey)
		if !d.TLS && (d.CA != "" || d.ClientCert != "" || d.ClientKey != "") {
			p.add(path+".tls", "ca, client_cert and client_key need tls: true")
		}
		validateProfile(d.Profile, p, path+".profile")
	}
}

// Charsets a destination profile may ask for; empty keeps the source series' character set.
var charsets = []string{contour.CharsetSource, contour.CharsetASCII, contour.CharsetLatin1, contour.CharsetUTF8}

func validateProfile(pr contour.Profile, p *problems, path string) {
	if !slices.Contains([]contour.HoleMode{contour.HolesSeparate, contour.HolesXOR, contour.HolesKeyhole}, pr.HoleMode) {
		p.add(path+".hole_mode", "must be separate, xor or keyhole")
	}
	if pr.MaxPoints != 0 && (pr.MaxPoints < 4 || pr.MaxPoints > contour.DefaultMaxPoints) {
		p.add(path+".max_points", "must be 0 (the writer's limit, %d) or 4..%d", contour.DefaultMaxPoints, contour.DefaultMaxPoints)
	}
	if !slices.Contains(charsets, pr.Charset) {
		p.add(path+".charset", "must be one of %q", charsets)
	}
	names := map[string]string{}
	for _, seq := range slices.Sorted(maps.Keys(pr.ROINames)) {
		name, key := pr.ROINames[seq], path+".roi_names."+seq
		if !slices.Contains([]preproc.Label{preproc.T2, preproc.FLAIR, preproc.T1C}, preproc.Label(seq)) {
			p.add(key, "unknown sequence; want T2, FLAIR or T1C")
		}
		checkROIName(p, key, name)
		if other, dup := names[name]; dup {
			p.add(key, "ROI name %q is also used for %s", name, other)
		}
		names[name] = seq
	}
}

func (c Config) validateEngine(p *problems) {
	switch c.Engine.Kind {
	case EngineCPU:
	case EngineEdgeTPU:
		if c.Board.Profile == board.ProfileJetson {
			p.add("engine.kind", "edgetpu is not available on board.profile %s", c.Board.Profile)
		}
	default:
		p.add("engine.kind", "must be cpu or edgetpu")
	}
	if c.Engine.Threads < 0 || c.Engine.Threads > MaxThreads {
		p.add("engine.threads", "must be 0 (one per core) .. %d", MaxThreads)
	}
	if c.Models.Dir == "" {
		p.add("models.dir", "required")
	}
}

// brokerSchemes are the URL schemes paho dials; the second value says whether it is TLS.
var brokerSchemes = map[string]bool{"tcp": false, "mqtt": false, "ws": false, "ssl": true, "mqtts": true, "wss": true}

func (m MQTT) validate(p *problems) {
	if m.Broker != "" {
		m.validateBroker(p)
	}
	checkKeyPair(p, "mqtt", m.ClientCert, m.ClientKey)
	checkTopicPrefix(p, m.TopicPrefix)
	if m.HealthInterval < time.Second || m.HealthInterval > time.Hour {
		p.add("mqtt.health_interval", "must be 1s..1h")
	}
	if m.OutboxMaxMessages < 1 {
		p.add("mqtt.outbox_max_messages", "must be at least 1")
	}
	if m.OutboxMaxBytes < 1<<20 {
		p.add("mqtt.outbox_max_bytes", "must be at least 1MiB")
	}
}

func (m MQTT) validateBroker(p *problems) {
	u, err := url.Parse(m.Broker)
	if err != nil {
		p.add("mqtt.broker", "not a URL: %v", err)
		return
	}
	secure, ok := brokerSchemes[u.Scheme]
	if !ok {
		p.add("mqtt.broker", "scheme %q: want tcp, mqtt, ssl, mqtts, ws or wss", u.Scheme)
		return
	}
	if u.Hostname() == "" || u.Port() == "" {
		p.add("mqtt.broker", "want scheme://host:port, e.g. mqtts://broker.example:8883")
	} else if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		p.add("mqtt.broker", "port must be 1..65535")
	}
	if u.User != nil {
		p.add("mqtt.broker", "must not carry credentials; use client_cert and client_key")
	}
	if !secure && (m.CA != "" || m.ClientCert != "") {
		p.add("mqtt.broker", "ca, client_cert and client_key need a TLS scheme (ssl, mqtts or wss)")
	}
}

// checkKeyPair: a TLS client certificate and its key are set together (the MQTT client, a
// DICOM destination).
func checkKeyPair(p *problems, path, cert, key string) {
	if (cert == "") != (key == "") {
		p.add(path+".client_cert", "client_cert and client_key go together")
	}
}

func checkTopicPrefix(p *problems, prefix string) {
	levels := strings.Split(prefix, "/")
	switch {
	case prefix == "":
		p.add("mqtt.topic_prefix", "required")
	case len(prefix) > 128 || strings.ContainsAny(prefix, "+#\x00"):
		p.add("mqtt.topic_prefix", "must be at most 128 bytes without the wildcards + and #")
	case slices.Contains(levels, "") || strings.HasPrefix(prefix, "$"):
		p.add("mqtt.topic_prefix", "must not start with $ or / nor hold empty levels")
	}
}

func (c Config) validateHTTP(p *problems) {
	h := c.HTTP
	if h.Listen == "" {
		return
	}
	checkListen(p, "http.listen", h.Listen, false)
	if h.Token == "" && !loopback(h.Listen) {
		p.add("http.token", "required when http.listen (%q) is not a loopback address: the status page shows patient images", h.Listen)
	}
	if h.Token != "" && (len(h.Token) < 16 || strings.IndexFunc(h.Token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0) {
		p.add("http.token", "must be at least 16 printable ASCII characters without spaces")
	}
	if samePort(h.Listen, c.DICOM.Listen) || (c.DICOM.TLS.Listen != "" && samePort(h.Listen, c.DICOM.TLS.Listen)) {
		p.add("http.listen", "uses the same port as the DICOM listener")
	}
}

func (c Config) validateBoard(p *problems) {
	if c.Board.Profile == "" {
		// board.Config falls back to the simulated board; a box must say what it is.
		p.add("board.profile", "required: one of %v", board.ProfileNames())
		return
	}
	if err := c.Board.Validate(); err != nil {
		*p = append(*p, err)
	}
}

func (o OTA) validate(p *problems) {
	if o.RepoURL != "" {
		u, err := url.Parse(o.RepoURL)
		switch {
		case err != nil || u.Host == "":
			p.add("ota.repo_url", "want an https URL")
		case u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Host)):
			p.add("ota.repo_url", "must be https (http only on loopback, for tests)")
		}
		if o.TrustedRoot == "" {
			p.add("ota.trusted_root", "required with repo_url: the TUF root.json that signs updates")
		}
		if o.RequireSiteApproval && o.SiteKey == "" {
			p.add("ota.site_key", "required with require_site_approval: the site's public key (midline ota site-key) that approvals are signed with")
		}
	}
	if o.CheckInterval < time.Minute {
		p.add("ota.check_interval", "must be at least 1m")
	}
	if _, _, err := ParseWindow(o.Window); err != nil {
		p.add("ota.window", "%v", err)
	}
	if o.TrialJobs < 0 || o.TrialMinutes < 0 {
		p.add("ota.trial_jobs", "trial_jobs and trial_minutes must not be negative")
	} else if o.TrialJobs == 0 && o.TrialMinutes == 0 {
		p.add("ota.trial_jobs", "trial_jobs or trial_minutes must be positive, so that a new model is on trial before it is kept")
	}
}

// ParseWindow reads ota.window, "HH:MM-HH:MM" in local time, as minutes after midnight; a window
// may run past midnight (22:00-04:00). Empty means any time and gives 0, 0.
func ParseWindow(w string) (start, end int, err error) {
	if w == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(w, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want HH:MM-HH:MM, got %q", w)
	}
	if start, err = clockMinutes(a); err == nil {
		end, err = clockMinutes(b)
	}
	if err == nil && start == end {
		err = errors.New("start and end are equal; leave the window empty for any time")
	}
	return start, end, err
}

func clockMinutes(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad time %q: want HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// checkAE applies DICOM's AE title rules (PS3.5 AE: at most 16 characters of the default
// repertoire without backslash or control characters) and refuses leading or trailing spaces,
// which peers treat inconsistently.
func checkAE(p *problems, path, ae string, required bool) {
	switch {
	case ae == "":
		if required {
			p.add(path, "required")
		}
	case len(ae) > 16:
		p.add(path, "%q is longer than 16 characters", ae)
	case strings.IndexFunc(ae, func(r rune) bool { return r < ' ' || r > '~' || r == '\\' }) >= 0:
		p.add(path, "%q: only printable ASCII without backslash", ae)
	case strings.TrimSpace(ae) != ae:
		p.add(path, "%q: no leading or trailing spaces", ae)
	}
}

// checkROIName keeps names within what planning systems accept (Eclipse: 16 characters).
func checkROIName(p *problems, path, name string) {
	switch {
	case name == "" || strings.TrimSpace(name) != name:
		p.add(path, "must be a name without leading or trailing spaces")
	case len(name) > 16:
		p.add(path, "%q is longer than 16 characters", name)
	case strings.IndexFunc(name, func(r rune) bool { return r < ' ' || r > '~' || r == '\\' }) >= 0:
		p.add(path, "%q: only printable ASCII without backslash", name)
	}
}

func checkListen(p *problems, path, addr string, anyHost bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(path, "want host:port or :port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		p.add(path, "port must be 1..65535")
	}
	if host != "" && !anyHost && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			p.add(path, "host must be an IP address or localhost")
		}
	}
}

var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$`)

func checkHost(p *problems, path, host string) {
	if host == "" {
		p.add(path, "required")
		return
	}
	if _, err := netip.ParseAddr(host); err != nil && (len(host) > 253 || !hostname.MatchString(host)) {
		p.add(path, "%q is neither an IP address nor a host name", host)
	}
}

// loopback reports whether host:port (or a bare host) names only the loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

// samePort reports whether two listen addresses would collide: the same port, and one binds
// every interface or both the same host.
func samePort(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	return err1 == nil && err2 == nil && pa == pb && (ha == "" || hb == "" || ha == hb)
}
