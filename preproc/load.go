package preproc

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/midline-rt/midline/netdicom"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Limits bound what LoadSeries accepts. They are checked on header values before any pixel
// buffer is allocated.
type Limits struct {
	// MaxFileBytes bounds one Part 10 file (and its inflated data set when deflated).
	MaxFileBytes int64
	// MaxMatrix bounds Rows and Columns each. MR brain matrices are at most 1024 (usually 256
	// to 512); a 2048x2048 matrix is refused: one float32 slice would be 16 MiB and a 3D
	// series of them beyond a 1 GB board.
	MaxMatrix int
	// MaxSlices bounds the number of slices (instances or frames).
	MaxSlices int
	// MaxVoxels bounds Rows x Columns x slices (4 bytes each in the volume).
	MaxVoxels int64
}

// DefaultLimits admit a 1024x1024x256 series or a 512x512x1024 one: 256 Mi voxels would not fit
// a board, 64 Mi (256 MiB of float32) is the ceiling; the worst case of issue 5
// (512x512x176) needs 46 Mi.
func DefaultLimits() Limits {
	return Limits{MaxFileBytes: 512 << 20, MaxMatrix: 1024, MaxSlices: 1024, MaxVoxels: 64 << 20}
}

// Options tune LoadSeries; the zero value means the defaults.
type Options struct {
	Limits Limits
	// SpacingTolerance is the largest accepted deviation of a gap between slices from the
	// series' mean spacing, as a fraction of it (default 0.01) but at least SpacingToleranceMM
	// (default 0.05 mm, above DS rounding of positions).
	SpacingTolerance   float64
	SpacingToleranceMM float64
	// OrientationTolerance bounds the difference of direction cosines between slices
	// (default 1e-4).
	OrientationTolerance float64
	// MinSlices is the fewest slices a series may have (default 2; one slice has no spacing).
	MinSlices int
}

func (o Options) withDefaults() Options {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if o.SpacingTolerance == 0 {
		o.SpacingTolerance = 0.01
	}
	if o.SpacingToleranceMM == 0 {
		o.SpacingToleranceMM = 0.05
	}
	if o.OrientationTolerance == 0 {
		o.OrientationTolerance = 1e-4
	}
	if o.MinSlices == 0 {
		o.MinSlices = 2
	}
	return o
}

// frameInfo is one slice-to-be: a frame of an instance with its own geometry and rescale.
type frameInfo struct {
	inst      *instance
	index     int // 0-based frame number in the instance
	ipp       Vec3
	iop       [6]float64
	spacing   [2]float64
	slope     float64
	intercept float64
}

// instance is what the header pass learned about one file.
type instance struct {
	path      string
	ts        string
	dsOffset  int64 // where the data set starts in the file
	dsLen     int64 // its length (inflated, when deflated)
	pixel     pixelLoc
	rows      int
	cols      int
	bits      int // BitsAllocated
	stored    int // BitsStored
	signed    bool
	frames    []frameInfo
	sopClass  string
	sopInst   string
	study     string
	series    string
	forUID    string
	patientID string
	expected  int // ImagesInAcquisition, 0 when absent
	elems     []*dicom.Element
	lim       Limits
}

// LoadSeries reads the Part 10 files of one series (netdicom.SeriesEvent.Paths) into a Volume:
// headers first (bounded pre-scan, then suyashkumar/dicom without pixel data), slices sorted
// by the projection of ImagePositionPatient on the normal and checked for consistency, then
// pixels read slice by slice into one float32 buffer.
func LoadSeries(ctx context.Context, paths []string, opt Options) (*Volume, error) {
	opt = opt.withDefaults()
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no instances", ErrTooFewSlices)
	}
	if len(paths) > opt.Limits.MaxSlices {
		return nil, fmt.Errorf("%w: %d instances, at most %d", ErrTooLarge, len(paths), opt.Limits.MaxSlices)
	}
	var insts []*instance
	var frames []frameInfo
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := readInstance(p, opt.Limits)
		if err != nil {
			return nil, err
		}
		insts = append(insts, in)
		if frames = append(frames, in.frames...); len(frames) > opt.Limits.MaxSlices {
			return nil, fmt.Errorf("%w: more than %d slices", ErrTooLarge, opt.Limits.MaxSlices)
		}
	}
	if err := checkIdentity(insts); err != nil {
		return nil, err
	}
	g, err := stackGeometry(frames, opt)
	if err != nil {
		return nil, err
	}
	if err := checkCount(insts, len(frames)); err != nil {
		return nil, err
	}
	if v := int64(g.Rows) * int64(g.Cols) * int64(len(frames)); v > opt.Limits.MaxVoxels {
		return nil, fmt.Errorf("%w: %d voxels, at most %d", ErrTooLarge, v, opt.Limits.MaxVoxels)
	}
	v := &Volume{Geometry: g, Pixels: make([]float32, g.Rows*g.Cols*len(frames))}
	for _, f := range frames {
		v.SOPInstanceUIDs = append(v.SOPInstanceUIDs, f.inst.sopInst)
		v.Frames = append(v.Frames, f.index+1)
	}
	for _, in := range insts {
		if in != frames[0].inst {
			in.elems = nil // only the first slice's header is kept
		}
	}
	if err := readPixels(ctx, v, frames); err != nil {
		return nil, err
	}
	v.Header = makeHeader(frames[0].inst)
	return v, nil
}

// ReadHeader reads one instance's header (bounded like LoadSeries, no pixels), so that a
// series can be classified, and skipped, before its pixels are read: a localizer series mixes
// orientations that LoadSeries would refuse.
func ReadHeader(path string, lim Limits) (Header, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	in, err := readInstance(path, lim)
	if err != nil {
		return Header{}, err
	}
	return makeHeader(in), nil
}

// checkCount refuses a single-frame series with fewer slices than every instance's
// ImagesInAcquisition says: a slice missing at either end leaves no gap to see.
func checkCount(insts []*instance, n int) error {
	want := insts[0].expected
	for _, in := range insts {
		if in.expected != want || len(in.frames) != 1 {
			return nil
		}
	}
	if want > n {
		return fmt.Errorf("%w: %d of the %d images ImagesInAcquisition announces", ErrMissingSlice, n, want)
	}
	return nil
}

// checkIdentity refuses instances of different patients or studies, and mixed series.
func checkIdentity(insts []*instance) error {
	a := insts[0]
	seen := map[string]bool{}
	for _, b := range insts {
		switch {
		case b.patientID != a.patientID:
			return fmt.Errorf("%w: PatientID differs between %s and %s", ErrWrongPatient, a.path, b.path)
		case b.study != a.study:
			return fmt.Errorf("%w: StudyInstanceUID differs between %s and %s", ErrWrongPatient, a.path, b.path)
		}
		switch {
		case b.series != a.series:
			return fmt.Errorf("%w: SeriesInstanceUID differs between %s and %s", ErrInconsistent, a.path, b.path)
		case b.forUID != a.forUID:
			return fmt.Errorf("%w: FrameOfReferenceUID differs between %s and %s", ErrInconsistent, a.path, b.path)
		case b.sopClass != a.sopClass:
			return fmt.Errorf("%w: SOP Class differs between %s and %s", ErrInconsistent, a.path, b.path)
		case seen[b.sopInst]:
			return fmt.Errorf("%w: SOP Instance UID %s twice", ErrInconsistent, b.sopInst)
		}
		seen[b.sopInst] = true
	}
	return nil
}

// stackGeometry sorts frames along the normal (in place) and checks that they form one
// uniformly spaced stack.
func stackGeometry(frames []frameInfo, opt Options) (Geometry, error) {
	if len(frames) < opt.MinSlices {
		return Geometry{}, fmt.Errorf("%w: %d slice(s), at least %d", ErrTooFewSlices, len(frames), opt.MinSlices)
	}
	f0 := frames[0]
	for _, f := range frames[1:] {
		switch {
		case f.inst.rows != f0.inst.rows || f.inst.cols != f0.inst.cols:
			return Geometry{}, fmt.Errorf("%w: %dx%d and %dx%d matrices", ErrInconsistent, f0.inst.rows, f0.inst.cols, f.inst.rows, f.inst.cols)
		case !near6(f.iop, f0.iop, opt.OrientationTolerance):
			return Geometry{}, fmt.Errorf("%w: orientations %v and %v", ErrInconsistent, f0.iop, f.iop)
		case math.Abs(f.spacing[0]-f0.spacing[0]) > 1e-4 || math.Abs(f.spacing[1]-f0.spacing[1]) > 1e-4:
			return Geometry{}, fmt.Errorf("%w: pixel spacings %v and %v", ErrInconsistent, f0.spacing, f.spacing)
		}
	}
	g := Geometry{Rows: f0.inst.rows, Cols: f0.inst.cols, PixelSpacing: f0.spacing,
		RowCosine: Vec3{f0.iop[0], f0.iop[1], f0.iop[2]}, ColumnCosine: Vec3{f0.iop[3], f0.iop[4], f0.iop[5]}}
	g.Normal = g.RowCosine.cross(g.ColumnCosine).unit()
	slices.SortStableFunc(frames, func(a, b frameInfo) int {
		return cmpFloat(a.ipp.dot(g.Normal), b.ipp.dot(g.Normal))
	})
	for _, f := range frames {
		g.Positions = append(g.Positions, f.ipp)
	}
	n := len(frames)
	first, last := frames[0].ipp.dot(g.Normal), frames[n-1].ipp.dot(g.Normal)
	g.SliceSpacing = (last - first) / float64(n-1)
	return g, checkSpacing(&g, opt)
}

func checkSpacing(g *Geometry, opt Options) error {
	n := len(g.Positions)
	minGap := math.Inf(1)
	for k := 1; k < n; k++ {
		d := g.Positions[k].sub(g.Positions[k-1])
		gap := d.dot(g.Normal)
		if off := d.sub(g.Normal.scale(gap)).norm(); off > opt.SpacingToleranceMM {
			return fmt.Errorf("%w: slice %d is shifted %.3f mm in its plane from slice %d", ErrInconsistent, k, off, k-1)
		}
		minGap = min(minGap, gap)
	}
	if minGap < opt.SpacingToleranceMM {
		return fmt.Errorf("%w: two slices %.4f mm apart (repeated positions: several echoes, phases or stacks?)", ErrInconsistent, minGap)
	}
	tol := max(opt.SpacingToleranceMM, opt.SpacingTolerance*minGap)
	for k := 1; k < n; k++ {
		gap := g.Positions[k].sub(g.Positions[k-1]).dot(g.Normal)
		if math.Abs(gap-minGap) <= tol {
			continue
		}
		if m := math.Round(gap / minGap); m >= 2 && math.Abs(gap-m*minGap) <= tol*m {
			return fmt.Errorf("%w: %.3f mm between slices %d and %d, %g times the spacing of %.3f mm", ErrMissingSlice, gap, k-1, k, m, minGap)
		}
		return fmt.Errorf("%w: %.3f mm between slices %d and %d, spacing elsewhere %.3f mm (tolerance %.3f mm)", ErrSpacing, gap, k-1, k, minGap, tol)
	}
	return nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func near6(a, b [6]float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// syntax returns the byte order and VR form of an accepted transfer syntax.
func syntax(ts string) (bo binary.ByteOrder, implicit, deflated, rle bool, err error) {
	switch ts {
	case netdicom.ImplicitVRLittleEndian:
		return binary.LittleEndian, true, false, false, nil
	case netdicom.ExplicitVRLittleEndian:
		return binary.LittleEndian, false, false, false, nil
	case netdicom.ExplicitVRBigEndian:
		return binary.BigEndian, false, false, false, nil
	case netdicom.DeflatedExplicitVRLE:
		return binary.LittleEndian, false, true, false, nil
	case netdicom.RLELossless:
		return binary.LittleEndian, false, false, true, nil
	}
	return nil, false, false, false, fmt.Errorf("%w: transfer syntax %q not accepted", ErrBadInstance, ts)
}

// dataSet opens a file's data set for random access: the file itself, or the inflated bytes
// of a deflated one.
func dataSet(path string, lim Limits) (r io.ReaderAt, n int64, meta netdicom.FileMeta, closeFn func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, meta, nil, fmt.Errorf("%w: %w", ErrBadInstance, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, meta, nil, fmt.Errorf("%w: %w", ErrBadInstance, err)
	}
	if st.Size() > lim.MaxFileBytes {
		f.Close()
		return nil, 0, meta, nil, fmt.Errorf("%w: %s has %d bytes, at most %d", ErrTooLarge, path, st.Size(), lim.MaxFileBytes)
	}
	if meta, err = netdicom.ReadFileMeta(f); err != nil {
		f.Close()
		return nil, 0, meta, nil, fmt.Errorf("%w: %s: %w", ErrBadInstance, path, err)
	}
	n = st.Size() - meta.DataOffset
	if meta.TransferSyntax != netdicom.DeflatedExplicitVRLE {
		return f, n, meta, func() { f.Close() }, nil
	}
	defer f.Close()
	fr := flate.NewReader(io.NewSectionReader(f, meta.DataOffset, n))
	defer fr.Close()
	b, err := io.ReadAll(io.LimitReader(fr, lim.MaxFileBytes+1))
	if err != nil {
		return nil, 0, meta, nil, fmt.Errorf("%w: %s: inflate: %w", ErrBadInstance, path, err)
	}
	if int64(len(b)) > lim.MaxFileBytes {
		return nil, 0, meta, nil, fmt.Errorf("%w: %s inflates beyond %d bytes", ErrTooLarge, path, lim.MaxFileBytes)
	}
	meta.DataOffset = 0
	return bytes.NewReader(b), int64(len(b)), meta, func() {}, nil
}

// readInstance runs the header pass on one file.
func readInstance(path string, lim Limits) (*instance, error) {
	r, n, meta, closeFn, err := dataSet(path, lim)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	bo, implicit, _, rle, err := syntax(meta.TransferSyntax)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pix, err := scanDataSet(io.NewSectionReader(r, meta.DataOffset, n), n, bo, implicit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ds, err := parseHeader(io.NewSectionReader(r, meta.DataOffset, n), n, bo, implicit)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadInstance, path, err)
	}
	in := &instance{path: path, ts: meta.TransferSyntax, dsOffset: meta.DataOffset, dsLen: n, pixel: pix, elems: ds.Elements, lim: lim}
	if err := in.describe(lim, rle); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// parseHeader parses a data set with the library, pixel data skipped. The library is handed a
// made-up file meta group that names the syntax, so that it never guesses one.
func parseHeader(r io.Reader, n int64, bo binary.ByteOrder, implicit bool) (ds dicom.Dataset, err error) {
	// The pre-scan has bounded every length; a panic left in the library on some other oddity
	// must still not take the daemon down.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parser panic: %v", p)
		}
	}()
	ts := netdicom.ExplicitVRLittleEndian
	switch {
	case implicit:
		ts = netdicom.ImplicitVRLittleEndian
	case bo == binary.BigEndian:
		ts = netdicom.ExplicitVRBigEndian
	}
	meta := fakeMeta(ts)
	return dicom.Parse(io.MultiReader(bytes.NewReader(meta), r), int64(len(meta))+n, nil,
		dicom.SkipPixelData(), dicom.AllowUnknownSpecificCharacterSet())
}

func fakeMeta(ts string) []byte {
	uid := []byte(ts)
	if len(uid)%2 == 1 {
		uid = append(uid, 0)
	}
	var g []byte
	g = binary.LittleEndian.AppendUint16(g, 0x0002)
	g = binary.LittleEndian.AppendUint16(g, 0x0010)
	g = append(g, 'U', 'I')
	g = binary.LittleEndian.AppendUint16(g, uint16(len(uid)))
	g = append(g, uid...)
	b := make([]byte, 128, 128+4+12+len(g))
	b = append(b, "DICM"...)
	b = append(b, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(g)))
	return append(b, g...)
}

// describe reads the image attributes and the per-frame geometry of a parsed instance.
func (in *instance) describe(lim Limits, rle bool) error {
	e := in.elems
	in.sopClass, in.sopInst = str(e, tag.SOPClassUID), str(e, tag.SOPInstanceUID)
	in.study, in.series, in.forUID = str(e, tag.StudyInstanceUID), str(e, tag.SeriesInstanceUID), str(e, tag.FrameOfReferenceUID)
	in.patientID = str(e, tag.PatientID)
	in.expected = max(integer(e, tag.ImagesInAcquisition), 0)
	if in.sopInst == "" || in.series == "" {
		return fmt.Errorf("%w: no SOP Instance UID or Series Instance UID", ErrBadInstance)
	}
	in.rows, in.cols = integer(e, tag.Rows), integer(e, tag.Columns)
	if in.rows <= 0 || in.cols <= 0 {
		return fmt.Errorf("%w: matrix %dx%d", ErrBadInstance, in.rows, in.cols)
	}
	if in.rows > lim.MaxMatrix || in.cols > lim.MaxMatrix {
		return fmt.Errorf("%w: matrix %dx%d, at most %d per side", ErrTooLarge, in.rows, in.cols, lim.MaxMatrix)
	}
	if err := in.pixelFormat(); err != nil {
		return err
	}
	nf := 1
	if s := str(e, tag.NumberOfFrames); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("%w: NumberOfFrames %q", ErrBadInstance, s)
		}
		nf = v
	}
	if nf > lim.MaxSlices {
		return fmt.Errorf("%w: %d frames, at most %d", ErrTooLarge, nf, lim.MaxSlices)
	}
	if err := in.checkPixelLength(nf, rle); err != nil {
		return err
	}
	if nf == 1 && find(e, tag.PerFrameFunctionalGroupsSequence) == nil {
		f, err := frameGeometry(e, nil)
		if err != nil {
			return err
		}
		f.inst = in
		in.frames = []frameInfo{f}
		return nil
	}
	return in.multiFrame(nf)
}

func (in *instance) pixelFormat() error {
	e := in.elems
	if s := integer(e, tag.SamplesPerPixel); s != 1 {
		return fmt.Errorf("%w: %d samples per pixel (grayscale only)", ErrBadInstance, s)
	}
	if p := str(e, tag.PhotometricInterpretation); p != "MONOCHROME2" && p != "MONOCHROME1" {
		return fmt.Errorf("%w: photometric interpretation %q", ErrBadInstance, p)
	}
	in.bits, in.stored, in.signed = integer(e, tag.BitsAllocated), integer(e, tag.BitsStored), integer(e, tag.PixelRepresentation) == 1
	if in.bits != 8 && in.bits != 16 && in.bits != 32 {
		return fmt.Errorf("%w: %d bits allocated", ErrBadInstance, in.bits)
	}
	if in.stored <= 0 || in.stored > in.bits {
		in.stored = in.bits
	}
	return nil
}

// checkPixelLength makes sure the pixel data is there and long enough: a truncated file may
// parse without it.
func (in *instance) checkPixelLength(nf int, rle bool) error {
	if !in.pixel.found {
		return fmt.Errorf("%w: no pixel data (truncated?)", ErrBadInstance)
	}
	if in.pixel.encapsulated != rle {
		return fmt.Errorf("%w: pixel data encapsulation does not match transfer syntax %s", ErrBadInstance, in.ts)
	}
	if !rle {
		need := int64(in.rows) * int64(in.cols) * int64(in.bits/8) * int64(nf)
		if in.pixel.length < need {
			return fmt.Errorf("%w: pixel data of %d bytes, %d frame(s) need %d", ErrBadInstance, in.pixel.length, nf, need)
		}
	}
	return nil
}

// frameGeometry reads a frame's geometry and rescale from the first of the given element lists
// that holds each attribute (per-frame groups, shared groups, top level).
func frameGeometry(top []*dicom.Element, groups [][]*dicom.Element) (frameInfo, error) {
	lists := append(groups, top)
	var f frameInfo
	ipp, err := floats(lookup(lists, tag.PlanePositionSequence, tag.ImagePositionPatient), 3)
	if err != nil {
		return f, fmt.Errorf("%w: ImagePositionPatient: %w", ErrBadInstance, err)
	}
	iop, err := floats(lookup(lists, tag.PlaneOrientationSequence, tag.ImageOrientationPatient), 6)
	if err != nil {
		return f, fmt.Errorf("%w: ImageOrientationPatient: %w", ErrBadInstance, err)
	}
	ps, err := floats(lookup(lists, tag.PixelMeasuresSequence, tag.PixelSpacing), 2)
	if err != nil {
		return f, fmt.Errorf("%w: PixelSpacing: %w", ErrBadInstance, err)
	}
	copy(f.ipp[:], ipp)
	copy(f.iop[:], iop)
	copy(f.spacing[:], ps)
	if err := checkOrientation(f.iop, f.spacing); err != nil {
		return f, err
	}
	slope := lookup(lists, tag.PixelValueTransformationSequence, tag.RescaleSlope)
	icpt := lookup(lists, tag.PixelValueTransformationSequence, tag.RescaleIntercept)
	f.slope, f.intercept = 1, 0
	if slope != nil {
		v, err := floats(slope, 1)
		if err != nil || v[0] == 0 {
			return f, fmt.Errorf("%w: RescaleSlope %q", ErrBadValues, strsOf(slope))
		}
		f.slope = v[0]
	}
	if icpt != nil {
		v, err := floats(icpt, 1)
		if err != nil {
			return f, fmt.Errorf("%w: RescaleIntercept %q", ErrBadValues, strsOf(icpt))
		}
		f.intercept = v[0]
	}
	return f, nil
}

func checkOrientation(iop [6]float64, ps [2]float64) error {
	r, c := Vec3{iop[0], iop[1], iop[2]}, Vec3{iop[3], iop[4], iop[5]}
	if math.Abs(r.norm()-1) > 1e-3 || math.Abs(c.norm()-1) > 1e-3 || math.Abs(r.dot(c)) > 1e-3 {
		return fmt.Errorf("%w: ImageOrientationPatient %v is not two orthogonal unit vectors", ErrBadInstance, iop)
	}
	if !(ps[0] > 0 && ps[1] > 0 && ps[0] < 100 && ps[1] < 100) {
		return fmt.Errorf("%w: PixelSpacing %v", ErrBadInstance, ps)
	}
	return nil
}

// multiFrame reads the per-frame functional groups of an Enhanced MR instance.
func (in *instance) multiFrame(nf int) error {
	shared := items(find(in.elems, tag.SharedFunctionalGroupsSequence))
	perFrame := items(find(in.elems, tag.PerFrameFunctionalGroupsSequence))
	if len(perFrame) != nf {
		return fmt.Errorf("%w: %d per-frame functional groups for %d frames", ErrBadInstance, len(perFrame), nf)
	}
	var sh []*dicom.Element
	if len(shared) > 0 {
		sh = shared[0]
	}
	for i, pf := range perFrame {
		f, err := frameGeometry(in.elems, [][]*dicom.Element{pf, sh})
		if err != nil {
			return fmt.Errorf("frame %d: %w", i+1, err)
		}
		f.inst, f.index = in, i
		in.frames = append(in.frames, f)
	}
	return nil
}

// lookup finds attribute t inside macro sequence seq of the first list holding it, or at the
// top level of the last list (the data set itself).
func lookup(lists [][]*dicom.Element, seq, t tag.Tag) *dicom.Element {
	for i, l := range lists {
		if i == len(lists)-1 {
			if e := find(l, t); e != nil {
				return e
			}
		}
		if it := items(find(l, seq)); len(it) > 0 {
			if e := find(it[0], t); e != nil {
				return e
			}
		}
	}
	return nil
}

func find(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

// items returns the element lists of a sequence's items.
func items(e *dicom.Element) [][]*dicom.Element {
	if e == nil {
		return nil
	}
	its, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok {
		return nil
	}
	var out [][]*dicom.Element
	for _, it := range its {
		if l, ok := it.GetValue().([]*dicom.Element); ok {
			out = append(out, l)
		}
	}
	return out
}

func strsOf(e *dicom.Element) []string {
	if e == nil {
		return nil
	}
	s, _ := e.Value.GetValue().([]string)
	return s
}

func str(elems []*dicom.Element, t tag.Tag) string {
	return strings.TrimSpace(strings.Join(strsOf(find(elems, t)), `\`))
}

func integer(elems []*dicom.Element, t tag.Tag) int {
	e := find(elems, t)
	if e == nil {
		return -1
	}
	switch v := e.Value.GetValue().(type) {
	case []int:
		if len(v) > 0 {
			return v[0]
		}
	case []string:
		if len(v) > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(v[0])); err == nil {
				return n
			}
		}
	}
	return -1
}

var errMissing = errors.New("missing")

// floats parses exactly n decimal strings (DS) or floating point values.
func floats(e *dicom.Element, n int) ([]float64, error) {
	if e == nil {
		return nil, errMissing
	}
	var out []float64
	switch v := e.Value.GetValue().(type) {
	case []string:
		for _, s := range v {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("value %q", s)
			}
			out = append(out, f)
		}
	case []float64:
		out = v
	}
	if len(out) != n {
		return nil, fmt.Errorf("%d values, want %d", len(out), n)
	}
	for _, f := range out {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("value %v", f)
		}
	}
	return out, nil
}
