// Package contour turns a probability map into clinical contours and writes them out: the DICOM
// RT Structure Set, the contour JSON and preview images.
//
// Not implemented yet (issue 6); no code here pretends otherwise.
package contour
