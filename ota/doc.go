// Package ota updates the box's models safely: signed bundles checked with TUF, downloaded into
// an A/B slot, self-tested, switched, and rolled back on failure; it also holds the IT side's
// commands that make and sign bundles.
//
// Not implemented yet (issue 8); no code here pretends otherwise.
package ota
