package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a configuration file; a real one is a few kilobytes.
const MaxFileSize = 1 << 20

// Load reads, decodes and validates the configuration file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("config: read %s: %w", path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration onto Default() and validates it. Decoding stops at the first
// YAML error; validation reports every bad value, one per line of the error.
func Parse(b []byte) (Config, error) {
	c, err := decode(b)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decode is Parse without validation.
func decode(b []byte) (Config, error) {
	if len(b) > MaxFileSize {
		return Config{}, fmt.Errorf("config: file larger than %d bytes", MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	c := Default()
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("config: empty file")
		}
		return Config{}, yamlError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return Config{}, yamlError(err)
		}
		return Config{}, fmt.Errorf("config: line %d: a second YAML document; a configuration is one document", next.Line)
	}
	c.fillDefaults()
	return c, nil
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlError rewords the decoder's messages in the file's terms rather than Go's.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config: %s", bytes.TrimPrefix([]byte(err.Error()), []byte("yaml: ")))
	}
	errs := make([]error, 0, len(te.Errors))
	for _, e := range te.Errors {
		errs = append(errs, fmt.Errorf("config: %s", unknownField.ReplaceAllString(e, `unknown key "$1"`)))
	}
	return errors.Join(errs...)
}
