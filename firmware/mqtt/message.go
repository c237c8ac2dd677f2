package mqtt

import "strings"

// MessageID builds the dedupe key payload builders put in message_id (docs/contracts.md,
// "MQTT delivery"): the device, then what the message is about, joined by ':'. The same
// message built again after a restart (a job re-run, a re-send) gets the same id, so a
// consumer drops the duplicate; a superseding result names its new generation.
//
//	MessageID("box-1", "job", "42", "contours", "1") == "box-1:job:42:contours:1"
func MessageID(deviceID string, parts ...string) string {
	return strings.Join(append([]string{deviceID}, parts...), ":")
}
