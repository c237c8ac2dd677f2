// Package config is the firmware's configuration: every key of DESIGN.md as Go types, decoded
// strictly from YAML onto Default() and checked by Validate before the daemon starts anything.
//
// Parse and Load refuse unknown keys (naming the line), duplicate keys, values of the wrong type
// and files holding more than one YAML document, so that a typo never silently becomes a default.
package config
