// Package preproc turns a received MR series into a volume with its exact geometry, decides
// whether and as which sequence a model may use it, and resamples and normalises it for a model.
//
// LoadSeries reads the spool's Part 10 files of one series (bounded, every accepted transfer
// syntax, Enhanced MR multi-frame) into a Volume; Classify labels it T2, FLAIR, T1C or unknown
// with a reason; Canonical turns it into the plane and handedness the models were trained on and
// maps results back; FitNormalization and Resample implement docs/contracts.md "Preprocessing"
// exactly as the Python reference (scripts/model/midline_model/data.py) does.
package preproc
