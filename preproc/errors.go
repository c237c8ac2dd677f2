package preproc

import "errors"

// Errors callers branch on. Every error LoadSeries returns wraps one of them.
var (
	// ErrBadInstance: a file is not a readable MR image (unparseable, truncated, no pixels,
	// unsupported encoding).
	ErrBadInstance = errors.New("preproc: unreadable instance")
	// ErrTooLarge: a file, matrix, frame count or volume exceeds Limits; nothing was allocated.
	ErrTooLarge = errors.New("preproc: series too large")
	// ErrInconsistent: the instances disagree on size, orientation, pixel spacing or series.
	ErrInconsistent = errors.New("preproc: inconsistent series")
	// ErrSpacing: slice spacing is not uniform within the tolerance (no slice seems missing).
	ErrSpacing = errors.New("preproc: non-uniform slice spacing")
	// ErrMissingSlice: a gap between slices is a multiple of the series' spacing.
	ErrMissingSlice = errors.New("preproc: slice missing")
	// ErrTooFewSlices: fewer slices than Options.MinSlices.
	ErrTooFewSlices = errors.New("preproc: too few slices")
	// ErrWrongPatient: instances disagree on PatientID or StudyInstanceUID; refused.
	ErrWrongPatient = errors.New("preproc: instances of different patients or studies")
	// ErrBadValues: rescaling produced NaN or infinity, or the rescale factors are not finite.
	ErrBadValues = errors.New("preproc: non-finite pixel values")
	// ErrNoForeground: normalisation found no foreground or no spread (a constant image).
	ErrNoForeground = errors.New("preproc: nothing to normalise")
)
