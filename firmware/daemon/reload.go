package daemon

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/preproc"
)

// live is the part of the configuration a running daemon can take without a restart (SIGHUP):
// which studies are processed, how series are classified, and what each destination receives.
type live struct {
	selection    []config.Selection
	classify     *preproc.Classifier
	destinations []config.Destination
}

func (d *Daemon) live() live {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// Reload applies cfg's live settings and reports, against the configuration the daemon started
// with, what it applied and which changes need a restart (everything else: listeners, state folder, engine, models, MQTT, board, and a
// destination's name, address or AE title, which the DICOM outbox holds).
func (d *Daemon) Reload(cfg config.Config) (applied, restart []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cl, err := preproc.NewClassifier(cfg.Classification)
	if err != nil {
		return nil, nil, err
	}
	old := d.cfg
	if !reflect.DeepEqual(old.Selection, cfg.Selection) {
		applied = append(applied, "selection")
	}
	if !reflect.DeepEqual(old.Classification, cfg.Classification) {
		applied = append(applied, "classification")
	}
	dests := d.live().destinations
	if !slices.Equal(pipeline.OutboxDestinations(old.Destinations), pipeline.OutboxDestinations(cfg.Destinations)) {
		restart = append(restart, "destinations (names, addresses, AE titles, TLS)")
	} else if !reflect.DeepEqual(old.Destinations, cfg.Destinations) {
		applied = append(applied, "destinations (profiles, clinical, forward_images)")
		dests = cfg.Destinations
	}
	for _, k := range []struct {
		name string
		a, b any
	}{
		{"device_id, site, group", []string{old.DeviceID, old.Site, old.Group}, []string{cfg.DeviceID, cfg.Site, cfg.Group}},
		{"state_dir", old.StateDir, cfg.StateDir}, {"dicom", old.DICOM, cfg.DICOM}, {"engine", old.Engine, cfg.Engine},
		{"models", old.Models, cfg.Models}, {"mqtt", old.MQTT, cfg.MQTT}, {"http", old.HTTP, cfg.HTTP},
		{"board", old.Board, cfg.Board}, {"ota", old.OTA, cfg.OTA}, {"retention", old.Retention, cfg.Retention},
	} {
		if !reflect.DeepEqual(k.a, k.b) {
			restart = append(restart, k.name)
		}
	}
	d.mu.Lock()
	d.cur = live{selection: cfg.Selection, classify: cl, destinations: dests}
	d.mu.Unlock()
	d.event(Event{Type: "config_reloaded", Detail: fmt.Sprintf("applied %v; need a restart: %v", applied, restart)})
	return applied, restart, nil
}
