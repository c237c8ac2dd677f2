// Package preproc turns a received MR series into a volume with its exact geometry, classifies
// its sequence, and resamples and normalises it for a model.
//
// Not implemented yet (issue 5); no code here pretends otherwise.
package preproc
