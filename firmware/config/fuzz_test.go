package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds hostile YAML to the decoder and validator: no panic, no hang (aliases are
// bounded by the decoder, the file by MaxFileSize), and a file that parses must validate again.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"../demo.yaml", "../coral.yaml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range seeds {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			t.Skip("the file bound is tested by TestLoadBounds")
		}
		c, err := Parse(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a parsed configuration fails Validate: %v", err)
		}
	})
}
