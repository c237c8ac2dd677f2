package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/midline-rt/midline/firmware/config"
)

// runConfig is `midline config check FILE`: it decodes and validates a configuration exactly
// as the daemon will at start, so that IT can check a file before installing it.
func runConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: midline config check FILE")
		return 2
	}
	path := args[1]
	c, err := config.Load(path)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "midline config:", line)
		}
		return 2
	}
	fmt.Fprintf(stdout, "ok: %s\n", path)
	printConfigSummary(stdout, c)
	return 0
}

func printConfigSummary(w io.Writer, c config.Config) {
	fmt.Fprintf(w, "  device     %s (site %s, group %s)\n", c.DeviceID, c.Site, orNone(c.Group))
	fmt.Fprintf(w, "  state_dir  %s\n", c.StateDir)
	fmt.Fprintf(w, "  dicom      %s on %s", c.DICOM.AETitle, c.DICOM.Listen)
	if c.DICOM.TLS.Enabled() {
		fmt.Fprintf(w, ", TLS on %s", c.DICOM.TLS.Listen)
	}
	fmt.Fprintf(w, "; %d selection rule(s)\n", len(c.Selection))
	fmt.Fprintf(w, "  engine     %s, models from %s\n", c.Engine.Kind, c.Models.Dir)
	for _, d := range c.Destinations {
		kind := "not clinical"
		if d.Clinical {
			kind = "clinical"
		}
		fmt.Fprintf(w, "  dest       %s: %s@%s:%d (%s)\n", d.Name, d.AETitle, d.Host, d.Port, kind)
	}
	mqtt := "off"
	if c.MQTT.Enabled() {
		mqtt = fmt.Sprintf("%s, topics under %s/%s/%s/, health every %s", c.MQTT.Broker, c.MQTT.TopicPrefix, c.Site, c.DeviceID, c.MQTT.HealthInterval)
	}
	fmt.Fprintf(w, "  mqtt       %s\n", mqtt)
	fmt.Fprintf(w, "  http       %s\n", orNone(c.HTTP.Listen))
	fmt.Fprintf(w, "  board      %s\n", c.Board.Profile)
	ota := "off"
	if c.OTA.Enabled() {
		ota = fmt.Sprintf("%s every %s, window %s", c.OTA.RepoURL, c.OTA.CheckInterval, orNone(c.OTA.Window))
	}
	fmt.Fprintf(w, "  ota        %s\n", ota)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
