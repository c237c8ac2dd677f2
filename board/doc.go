// Package board watches the box's own hardware and drives its signals through periph.io:
// temperatures (SoC thermal zones, the accelerator, an optional I²C sensor), the fan on a curve
// with hysteresis, a status LED, the thermal pause of accelerator jobs and, where no systemd owns
// it, the hardware watchdog.
//
// A Board is built from a profile (sim, generic-linux, coral-devboard, jetson-orin-nano); a part
// the profile names but the box lacks is reported once in Readings, never as an error storm.
package board
