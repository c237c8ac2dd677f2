package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/ota"
)

// candidate is the shipped T2 bundle as version 2.1.0 with a higher threshold: the same
// weights (its self-test passes) and a different mask, so that the comparison has something to
// show.
func candidate(t *testing.T) string {
	t.Helper()
	dir := newVersion(t, "2.1.0")
	p := filepath.Join(dir, "model.json")
	b, _ := os.ReadFile(p)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["threshold"] = 0.7
	b, _ = json.Marshal(m)
	os.WriteFile(p, b, 0o644)
	return dir
}

// pushCmd publishes an update command for the group ward-a, as IT's push would.
func pushCmd(t *testing.T, r *rig, target string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID("it-push"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	b, _ := json.Marshal(OTACommand{Schema: OTACommandSchema, Target: target, Now: true})
	c.Publish("midline/v1/test-site/group/ward-a/ota/cmd", 1, false, b).WaitTimeout(10 * time.Second)
}

// TestShadowComparedNeverSent: with site approval required, a verified candidate runs in
// shadow: a T2 study is contoured and delivered by the committed model, the candidate's result
// is compared (Dice, volumes) in the job, on the status page and in /api/ota, and nothing of it
// reaches the planning system or MQTT. An approval signed by a key that is not the box's site
// key changes nothing; the site key's approval (here by a site-key rotation, which re-signs it)
// puts the candidate on trial.
func TestShadowComparedNeverSent(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := ota.Init(repoDir, filepath.Join(repoDir, "offline"), ota.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name, err := repo.Publish(candidate(t), []string{"ward-a"})
	if err != nil {
		t.Fatal(err)
	}
	sitePriv, sitePub, err := ota.GenerateSiteKey(filepath.Join(t.TempDir(), "site"))
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, _, _ := ota.GenerateSiteKey(filepath.Join(t.TempDir(), "other"))
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.Served())))
	defer srv.Close()
	r := newRig(t, func(c *config.Config) {
		c.Models.Dir, c.Models.SeedDir = filepath.Join(c.StateDir, "models"), testenv.Models(t, testenv.TestModels...)
		c.Group = "ward-a"
		c.OTA.RepoURL, c.OTA.TrustedRoot = srv.URL, filepath.Join(repo.Served(), "1.root.json")
		c.OTA.RequireSiteApproval, c.OTA.SiteKey, c.OTA.TrialJobs = true, sitePub, 1
	})
	pushCmd(t, r, name)
	waitFor(t, "the candidate in shadow", func() bool { return subHas(r, `"phase":"shadow"`) })
	if m := r.d.modelList(); m[1].Sequence != "T2" || m[1].Version != shippedT2 {
		t.Fatalf("the shadow changed the running model: %+v", m)
	}
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2")); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	var j Job
	waitFor(t, "the shadow comparison", func() bool {
		for _, x := range r.d.jobs.list() {
			if x.Shadow != nil {
				j = x
				return true
			}
		}
		return false
	})
	c := j.Shadow
	t.Logf("job %s: %s %.2f cm3, %s %.2f cm3, Dice %.3f, %.0f ms", j.ID, c.Current, c.CurrentCM3, c.Candidate, c.CandidateCM3, c.Dice, c.MS)
	if j.State != JobDone || j.Model != "dmg-t2 "+shippedT2 || c.Candidate != "dmg-t2 2.1.0" || c.Error != "" ||
		c.CurrentCM3 <= c.CandidateCM3 || c.CandidateCM3 <= 0 || c.Dice <= 0.5 || c.Dice >= 1 {
		t.Fatalf("job %+v, comparison %+v", j, c)
	}
	if v := j.VolumesCM3["GTV_T2_AI"]; v < c.CurrentCM3-0.01 || v > c.CurrentCM3+0.01 {
		t.Fatalf("the job's volume %v is not the comparison's current %v", j.VolumesCM3, c.CurrentCM3)
	}

	// Nothing of the candidate left the box: one structure set and one contour message, both
	// the committed model's.
	waitFor(t, "the delivery", func() bool { return subHas(r, `"type":"delivered"`) })
	rs := r.scp.Received("RS.")
	if len(rs) != 1 {
		t.Fatalf("structure sets at the planning system: %v", rs)
	}
	b, _ := os.ReadFile(filepath.Join(r.scp.Dir, rs[0]))
	if !strings.Contains(string(b), "dmg-t2 "+shippedT2) || strings.Contains(string(b), "2.1.0") {
		t.Fatal("the structure set is not the committed model's alone")
	}
	contours := 0
	for _, l := range r.sub.Lines() {
		if strings.Contains(l, "/contours/") {
			contours++
			if strings.Contains(l, `"version":"2.1.0"`) {
				t.Fatal("a contour message of the candidate was published")
			}
		}
		if strings.Contains(l, `"candidate_cm3"`) {
			t.Fatal("the comparison was published")
		}
	}
	if contours != 1 {
		t.Fatalf("%d contour messages", contours)
	}

	// The status page and /api/ota show the comparison.
	page := get(t, r.httpURL+"/")
	for _, want := range []string{"Shadow: T2 candidate dmg-t2 2.1.0", j.ID, "0." /* the Dice */, "<code>midline ota approve"} {
		if !strings.Contains(page, want) {
			t.Fatalf("the status page lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Fatal("the status page has a script")
	}
	var view OTAView
	if err := json.Unmarshal([]byte(get(t, r.httpURL+"/api/ota")), &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Shadows) != 1 || view.Shadows[0].Studies != 1 || view.Shadows[0].Comparisons[0].Job != j.ID ||
		view.Shadows[0].MeanDice != c.Dice {
		t.Fatalf("/api/ota %+v", view)
	}

	// An approval signed with another key does not count; the site key's does.
	if err := repo.Approve(otherPriv, "test-site", name); err != nil {
		t.Fatal(err)
	}
	pushCmd(t, r, name)
	waitFor(t, "the refusal", func() bool { return subHas(r, "already in shadow, waiting for site approval") })
	if m := r.d.modelList(); m[1].Version != shippedT2 {
		t.Fatalf("switched on a foreign approval: %+v", m)
	}
	// The foreign approval delegated the site's role to its key: the site takes it back with a
	// rotation to its own key, which re-signs the approval.
	if _, err := repo.RotateSiteKey(sitePriv, "test-site"); err != nil {
		t.Fatal(err)
	}
	pushCmd(t, r, name)
	waitFor(t, "T2 2.1.0 on trial", func() bool {
		m := r.d.modelList()
		return m[1].Version == "2.1.0" && m[1].Slot == "b"
	})
	if st := r.d.ota.mgr.Snapshot().Sequences["T2"]; st.Shadow != nil || st.Trial == nil {
		t.Fatalf("after approval: %+v", st)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
