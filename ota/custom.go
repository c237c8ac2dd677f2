package ota

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/midline-rt/midline/internal/strictjson"
)

// Custom is the signed custom metadata of a bundle target in TUF targets.json: what the box
// checks before it downloads a byte. Groups lists the device groups the target is released to
// ("*": every group); a box acts on a command only for a target released to its group.
// DowngradeFrom is a signed downgrade authorisation (`midline ota downgrade`): a box whose
// highest committed version of this model is one of these versions may install this lower one.
type Custom struct {
	Name        string   `json:"name"`
	Sequence    string   `json:"sequence"`
	Version     string   `json:"version"`
	MinFirmware string   `json:"min_firmware"`
	Engines     []string `json:"engines"`
	Groups      []string `json:"groups"`
	Withdrawn   bool     `json:"withdrawn"`
	// DowngradeFrom lists versions above Version that this target may replace (at most
	// MaxDowngradeFrom); empty for an ordinary release.
	DowngradeFrom []string `json:"downgrade_from,omitempty"`
}

// MaxDowngradeFrom bounds the versions one downgrade authorisation names.
const MaxDowngradeFrom = 16

// MaxCustom bounds the custom metadata of one target.
const MaxCustom = 4096

var (
	semverRE = regexp.MustCompile(`^([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})(-[0-9A-Za-z.-]{1,64})?$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	groupRE  = regexp.MustCompile(`^([A-Za-z0-9._-]{1,64}|\*)$`)
)

// ParseCustom decodes and checks a target's custom metadata strictly: unknown keys, missing
// fields and bad values are errors, so a typo in the repository never reads as a default.
func ParseCustom(raw []byte) (Custom, error) {
	var c Custom
	if len(raw) > MaxCustom {
		return c, fmt.Errorf("ota: custom metadata: %d bytes, more than %d", len(raw), MaxCustom)
	}
	if err := strictjson.Decode(raw, &c); err != nil {
		return c, fmt.Errorf("ota: custom metadata: %w", err)
	}
	if len(c.DowngradeFrom) == 0 {
		c.DowngradeFrom = nil // [] and no key mean the same
	}
	return c, c.Validate()
}

// Validate checks every field.
func (c Custom) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(nameRE.MatchString(c.Name), "name %q: want 1 to 64 of a-z0-9._-", c.Name)
	check(slices.Contains([]string{"T2", "FLAIR", "T1C"}, c.Sequence), "sequence %q is not T2, FLAIR or T1C", c.Sequence)
	check(semverRE.MatchString(c.Version), "version %q is not a semantic version", c.Version)
	check(semverRE.MatchString(c.MinFirmware), "min_firmware %q is not a semantic version", c.MinFirmware)
	check(len(c.Engines) > 0 && len(c.Engines) <= 4, "engines: want 1 to 4")
	for _, e := range c.Engines {
		check(e == "cpu" || e == "edgetpu", "engine %q is not cpu or edgetpu", e)
	}
	check(len(c.Groups) > 0 && len(c.Groups) <= 256, "groups: want 1 to 256")
	for _, g := range c.Groups {
		check(groupRE.MatchString(g), "group %q: want 1 to 64 of A-Za-z0-9._- or *", g)
	}
	if err := checkDowngradeFrom(c.DowngradeFrom, c.Version); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("ota: custom metadata: %w", errors.Join(errs...))
	}
	return nil
}

// checkDowngradeFrom: every version a downgrade starts from is a semantic version above the
// target's own, named once.
func checkDowngradeFrom(from []string, version string) error {
	if len(from) > MaxDowngradeFrom {
		return fmt.Errorf("downgrade_from: %d versions, at most %d", len(from), MaxDowngradeFrom)
	}
	for i, f := range from {
		switch {
		case !semverRE.MatchString(f):
			return fmt.Errorf("downgrade_from %q is not a semantic version", f)
		case CompareVersions(f, version) <= 0:
			return fmt.Errorf("downgrade_from %s is not above the target's version %s", f, version)
		case slices.Contains(from[:i], f):
			return fmt.Errorf("downgrade_from names %s twice", f)
		}
	}
	return nil
}

// ReleasedTo reports whether the target is released to a box of this group.
func (c Custom) ReleasedTo(group string) bool {
	return slices.Contains(c.Groups, "*") || (group != "" && slices.Contains(c.Groups, group))
}

// TargetName is the TUF target path of a bundle version: "<name>-<version>.tar".
func TargetName(name, version string) string { return name + "-" + version + ".tar" }

// CompareVersions orders two semantic versions (major, minor, patch numerically; a
// pre-release sorts before its release, pre-releases by text). Invalid versions sort first.
func CompareVersions(a, b string) int {
	pa, oka := parseSemver(a)
	pb, okb := parseSemver(b)
	switch {
	case !oka || !okb:
		return boolCmp(oka, okb)
	}
	for i := range 3 {
		if pa.n[i] != pb.n[i] {
			if pa.n[i] < pb.n[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case pa.pre == pb.pre:
		return 0
	case pa.pre == "":
		return 1
	case pb.pre == "":
		return -1
	}
	return strings.Compare(pa.pre, pb.pre)
}

type semver struct {
	n   [3]int
	pre string
}

func parseSemver(s string) (semver, bool) {
	m := semverRE.FindStringSubmatch(s)
	if m == nil {
		return semver{}, false
	}
	var v semver
	for i := range 3 {
		v.n[i], _ = strconv.Atoi(m[i+1])
	}
	v.pre = strings.TrimPrefix(m[4], "-")
	return v, true
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
