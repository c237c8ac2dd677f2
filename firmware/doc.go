// Command midline is the Midline appliance firmware: one binary holding the daemon and the
// command-line tools a hospital's IT and facilities engineers use on the box.
//
// Today it has one subcommand, version, which reports the firmware, Go and TFLite runtime
// versions and which inference engines can run here.
package main
