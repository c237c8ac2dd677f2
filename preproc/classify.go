package preproc

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Label is the sequence a model is trained for, or Unknown.
type Label string

// The labels. A series is processed only with a model of its own label; Unknown series are
// skipped with a reason, never guessed.
const (
	T2      Label = "T2"
	FLAIR   Label = "FLAIR"
	T1C     Label = "T1C"
	Unknown Label = "unknown"
)

// Classification is the verdict on one series.
type Classification struct {
	Label Label
	// Reason says what decided the label, or why the series is skipped.
	Reason string
	// Unfit is set when the series is not original acquired data fit for radiotherapy
	// (derived, reformatted, projection, localizer); Label is then Unknown.
	Unfit bool
	// Flags are warnings that do not stop processing, for the result and its event.
	Flags []string
}

// FlagNo3DDistortionCorrection marks a series whose ImageType says it was not corrected for
// gradient non-linearity in 3D (Siemens ND or DIS2D): geometry may be off by millimetres away
// from the isocentre.
const FlagNo3DDistortionCorrection = "no 3D distortion correction (ImageType ND or DIS2D)"

// Rules configure classification (config key `classification`). Times are in ms. Name lists
// are regular expressions matched, case-insensitively, against SeriesDescription, ProtocolName
// and SequenceName joined by " | ", lower-cased, with '_' and '-' read as spaces (so that \b
// separates "t2_tse_tra" into words). Vendors adds names for a Manufacturer containing the key.
type Rules struct {
	FLAIRMinTI  float64 `yaml:"flair_min_ti_ms" json:"flair_min_ti_ms"`   // IR with TI above: FLAIR (if TE is long)
	STIRMaxTI   float64 `yaml:"stir_max_ti_ms" json:"stir_max_ti_ms"`     // IR with TI below: STIR
	T2MinTE     float64 `yaml:"t2_min_te_ms" json:"t2_min_te_ms"`         // T2-weighted echo time
	T2MinTR     float64 `yaml:"t2_min_tr_ms" json:"t2_min_tr_ms"`         // T2-weighted repetition time
	T1MaxTE     float64 `yaml:"t1_max_te_ms" json:"t1_max_te_ms"`         // T1-weighted echo time
	T1MaxTR     float64 `yaml:"t1_max_tr_ms" json:"t1_max_tr_ms"`         // T1-weighted spin echo repetition time
	T2StarMinTE float64 `yaml:"t2star_min_te_ms" json:"t2star_min_te_ms"` // gradient echo without IR: T2* from here

	Unfit       []string                      `yaml:"unfit" json:"unfit"`               // names of localizers and reformats
	Excluded    map[string][]string           `yaml:"excluded" json:"excluded"`         // reason -> names never processed
	Names       map[Label][]string            `yaml:"names" json:"names"`               // label -> names (T1C: any T1-weighted)
	Contrast    []string                      `yaml:"contrast" json:"contrast"`         // names of post-contrast series
	PreContrast []string                      `yaml:"pre_contrast" json:"pre_contrast"` // names of pre-contrast series
	Vendors     map[string]map[Label][]string `yaml:"vendors" json:"vendors"`
}

// DefaultRules returns the built-in rules: common physics bounds at 1.5 and 3 T, and series
// names of Siemens, GE and Philips protocols.
func DefaultRules() Rules {
	return Rules{
		FLAIRMinTI: 1400, STIRMaxTI: 300, T2MinTE: 60, T2MinTR: 1500, T1MaxTE: 30, T1MaxTR: 1000,
		T2StarMinTE: 10,
		Unfit: []string{`locali[sz]er`, `\bscout`, `\bsurvey`, `\b3 ?pl(ane)?\b`, `\bloc\b`,
			`aahead`, `tri ?pilot`, `\bmpr\b`, `\bmip\b`, `reformat`},
		Excluded: map[string][]string{
			"diffusion":                      {`\bdwi`, `diff`, `\badc\b`, `trace`, `\bdti\b`, `tensor`, `\bfa\b`},
			"susceptibility or T2*":          {`\bswi`, `swan`, `t2\*`, `t2 ?star`, `hemo`, `merge`, `venobold`},
			"perfusion, angiography or BOLD": {`perf`, `\bdsc\b`, `\bdce\b`, `\basl\b`, `pcasl`, `\btof\b`, `angio`, `\bmra\b`, `bold`, `fmri`},
			"proton density":                 {`\bpd\b`, `\bpdw`, `proton`},
			"STIR":                           {`stir`},
			"steady state":                   {`fiesta`, `\bciss\b`, `trufi`, `\bbffe\b`},
		},
		Names: map[Label][]string{
			FLAIR: {`flair`, `tirm`, `dark ?fluid`},
			T1C:   {`\bt1`, `mprage`, `bravo`, `spgr`, `vibe`},
			T2:    {`\bt2`},
		},
		Contrast:    []string{`\+ ?c\b`, `\bc\+`, `post`, `\bgd\b`, `gad`, `contrast`, `\bkm\b`, `\bce\b`, `\bw/ ?c\b`},
		PreContrast: []string{`\bpre\b`, `nativ`, `\bw/o\b`, `without`, `\bnon ?con`},
		Vendors: map[string]map[Label][]string{
			"siemens": {T2: {`t2 tse`, `t2 blade`, `t2 space`}, T1C: {`t1 mprage`, `t1 se\b`, `t1 tirm`, `t1 vibe`, `t1 fl[23]d`}},
			"ge":      {T2: {`\bfse\b`, `frfse`, `propeller`}, T1C: {`fspgr`, `bravo`, `\bt1 ?flair\b`}, FLAIR: {`cube flair`}},
			"philips": {T2: {`t2w`}, T1C: {`t1w`, `\btfe\b`}, FLAIR: {`view flair`, `vista flair`}},
		},
	}
}

// Classifier applies compiled Rules.
type Classifier struct {
	r                    Rules
	unfit, contrast, pre *regexp.Regexp
	excluded             []excluded
	names                map[Label]*regexp.Regexp
	t1flair              *regexp.Regexp
	vendors              map[string]map[Label]*regexp.Regexp
}

type excluded struct {
	reason string
	re     *regexp.Regexp
}

// NewClassifier compiles rules; a bad regular expression is an error naming it.
// Configuration should decode onto DefaultRules(), so that absent keys keep their defaults.
func NewClassifier(r Rules) (*Classifier, error) {
	if !(0 < r.STIRMaxTI && r.STIRMaxTI < r.FLAIRMinTI && 0 < r.T1MaxTE && r.T1MaxTE < r.T2MinTE &&
		0 < r.T1MaxTR && r.T1MaxTR < r.T2MinTR && 0 < r.T2StarMinTE) {
		return nil, fmt.Errorf("preproc: classification thresholds out of order: need 0 < stir_max_ti_ms < flair_min_ti_ms, 0 < t1_max_te_ms < t2_min_te_ms, 0 < t1_max_tr_ms < t2_min_tr_ms, 0 < t2star_min_te_ms: %+v",
			[]float64{r.STIRMaxTI, r.FLAIRMinTI, r.T1MaxTE, r.T2MinTE, r.T1MaxTR, r.T2MinTR, r.T2StarMinTE})
	}
	c := &Classifier{r: r, names: map[Label]*regexp.Regexp{}, vendors: map[string]map[Label]*regexp.Regexp{}}
	var err error
	if c.unfit, err = anyOf("unfit", r.Unfit); err != nil {
		return nil, err
	}
	if c.contrast, err = anyOf("contrast", r.Contrast); err != nil {
		return nil, err
	}
	if c.pre, err = anyOf("pre_contrast", r.PreContrast); err != nil {
		return nil, err
	}
	c.t1flair = regexp.MustCompile(`(?i)t1 ?(w ?)?(flair|tirm)|(flair|tirm) ?t1\b`)
	reasons := make([]string, 0, len(r.Excluded))
	for k := range r.Excluded {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	for _, k := range reasons {
		re, err := anyOf("excluded "+k, r.Excluded[k])
		if err != nil {
			return nil, err
		}
		c.excluded = append(c.excluded, excluded{k, re})
	}
	for l, pats := range r.Names {
		if c.names[l], err = anyOf("names "+string(l), pats); err != nil {
			return nil, err
		}
	}
	for v, m := range r.Vendors {
		c.vendors[v] = map[Label]*regexp.Regexp{}
		for l, pats := range m {
			if c.vendors[v][l], err = anyOf("vendors "+v+" "+string(l), pats); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// anyOf compiles a case-insensitive alternation; an empty list matches nothing.
func anyOf(what string, pats []string) (*regexp.Regexp, error) {
	if len(pats) == 0 {
		return nil, nil
	}
	re, err := regexp.Compile(`(?i)(?:` + strings.Join(pats, `)|(?:`) + `)`)
	if err != nil {
		return nil, fmt.Errorf("preproc: classification rule %s: %w", what, err)
	}
	return re, nil
}

func match(re *regexp.Regexp, s string) bool { return re != nil && re.MatchString(s) }

// Classify labels a series: fitness first (derived, reformats, localizers are skipped), then
// exclusions by image type, then physics (TR, TE, TI, ScanningSequence), then names (excluded
// kinds such as diffusion or TOF, then the labels' names);
// where physics and names disagree, or neither decides, the series is Unknown. A T1-weighted
// series is T1C only with evidence of contrast (agent, functional group, or name).
func (c *Classifier) Classify(a Acquisition) Classification {
	var flags []string
	if hasAny(a.ImageType, "ND", "DIS2D") {
		flags = append(flags, FlagNo3DDistortionCorrection)
	}
	names := nameText(a)
	res := c.classify(a, names)
	if (res.Label == T2 || res.Label == FLAIR) && c.postContrast(a, names) {
		flags = append(flags, FlagAfterContrast)
	}
	res.Flags = flags
	return res
}

// FlagAfterContrast marks a T2 or FLAIR series acquired after contrast: the models were
// trained on pre-contrast T2 and FLAIR, and enhancement may show.
const FlagAfterContrast = "acquired after contrast"

// postContrast reports evidence of contrast: the agent, the functional groups, or a name.
func (c *Classifier) postContrast(a Acquisition, names string) bool {
	return hasAgent(a) || strings.EqualFold(a.ContrastAdministered, "YES") ||
		match1(c.contrast, names) != "" && match1(c.pre, names) == ""
}

// hasAgent reports a ContrastBolusAgent other than empty, NONE or NO.
func hasAgent(a Acquisition) bool {
	agent := strings.ToUpper(strings.TrimSpace(a.ContrastBolusAgent))
	return agent != "" && agent != "NONE" && agent != "NO"
}

func (c *Classifier) classify(a Acquisition, names string) Classification {
	unknown := func(format string, v ...any) Classification {
		return Classification{Label: Unknown, Reason: fmt.Sprintf(format, v...)}
	}
	if a.Modality != "" && a.Modality != "MR" {
		return unknown("modality %s", a.Modality)
	}
	if r := c.fitness(a, names); r != "" {
		return Classification{Label: Unknown, Unfit: true, Reason: r}
	}
	if hasAny(a.ImageType, "DIFFUSION", "ADC", "TRACEW", "FA", "EADC") {
		return unknown("diffusion (ImageType %s)", strings.Join(a.ImageType, `\`))
	}
	if hasAny(a.ImageType, "SWI", "PERFUSION", "ANGIO") {
		return unknown("ImageType %s", strings.Join(a.ImageType, `\`))
	}
	if hasAny(a.ScanningSequence, "EP") && !hasAny(a.ScanningSequence, "SE", "IR") || hasAny(a.ScanningSequence, "EP") && hasAny(a.ScanningSequence, "GR") {
		return unknown("echo planar (diffusion, perfusion or BOLD): ScanningSequence %s", strings.Join(a.ScanningSequence, `\`))
	}
	phys, why := c.physics(a)
	if phys == Unknown {
		return unknown("%s", why)
	}
	for _, x := range c.excluded {
		if m := x.re.FindString(names); m != "" {
			return unknown("%s: the name says %q", x.reason, m)
		}
	}
	name, nameWhy := c.byName(a, names)
	var label Label
	var reason string
	switch {
	case phys == "" && name == "":
		return unknown("no physics (TR, TE) and no recognised name")
	case phys == "":
		label, reason = name, "by name ("+nameWhy+"); TR or TE absent"
	case name == "" || name == phys:
		label, reason = phys, why
	default:
		return unknown("physics says %s (%s) but the name says %s (%s)", phys, why, name, nameWhy)
	}
	if label != T1C {
		return Classification{Label: label, Reason: reason}
	}
	return c.contrastVerdict(a, names, reason)
}

// fitness returns why a series is not original acquired data, or "".
func (c *Classifier) fitness(a Acquisition, names string) string {
	switch {
	case hasAny(a.ImageType, "LOCALIZER"):
		return "localizer (ImageType)"
	case len(a.ImageType) > 0 && strings.EqualFold(a.ImageType[0], "DERIVED"):
		return "derived image (ImageType " + strings.Join(a.ImageType, `\`) + ")"
	case hasAny(a.ImageType, "MPR", "MIP", "MINIP", "MNIP", "PROJECTION IMAGE", "REFORMATTED", "CPR", "CURVED"):
		return "reformat or projection (ImageType " + strings.Join(a.ImageType, `\`) + ")"
	}
	if m := match1(c.unfit, names); m != "" {
		return fmt.Sprintf("localizer or reformat: the name says %q", m)
	}
	return ""
}

func match1(re *regexp.Regexp, s string) string {
	if re == nil {
		return ""
	}
	return re.FindString(s)
}

// physics labels by TR, TE, TI and ScanningSequence: "" when they are absent, Unknown with a
// reason when they rule the model sequences out. T1C stands for any T1-weighted series here.
func (c *Classifier) physics(a Acquisition) (Label, string) {
	r := c.r
	tr, te, ti := a.RepetitionTime, a.EchoTime, a.InversionTime
	if tr == 0 || te == 0 {
		return "", ""
	}
	ir := hasAny(a.ScanningSequence, "IR") || ti > 0
	gr := hasAny(a.ScanningSequence, "GR") && !hasAny(a.ScanningSequence, "SE")
	desc := fmt.Sprintf("TR %g, TE %g, TI %g ms, %s", tr, te, ti, strings.Join(a.ScanningSequence, `\`))
	switch {
	case ir && ti == 0:
		return Unknown, "inversion recovery without an inversion time: " + desc
	case ir && ti >= r.FLAIRMinTI && te >= r.T2MinTE:
		return FLAIR, "inversion recovery with long TI and long TE: " + desc
	case ir && ti >= r.FLAIRMinTI:
		return Unknown, "long TI with a short TE is not a T2-weighted FLAIR: " + desc
	case ir && ti < r.STIRMaxTI:
		return Unknown, "short-tau inversion recovery (STIR): " + desc
	case ir && te <= r.T1MaxTE:
		return T1C, "T1-weighted inversion recovery (T1-FLAIR, MPRAGE, BRAVO): " + desc
	case ir:
		return Unknown, "inversion recovery of intermediate TI and TE: " + desc
	case gr && te >= r.T2StarMinTE:
		return Unknown, "gradient echo with a long TE (T2* or susceptibility): " + desc
	case gr:
		return T1C, "spoiled gradient echo, short TE: " + desc
	case te >= r.T2MinTE && tr >= r.T2MinTR:
		return T2, "spin echo, long TR and TE: " + desc
	case te <= r.T1MaxTE && tr <= r.T1MaxTR:
		return T1C, "spin echo, short TR and TE: " + desc
	case te <= r.T1MaxTE && tr >= r.T2MinTR:
		return Unknown, "long TR with a short TE (proton density): " + desc
	}
	return Unknown, "intermediate weighting: " + desc
}

// byName labels by the names, "" when none matches. Labels are tried FLAIR, then T1, then T2
// (a "T2W_FLAIR" is a FLAIR), each by the manufacturer's names and then the generic ones; a
// T1-FLAIR name is T1-weighted.
func (c *Classifier) byName(a Acquisition, names string) (Label, string) {
	if m := match1(c.t1flair, names); m != "" {
		return T1C, fmt.Sprintf("%q", m)
	}
	man := strings.ToLower(a.Manufacturer)
	for _, l := range []Label{FLAIR, T1C, T2} {
		for v, m := range c.vendors {
			if vendorIs(man, v) {
				if x := match1(m[l], names); x != "" {
					return l, fmt.Sprintf("%s name %q", v, x)
				}
			}
		}
		if x := match1(c.names[l], names); x != "" {
			return l, fmt.Sprintf("%q", x)
		}
	}
	return "", ""
}

func vendorIs(man, v string) bool {
	if v == "ge" {
		return strings.HasPrefix(man, "ge ") || man == "ge" || strings.Contains(man, "general electric")
	}
	return strings.Contains(man, v)
}

func (c *Classifier) contrastVerdict(a Acquisition, names, reason string) Classification {
	switch {
	case hasAgent(a):
		return Classification{Label: T1C, Reason: reason + "; ContrastBolusAgent " + a.ContrastBolusAgent}
	case strings.EqualFold(a.ContrastAdministered, "YES"):
		return Classification{Label: T1C, Reason: reason + "; contrast administered (functional groups)"}
	case strings.EqualFold(a.ContrastAdministered, "NO"):
		return Classification{Label: Unknown, Reason: "pre-contrast T1 (functional groups say no contrast): " + reason}
	}
	if m := match1(c.pre, names); m != "" {
		return Classification{Label: Unknown, Reason: fmt.Sprintf("pre-contrast T1, the name says %q: %s", m, reason)}
	}
	if m := match1(c.contrast, names); m != "" {
		return Classification{Label: T1C, Reason: fmt.Sprintf("%s; post-contrast by name %q (ContrastBolusAgent empty)", reason, m)}
	}
	return Classification{Label: Unknown, Reason: "T1-weighted without evidence of contrast (no ContrastBolusAgent, no post-contrast name): " + reason}
}

func hasAny(vals []string, want ...string) bool {
	for _, v := range vals {
		for _, w := range want {
			if strings.EqualFold(strings.TrimSpace(v), w) {
				return true
			}
		}
	}
	return false
}

// nameText is what name rules match: the names lower-cased, '_' and '-' as spaces.
func nameText(a Acquisition) string {
	s := strings.ToLower(strings.Join([]string{a.SeriesDescription, a.ProtocolName, a.SequenceName}, " | "))
	return strings.NewReplacer("_", " ", "-", " ").Replace(s)
}
