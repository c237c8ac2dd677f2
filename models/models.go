package models

import (
	"embed"
	"io/fs"
)

//go:embed dmg-*
var bundles embed.FS

// FS holds the shipped bundles, one folder each (dmg-t2, ...).
func FS() fs.FS { return bundles }

// Names lists the shipped bundles.
func Names() ([]string, error) {
	entries, err := fs.ReadDir(bundles, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
