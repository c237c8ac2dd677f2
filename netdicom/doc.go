// Package netdicom speaks DICOM over the network: the Upper Layer (PS3.8) and DIMSE (PS3.7)
// for C-ECHO and C-STORE as provider and user, a durable spool of received instances, and the
// assembly of instances into series.
//
// Not implemented yet (issue 4); no code here pretends otherwise.
package netdicom
