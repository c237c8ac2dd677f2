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

// NotClinical is the refusal of model's ("<name> <version>") result for a clinical destination,
// at its first delivery and at a resend alike.
func NotClinical(model string) error { return fmt.Errorf("%w (%s)", ErrNotClinical, model) }

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
		dv := Delivery{Destination: d.Name, Skipped: r.refusal(d)}
		if dv.Skipped != "" {
			out = append(out, dv)
			continue
		}
		rd, err := r.Render(d.Profile, revision)
		if errors.Is(err, contour.ErrCharset) { // the transverse check is refusal's
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

// refusal says why destination d does not get this result, decided before rendering; "" when it
// does (a character set the destination's profile cannot encode is only found by rendering).
func (r *Result) refusal(d config.Destination) string {
	meta := r.model.Bundle.Meta
	switch {
	case d.Clinical && !meta.ClinicalUse:
		return NotClinical(meta.Name + " " + meta.Version).Error()
	case r.Empty() && !d.Profile.SendEmpty:
		return "no lesion found: no structure set sent"
	case d.Profile.TransverseOnly && !r.Transverse():
		return errSlicesNotTransverse.Error()
	}
	return ""
}

// MessageProfile is the profile the contour message, contours.json and the preview are rendered
// with: that of the first destination the result goes to, so that the message's polygons and
// rtstruct_sop_instance_uid are those of an RT Structure Set a planning system receives; the
// default profile when it goes to none.
func (r *Result) MessageProfile(dests []config.Destination) contour.Profile {
	for _, d := range dests {
		if r.refusal(d) == "" {
			return d.Profile
		}
	}
	return config.DefaultProfile()
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
