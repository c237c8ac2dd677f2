package pipeline

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/synthmr"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/netdicom"
)

// TestDeliveryToPlanningSystems sends the seed 4 T2 result through the DICOM outbox to three
// destinations: dcmtk's storescp forwarding images (the MR instances must arrive before the
// structure set), a destination that is down for the whole test (retries, then dead-lettered,
// while the others proceed), and a clinical destination (refused: the shipped models are not
// for clinical use). A re-render of the same result repeats its SOP Instance UID.
func TestDeliveryToPlanningSystems(t *testing.T) {
	m := shippedModel(t, "T2", 1)
	paths := seriesPaths(t, filepath.Join(testenv.Root(), "testdata", "phantom", "seed4", "T2"))
	res, err := Run(context.Background(), m, paths, Settings{DeviceID: "test", FirmwareVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	scp := peers.StartStorescp(t, "PLANNING", 0)
	recv, up, down := scp.Dir, scp.Port, peers.FreePort(t)
	dests := []config.Destination{
		{Name: "planning", AETitle: "PLANNING", Host: "127.0.0.1", Port: up, ForwardImages: true},
		{Name: "down", AETitle: "NOBODY", Host: "127.0.0.1", Port: down},
		{Name: "clinical", AETitle: "CLINIC", Host: "127.0.0.1", Port: up, Clinical: true},
		{Name: "keyhole", AETitle: "PLANNING", Host: "127.0.0.1", Port: up, Profile: contour.Profile{HoleMode: contour.HolesKeyhole, Charset: contour.CharsetUTF8}},
	}
	var mu sync.Mutex
	finished := map[string]netdicom.Job{}
	var sequence []string
	ob, err := netdicom.OpenOutbox(netdicom.OutboxOptions{Dir: t.TempDir(), Destinations: OutboxDestinations(dests), CallingAE: "MIDLINE",
		MaxAttempts: 3, BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
		Finished: func(j netdicom.Job) {
			mu.Lock()
			finished[j.Destination] = j
			sequence = append(sequence, j.Destination)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ds, err := res.Deliver(ob, dests, out, paths, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The contour message is the first receiving destination's rendering: its RT Structure Set's
	// UID is the one "planning" received; without "planning" and "down", the clinical one is
	// skipped and "keyhole" is the first.
	msg, err := res.Render(res.MessageProfile(dests), 1)
	if err != nil || msg.Structure.UIDs.SOPInstanceUID != ds[0].SOPUID {
		t.Errorf("message UID %v (%v), planning got %s", msg.Structure.UIDs.SOPInstanceUID, err, ds[0].SOPUID)
	}
	if pr := res.MessageProfile(dests[2:]); pr.HoleMode != contour.HolesKeyhole {
		t.Errorf("message profile %+v, want keyhole's", pr)
	}
	byDest := map[string]Delivery{}
	for _, d := range ds {
		byDest[d.Destination] = d
		t.Logf("%s: job %v, skipped %q", d.Destination, d.Job != nil, d.Skipped)
	}
	if c := byDest["clinical"]; c.Job != nil || !strings.Contains(c.Skipped, "not for clinical use") {
		t.Fatalf("clinical destination: %+v", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go ob.Run(ctx)
	for {
		mu.Lock()
		n := len(finished)
		mu.Unlock()
		if n == 3 || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if j := finished["planning"]; j.State != netdicom.JobDone {
		t.Fatalf("planning: %+v", j)
	}
	if j := finished["keyhole"]; j.State != netdicom.JobDone {
		t.Fatalf("keyhole: %+v", j)
	}
	if j := finished["down"]; j.State != netdicom.JobDead || j.Attempts != 3 {
		t.Fatalf("down: %+v, want dead-lettered after 3 attempts", j)
	}
	if slices.Index(sequence, "keyhole") > slices.Index(sequence, "down") {
		t.Fatalf("finished in the order %v: the job queued after the down destination's waited for it", sequence)
	}
	// storescp writes each instance as it arrives: the files' modification times give the order
	// of arrival (its --exec-on-reception hook runs in the background and cannot).
	entries, err := os.ReadDir(recv)
	if err != nil {
		t.Fatal(err)
	}
	type arrival struct {
		name string
		at   time.Time
	}
	var got []arrival
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, arrival{e.Name(), info.ModTime()})
	}
	slices.SortFunc(got, func(a, b arrival) int { return a.at.Compare(b.at) })
	var lines []string
	for _, a := range got {
		lines = append(lines, a.name)
	}
	// planning: 14 MR instances, then its RTSTRUCT; keyhole: its own RTSTRUCT.
	rts, mrs, firstRT := 0, 0, -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "RS."):
			rts++
			if firstRT < 0 {
				firstRT = i
			}
		case strings.HasPrefix(l, "MR."):
			mrs++
		}
	}
	if mrs != len(paths) || rts != 2 || firstRT < len(paths) {
		t.Fatalf("storescp received %v: want %d MR instances, then the structure sets", lines, len(paths))
	}
	for _, name := range []string{"planning", "keyhole"} {
		uid := byDest[name].SOPUID
		if _, err := os.Stat(filepath.Join(recv, "RS."+uid)); err != nil {
			entries, _ := os.ReadDir(recv)
			t.Fatalf("%s: RTSTRUCT %s not at storescp (%v): %v", name, uid, err, entries)
		}
	}
	if byDest["planning"].SOPUID == byDest["keyhole"].SOPUID {
		t.Fatal("two profiles, one UID: the profile is part of the UID's inputs")
	}
	again, err := res.Render(dests[0].Profile, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Structure.UIDs.SOPInstanceUID != byDest["planning"].SOPUID {
		t.Fatal("rendering the same result again gave a new SOP Instance UID")
	}
	next, err := res.Render(dests[0].Profile, 2)
	if err != nil {
		t.Fatal(err)
	}
	if next.Structure.UIDs.SOPInstanceUID == byDest["planning"].SOPUID || next.Structure.Label() != "AI_DRAFT v2" {
		t.Fatalf("a superseding result: UID %s, label %q", next.Structure.UIDs.SOPInstanceUID, next.Structure.Label())
	}
}

// TestEmptyResult: a series without a lesion sends no structure set by default (the delivery
// says why), and one with an empty ROI to a destination whose profile asks for it.
func TestEmptyResult(t *testing.T) {
	m := shippedModel(t, "T2", 1)
	dir := t.TempDir()
	// A smooth synthetic head-sized blob without any lesion, labelled T2 by its headers.
	paths, err := synthmr.Write(dir, synthmr.Spec{Rows: 96, Cols: 96, Slices: 4, Spacing: [2]float64{2, 2},
		IOP: [6]float64{1, 0, 0, 0, 1, 0}, Origin: [3]float64{-96, -96, -10}, Step: 5,
		Value: func(k, r, c int) uint16 {
			d := math.Hypot(float64(r)-48, float64(c)-48)
			if d > 40 {
				return 0
			}
			return uint16(400 + 2*int(d))
		}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), m, paths, Settings{DeviceID: "test", FirmwareVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Empty() {
		t.Fatalf("the model found %d voxels in a lesion-free blob", res.Segmentation.GTV.Count())
	}
	scp := peers.StartStorescp(t, "PLANNING", 0)
	dests := []config.Destination{
		{Name: "quiet", AETitle: "PLANNING", Host: "127.0.0.1", Port: scp.Port},
		{Name: "wants-empty", AETitle: "PLANNING", Host: "127.0.0.1", Port: scp.Port, Profile: contour.Profile{SendEmpty: true}},
	}
	ob, err := netdicom.OpenOutbox(netdicom.OutboxOptions{Dir: t.TempDir(), Destinations: OutboxDestinations(dests), CallingAE: "MIDLINE"})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := res.Deliver(ob, dests, t.TempDir(), paths, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Job != nil || !strings.Contains(ds[0].Skipped, "no lesion found") {
		t.Fatalf("quiet destination: %+v", ds[0])
	}
	if ds[1].Job == nil {
		t.Fatalf("wants-empty destination: %+v", ds[1])
	}
	if out, _ := exec.Command(testenv.Require(t, "dciodvfy"), ds[1].RTStruct).CombinedOutput(); strings.Contains(string(out), "Error") {
		t.Fatalf("dciodvfy on the empty structure set:\n%s", out)
	}
}

// TestOutboxDestinationsCarryTLS: a destination's TLS switch and files reach the outbox, which
// dials with them (netdicom's TestOutboxTLSToStorescp).
func TestOutboxDestinationsCarryTLS(t *testing.T) {
	got := OutboxDestinations([]config.Destination{{Name: "tps", AETitle: "TPS", Host: "tps.example", Port: 2762, TLS: true,
		CA: "/etc/midline/tps-ca.pem", ClientCert: "/etc/midline/box.pem", ClientKey: "/etc/midline/box.key"}})
	want := netdicom.Destination{Name: "tps", AETitle: "TPS", Host: "tps.example", Port: 2762, TLS: true,
		CA: "/etc/midline/tps-ca.pem", ClientCert: "/etc/midline/box.pem", ClientKey: "/etc/midline/box.key"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("OutboxDestinations = %+v, want %+v", got, want)
	}
}
