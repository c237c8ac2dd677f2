package netdicom

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SendResult is the outcome for one file.
type SendResult struct {
	Path           string
	SOPInstanceUID string
	Status         Status
	Err            error
}

// ErrNotSent marks files that were not sent because the association failed first.
var ErrNotSent = errors.New("netdicom: not sent")

// Echo opens an association, sends one C-ECHO and releases it.
func Echo(ctx context.Context, addr string, o ClientOptions) error {
	a, err := Dial(ctx, addr, o, []PresentationContext{{AbstractSyntax: VerificationUID, TransferSyntax: echoSyntaxes}})
	if err != nil {
		return err
	}
	if _, err := a.Echo(); err != nil {
		a.Abort()
		return err
	}
	return a.Release()
}

// SendFiles sends Part 10 files over one association, proposing one context per SOP class and
// transfer syntax found in the files, and sending each data set as it is in its file. Beside
// them it proposes an uncompressed context per SOP class; when the peer accepts only that, the
// data set is transcoded (RLE Lossless frames are decoded). Per-file
// outcomes are in the results; the error is for the association as a whole.
func SendFiles(ctx context.Context, addr string, o ClientOptions, paths []string) ([]SendResult, error) {
	results := make([]SendResult, len(paths))
	var proposed []PresentationContext
	seen := map[[2]string]bool{}
	for i, p := range paths {
		results[i].Path = p
		meta, err := readMetaFile(p)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].SOPInstanceUID = meta.SOPInstanceUID
		for _, ts := range [][]string{{meta.TransferSyntax}, uncompressedFallback} {
			k := [2]string{meta.SOPClassUID, strings.Join(ts, ",")}
			if !seen[k] {
				seen[k] = true
				proposed = append(proposed, PresentationContext{AbstractSyntax: k[0], TransferSyntax: ts})
			}
		}
	}
	if len(proposed) == 0 {
		return results, errors.New("netdicom: no readable DICOM file to send")
	}
	a, err := Dial(ctx, addr, o, proposed)
	if err != nil {
		for i := range results {
			if results[i].Err == nil {
				results[i].Err = ErrNotSent
			}
		}
		return results, err
	}
	for i := range results {
		if results[i].Err != nil {
			continue
		}
		results[i].Status, results[i].Err = a.StoreFile(results[i].Path)
		var se *StatusError
		if results[i].Err != nil && !errors.As(results[i].Err, &se) && !errors.Is(results[i].Err, ErrNoContext) {
			a.Abort()
			for j := i + 1; j < len(results); j++ {
				if results[j].Err == nil {
					results[j].Err = ErrNotSent
				}
			}
			return results, fmt.Errorf("netdicom: association lost at %s: %w", results[i].Path, results[i].Err)
		}
	}
	return results, a.Release()
}

func readMetaFile(path string) (FileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileMeta{}, err
	}
	defer f.Close()
	m, err := ReadFileMeta(f)
	if err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
