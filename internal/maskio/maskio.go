// Package maskio reads the label volumes that independent tools and the phantom toolchain
// write (plastimatch's NRRD, the phantom's NIfTI ground truth), so tests can compare them with
// Midline's masks. Only the unsigned 8-bit, 3D forms those tools write are supported.
package maskio

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Volume is a 3D label volume with the first axis fastest: Data[(z*Y+y)*X+x], so for a
// series' grid X is the column, Y the row and Z the slice.
type Volume struct {
	X, Y, Z int
	Data    []uint8
}

// maxVoxels bounds what a reader allocates (a 1024 x 1024 x 1024 grid).
const maxVoxels = 1 << 30

// ReadNRRD reads an "unsigned char" NRRD with raw or gzip encoding.
func ReadNRRD(path string) (*Volume, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	hdr := map[string]string{}
	for i := 0; ; i++ {
		line, err := br.ReadString('\n')
		if err != nil || i > 200 {
			return nil, fmt.Errorf("maskio: %s: NRRD header: %v", path, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			hdr[k] = v
		}
	}
	if t := hdr["type"]; t != "unsigned char" && t != "uchar" && t != "uint8" {
		return nil, fmt.Errorf("maskio: %s: NRRD type %q", path, t)
	}
	var n []int
	for _, s := range strings.Fields(hdr["sizes"]) {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("maskio: %s: NRRD sizes %q", path, hdr["sizes"])
		}
		n = append(n, v)
	}
	if len(n) != 3 {
		return nil, fmt.Errorf("maskio: %s: NRRD of %d dimensions", path, len(n))
	}
	var r io.Reader = br
	switch hdr["encoding"] {
	case "raw":
	case "gzip", "gz":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r = zr
	default:
		return nil, fmt.Errorf("maskio: %s: NRRD encoding %q", path, hdr["encoding"])
	}
	return readData(path, r, n[0], n[1], n[2])
}

// ReadNIfTI reads a NIfTI-1 volume of unsigned 8-bit values (datatype 2), gzipped or not.
func ReadNIfTI(path string) (*Volume, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r io.Reader = bytes.NewReader(raw)
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		r = zr
	}
	br := bufio.NewReader(r)
	hdr := make([]byte, 352)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("maskio: %s: NIfTI header: %w", path, err)
	}
	bo := binary.ByteOrder(binary.LittleEndian)
	if bo.Uint32(hdr) != 348 {
		bo = binary.BigEndian
		if bo.Uint32(hdr) != 348 {
			return nil, fmt.Errorf("maskio: %s: not a NIfTI-1 header", path)
		}
	}
	dim := func(i int) int { return int(int16(bo.Uint16(hdr[40+2*i:]))) }
	if dim(0) != 3 {
		return nil, fmt.Errorf("maskio: %s: NIfTI of %d dimensions", path, dim(0))
	}
	if dt := bo.Uint16(hdr[70:]); dt != 2 {
		return nil, fmt.Errorf("maskio: %s: NIfTI datatype %d, want 2 (uint8)", path, dt)
	}
	off := int(math.Float32frombits(bo.Uint32(hdr[108:])))
	if off < 352 {
		return nil, fmt.Errorf("maskio: %s: vox_offset %d", path, off)
	}
	if _, err := br.Discard(off - 352); err != nil {
		return nil, err
	}
	return readData(path, br, dim(1), dim(2), dim(3))
}

func readData(path string, r io.Reader, x, y, z int) (*Volume, error) {
	if x < 1 || y < 1 || z < 1 || int64(x)*int64(y)*int64(z) > maxVoxels {
		return nil, fmt.Errorf("maskio: %s: %dx%dx%d voxels", path, x, y, z)
	}
	v := &Volume{X: x, Y: y, Z: z, Data: make([]uint8, x*y*z)}
	if _, err := io.ReadFull(r, v.Data); err != nil {
		return nil, fmt.Errorf("maskio: %s: data: %w", path, err)
	}
	return v, nil
}
