// Package strictjson decodes the JSON documents Midline takes from outside (model.json, TUF
// custom metadata, site approvals, MQTT commands) strictly, so that a typo never reads as a
// default: one object, no unknown field, nothing after it but white space.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailing: the document goes on after its object.
var ErrTrailing = errors.New("data after the object")

// Decode decodes raw into v. Field names still match case-insensitively, as encoding/json does.
func Decode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailing
	}
	return nil
}
