// Package netdicom speaks DICOM over the network: the Upper Layer (PS3.8) and DIMSE (PS3.7)
// for C-ECHO and C-STORE as provider and user, a durable spool of received instances, the
// assembly of instances into series, and a durable outbox for sending.
//
// Receiving: a Server accepts associations by the policy in Options (called AE title, allowed
// callers, association limit), negotiates presentation contexts from the tables in tables.go,
// and streams each data set, as received, into a Part 10 file in the spool. C-STORE Success is
// sent only after the file is fsynced, renamed into its series folder and the folder fsynced.
// An Assembler turns stored instances into SeriesEvents (quiet period, count and release hints,
// the late-instance rule); a restart rebuilds it from the spool and the processed marks.
//
// Sending: Dial, Association.Store and SendFiles send data sets as they are in their files;
// an Outbox persists send jobs and retries them with jittered backoff until they succeed or are
// dead-lettered.
//
// Data sets are never decoded on the receive path: ReadHead reads the few identifying
// attributes from the stream. DecodeRLEFrame decodes RLE Lossless frames for the image
// pipeline. CONFORMANCE.md is generated from the same tables (WriteConformance).
package netdicom
