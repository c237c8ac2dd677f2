// Package preproc turns a received MR series into a volume with its exact geometry, decides
// whether and as which sequence a model may use it, and resamples and normalises it for a model.
//
// LoadSeries reads the spool's Part 10 files of one series (bounded, every accepted transfer
// syntax, Enhanced MR multi-frame) into a Volume; ReadHeader reads one instance's header so
// that Classify can label a series T2, FLAIR, T1C or unknown, with a reason, before its pixels
// are read. Orient turns a near-axial series into the plane and handedness the models were
// trained on and back, exactly; Reformat does the same for other planes by interpolation.
// FitNormalization and Resampler implement docs/contracts.md "Preprocessing" bit for bit as
// the Python reference (scripts/model/midline_model/data.py) does.
package preproc
