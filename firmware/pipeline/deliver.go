package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/internal/atomicfile"
	"github.com/midline-rt/midline/netdicom"
)

// Delivery is what happened to a result for one destination. Exactly one of Job (queued in the
// DICOM outbox), Skipped (a reason, for the event) is set.
type Delivery struct {
	Destination string
	Job         *netdicom.Job
	RTStruct    string // the file queued
	SOPUID      string
	Skipped     string
}

// ErrNotClinical: a model with clinical_use false never reaches a clinical destination.
var ErrNotClinical = errors.New("pipeline: model is not for clinical use; destination is clinical")

// Deliver renders the result for every destination and queues it in the DICOM outbox: the
// source instances first where the destination forwards images (a planning system attaches a
// structure set only to images it holds), then the RT Structure Set, in one job. A result of a
// model with clinical_use false is refused for a clinical destination; a series that is not
// transverse is refused for a transverse-only one; an empty result is not sent unless the
// profile asks for an empty structure set. Each refusal is a Delivery with its reason, never an
// error: the other destinations still get theirs.
func (r *Result) Deliver(ob *netdicom.Outbox, dests []config.Destination, dir string, paths []string, revision int) ([]Delivery, error) {
	var out []Delivery
	for _, d := range dests {
		dv := Delivery{Destination: d.Name}
		switch {
		case d.Clinical && !r.model.Bundle.Meta.ClinicalUse:
			dv.Skipped = fmt.Sprintf("%v (%s %s)", ErrNotClinical, r.model.Bundle.Meta.Name, r.model.Bundle.Meta.Version)
		case r.Empty() && !d.Profile.SendEmpty:
			dv.Skipped = "no lesion found: no structure set sent"
		}
		if dv.Skipped != "" {
			out = append(out, dv)
			continue
		}
		rd, err := r.Render(d.Profile, revision)
		if errors.Is(err, ErrNotTransverse) || errors.Is(err, contour.ErrCharset) {
			dv.Skipped = err.Error()
			out = append(out, dv)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("pipeline: render for %s: %w", d.Name, err)
		}
		var b bytes.Buffer
		if err := contour.WriteRTStruct(&b, rd.Structure); err != nil {
			if errors.Is(err, contour.ErrCharset) {
				dv.Skipped = err.Error()
				out = append(out, dv)
				continue
			}
			return out, err
		}
		dd := filepath.Join(dir, d.Name)
		if err := os.MkdirAll(dd, 0o750); err != nil {
			return out, err
		}
		dv.RTStruct = filepath.Join(dd, "rtstruct.dcm")
		dv.SOPUID = rd.Structure.UIDs.SOPInstanceUID
		if err := atomicfile.Write(dv.RTStruct, b.Bytes()); err != nil {
			return out, err
		}
		var files []string
		if d.ForwardImages {
			files = append(files, paths...)
		}
		files = append(files, dv.RTStruct)
		j, err := ob.Enqueue(d.Name, files)
		if err != nil {
			return out, fmt.Errorf("pipeline: queue for %s: %w", d.Name, err)
		}
		dv.Job = &j
		out = append(out, dv)
	}
	return out, nil
}

// OutboxDestinations is the DICOM outbox's view of the configured destinations.
func OutboxDestinations(dests []config.Destination) []netdicom.Destination {
	var out []netdicom.Destination
	for _, d := range dests {
		out = append(out, netdicom.Destination{Name: d.Name, AETitle: d.AETitle, Host: d.Host, Port: d.Port, TLS: d.TLS,
			CA: d.CA, ClientCert: d.ClientCert, ClientKey: d.ClientKey})
	}
	return out
}
