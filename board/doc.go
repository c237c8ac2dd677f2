// Package board reaches the box's hardware through periph.io: temperature sensors, fan, LEDs and
// watchdog, with a profile per board and a simulated board for development and tests.
//
// Not implemented yet (issue 9); no code here pretends otherwise.
package board
