package netdicom_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/midline-rt/midline/netdicom"
)

// A receiver that reports each ready series and marks it processed once handled.
func ExampleServer() {
	var s *netdicom.Server
	s, err := netdicom.NewServer(netdicom.Options{
		AETitle:          "MIDLINE",
		Listen:           ":11112",
		StateDir:         "/var/lib/midline",
		SeriesTimeout:    10 * time.Second,
		DiskLowWatermark: 1 << 30,
		AllowedCallers:   []netdicom.Caller{{AETitle: "MRSCANNER", CIDR: "10.1.2.0/24"}},
		OnSeries: func(ev netdicom.SeriesEvent) {
			if ev.Kind != netdicom.SeriesReady {
				return
			}
			fmt.Println("process", ev.SeriesUID, len(ev.Paths), "instances, generation", ev.Generation)
			if err := s.MarkProcessed(ev); err != nil {
				log.Print(err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := s.ListenAndServe(ctx); err != nil {
		log.Fatal(err)
	}
}

// Sending files as they are, over one association.
func ExampleSendFiles() {
	res, err := netdicom.SendFiles(context.Background(), "tps.example:104",
		netdicom.ClientOptions{CallingAE: "MIDLINE", CalledAE: "TPS"}, []string{"rtstruct.dcm"})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.Path, r.Status, r.Err)
	}
}
