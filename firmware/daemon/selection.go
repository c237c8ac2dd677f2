package daemon

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/preproc"
)

// studyFacts are what the selection rules look at. Age is never logged or published.
type studyFacts struct {
	StudyDescription string
	AgeYears         float64
	HasAge           bool
}

func studyFactsOf(h preproc.Header) studyFacts {
	var f studyFacts
	get := func(t tag.Tag) string {
		for _, e := range h.PatientStudy {
			if e.Tag == t && e.Value.ValueType() == dicom.Strings {
				if v := dicom.MustGetStrings(e.Value); len(v) > 0 {
					return strings.TrimSpace(v[0])
				}
			}
		}
		return ""
	}
	f.StudyDescription = get(tag.StudyDescription)
	if a, ok := ageOf(get(tag.PatientAge)); ok {
		f.AgeYears, f.HasAge = a, true
	} else if b, err1 := time.Parse("20060102", get(tag.PatientBirthDate)); err1 == nil {
		if s, err2 := time.Parse("20060102", get(tag.StudyDate)); err2 == nil && !s.Before(b) {
			f.AgeYears, f.HasAge = s.Sub(b).Hours()/24/365.2425, true
		}
	}
	return f
}

// ageOf reads an AS value: nnnD, nnnW, nnnM or nnnY.
func ageOf(s string) (float64, bool) {
	if len(s) != 4 {
		return 0, false
	}
	n, err := strconv.Atoi(s[:3])
	if err != nil {
		return 0, false
	}
	switch s[3] {
	case 'D':
		return float64(n) / 365.2425, true
	case 'W':
		return float64(n) * 7 / 365.2425, true
	case 'M':
		return float64(n) / 12, true
	case 'Y':
		return float64(n), true
	}
	return 0, false
}

// selected applies the selection rules (docs/contracts.md, Configuration): no rules select
// every study; otherwise any matching rule does. The reason names the first rule's failure.
func selected(rules []config.Selection, calledAE string, f studyFacts) (bool, string) {
	if len(rules) == 0 {
		return true, ""
	}
	var why []string
	for i, r := range rules {
		ok, reason := ruleMatches(r, calledAE, f)
		if ok {
			return true, ""
		}
		why = append(why, fmt.Sprintf("selection[%d]: %s", i, reason))
	}
	return false, strings.Join(why, "; ")
}

func ruleMatches(r config.Selection, calledAE string, f studyFacts) (bool, string) {
	if r.CalledAE != "" && r.CalledAE != calledAE {
		return false, fmt.Sprintf("called AE %s is not %s", calledAE, r.CalledAE)
	}
	if r.StudyDescription != "" {
		re, err := regexp.Compile("(?i)" + r.StudyDescription)
		if err != nil || !re.MatchString(f.StudyDescription) {
			return false, "study description does not match"
		}
	}
	if r.MinAgeYears != nil || r.MaxAgeYears != nil {
		if !f.HasAge {
			return false, "no patient age in the study"
		}
		if r.MinAgeYears != nil && f.AgeYears < *r.MinAgeYears {
			return false, fmt.Sprintf("patient younger than %g years", *r.MinAgeYears)
		}
		if r.MaxAgeYears != nil && f.AgeYears > *r.MaxAgeYears {
			return false, fmt.Sprintf("patient older than %g years", *r.MaxAgeYears)
		}
	}
	return true, ""
}
