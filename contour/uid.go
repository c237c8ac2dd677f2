package contour

import (
	"crypto/sha256"
	"math/big"
	"slices"
	"strings"
)

// UIDInputs are what a result is made of (DESIGN.md, Outputs that a planner sees): the same
// inputs give the same UIDs, so a re-sent result repeats its UID; a superseding result (a late
// instance changes the sources, a new model changes the bundle) gets new ones.
type UIDInputs struct {
	SourceSOPInstanceUIDs []string // any order; sorted before hashing
	BundleSHA256          string
	FirmwareVersion       string
	// Config is a canonical rendering of the configuration that affects the output (the
	// destination profile, tracing options), written by the caller.
	Config string
}

// UIDs are a result's identifiers.
type UIDs struct {
	SOPInstanceUID, SeriesInstanceUID string
}

// DeriveUIDs hashes the inputs into UIDs under the 2.25 root (PS3.5 B.2: a UUID as a decimal
// integer), one per role, so the series and the instance differ.
func DeriveUIDs(in UIDInputs) UIDs {
	src := slices.Clone(in.SourceSOPInstanceUIDs)
	slices.Sort(src)
	base := strings.Join([]string{"midline.rtstruct/1", strings.Join(src, ","), in.BundleSHA256, in.FirmwareVersion, in.Config}, "\x00")
	return UIDs{SOPInstanceUID: uid25(base + "\x00instance"), SeriesInstanceUID: uid25(base + "\x00series")}
}

// uid25 turns a hash into a UUID (version 8, RFC 9562 variant) and that into 2.25.<decimal>.
func uid25(s string) string {
	h := sha256.Sum256([]byte(s))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(u).String()
}
