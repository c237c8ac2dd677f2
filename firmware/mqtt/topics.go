package mqtt

import "strings"

// Topics builds every topic name of DESIGN.md ("MQTT"), so that no other code joins them.
type Topics struct {
	base  string // <prefix>/<site>/<device_id>
	group string // <prefix>/<site>/group/<group>, empty without a group
}

// NewTopics returns the topics of one device. prefix, site, deviceID and group are checked by
// the configuration (one topic level each, no wildcards); group may be empty.
func NewTopics(prefix, site, deviceID, group string) Topics {
	t := Topics{base: strings.Join([]string{prefix, site, deviceID}, "/")}
	if group != "" {
		t.group = strings.Join([]string{prefix, site, "group", group}, "/")
	}
	return t
}

// Status is retained: "online" while connected, "offline" as the last will.
func (t Topics) Status() string { return t.base + "/status" }

// Health carries periodic health telemetry (QoS 0, never queued).
func (t Topics) Health() string { return t.base + "/health" }

// Events carries job and OTA lifecycle events.
func (t Topics) Events() string { return t.base + "/events" }

// Contours carries one job's contours. A job id, never a DICOM UID, names the topic.
func (t Topics) Contours(jobID string) string { return t.base + "/contours/" + jobID }

// OTAState is retained: the device's model slots and update phase.
func (t Topics) OTAState() string { return t.base + "/ota/state" }

// OTACommands are the topics the device subscribes to for OTA commands: its own and, when it
// has a group, the group's.
func (t Topics) OTACommands() []string {
	c := []string{t.base + "/ota/cmd"}
	if t.group != "" {
		c = append(c, t.group+"/ota/cmd")
	}
	return c
}
