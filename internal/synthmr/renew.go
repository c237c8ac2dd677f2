package synthmr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RenewSeries copies series seq of a phantom study (a folder written by
// `python -m midline_model.phantom`, with its study.json) into out/<seq>-<n> with new UIDs of
// the same lengths, so every element keeps its length: the series' and its instances' UIDs, and
// with study set the study's own UIDs too. Each n gives other UIDs: a new series for a scanner to
// send. It returns the folder and the new SeriesInstanceUID.
func RenewSeries(studyDir, seq, out string, n int, study bool) (string, string, error) {
	var st struct {
		UIDs   map[string]string `json:"uids"`
		Series map[string]struct {
			Folder    string   `json:"folder"`
			SeriesUID string   `json:"series_instance_uid"`
			SOPs      []string `json:"sop_instance_uids"`
		} `json:"series"`
	}
	b, err := os.ReadFile(filepath.Join(studyDir, "study.json"))
	if err != nil {
		return "", "", err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return "", "", fmt.Errorf("synthmr: %s/study.json: %w", studyDir, err)
	}
	s, ok := st.Series[seq]
	if !ok || len(s.SeriesUID) < 12 {
		return "", "", fmt.Errorf("synthmr: no series %s in %s", seq, studyDir)
	}
	renew := func(uid string) string {
		var tail int
		fmt.Sscanf(uid[len(uid)-5:], "%d", &tail)
		return uid[:len(uid)-5] + fmt.Sprintf("%05d", (tail+7919*(n+1))%100000)
	}
	olds := append([]string{s.SeriesUID}, s.SOPs...)
	if study {
		for _, v := range st.UIDs {
			if strings.HasPrefix(v, "2.25.") && len(v) > 12 {
				olds = append(olds, v)
			}
		}
	}
	dir := filepath.Join(out, fmt.Sprintf("%s-%02d", seq, n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	folder := s.Folder
	if folder == "" {
		folder = seq
	}
	files, _ := filepath.Glob(filepath.Join(studyDir, folder, "*.dcm"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		text := string(data)
		for _, o := range olds {
			text = strings.ReplaceAll(text, o, renew(o))
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(text), 0o644); err != nil {
			return "", "", err
		}
	}
	return dir, renew(s.SeriesUID), nil
}
