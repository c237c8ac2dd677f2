package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/midline-rt/midline/firmware/daemon"
	"github.com/midline-rt/midline/firmware/mqtt"
	"github.com/midline-rt/midline/ota"
)

// runOTA is `midline ota ...`: hospital IT's side of model updates (ota/README.md).
func runOTA(args []string, stdout, stderr io.Writer) int {
	subs := map[string]func([]string, io.Writer, io.Writer) int{
		"init": otaInit, "publish": otaPublish, "recall": otaRecall, "serve": otaServe, "push": otaPush,
		"status": otaStatus, "rotate": otaRotate, "timestamp": otaTimestamp, "approve": otaApprove, "site-key": otaSiteKey,
		"downgrade": otaDowngrade, "revoke": otaRevoke, "site-rotate": otaSiteRotate,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintln(stderr, "usage: midline ota init|publish|recall|downgrade|rotate|timestamp|serve|push|status|site-key|approve|revoke|site-rotate [flags]")
		return 2
	}
	return subs[args[0]](args[1:], stdout, stderr)
}

func otaFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ota "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func otaFail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "midline ota:", err)
	return 1
}

func otaInit(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("init", stderr)
	repo := fs.String("repo", "", "repository folder to create")
	rootKeys := fs.String("root-keys", "", "folder for the offline root key (default REPO/offline-root; move it offline)")
	if fs.Parse(args) != nil || *repo == "" {
		return 2
	}
	if *rootKeys == "" {
		*rootKeys = filepath.Join(*repo, "offline-root")
	}
	r, err := ota.Init(*repo, *rootKeys, ota.RepoOptions{})
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "repository %s\n  serve:        %s\n  trusted root: %s (install on every box as ota.trusted_root)\n  root key:     %s (move it offline now)\n",
		*repo, r.Served(), filepath.Join(r.Served(), "1.root.json"), filepath.Join(*rootKeys, "root.pem"))
	return 0
}

type groupList []string

func (g *groupList) String() string     { return strings.Join(*g, ",") }
func (g *groupList) Set(v string) error { *g = append(*g, v); return nil }

func otaPublish(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("publish", stderr)
	repo := fs.String("repo", "", "repository folder")
	var groups groupList
	fs.Var(&groups, "group", "device group the target is released to (repeat; default * = every group)")
	if fs.Parse(args) != nil || *repo == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: midline ota publish --repo DIR [--group G]... BUNDLE_DIR_OR_TAR")
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err != nil {
		return otaFail(stderr, err)
	}
	name, err := r.Publish(fs.Arg(0), groups)
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "published %s\n", name)
	return 0
}

func otaRecall(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("recall", stderr)
	repo := fs.String("repo", "", "repository folder")
	target := fs.String("target", "", "target to withdraw")
	if fs.Parse(args) != nil || *repo == "" || *target == "" {
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err == nil {
		err = r.Recall(*target)
	}
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "withdrawn %s; boxes running it return to their previous committed model at their next check\n", *target)
	return 0
}

func otaRotate(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("rotate", stderr)
	repo := fs.String("repo", "", "repository folder")
	rootKeys := fs.String("root-keys", "", "folder holding the offline root key")
	role := fs.String("role", "", "targets, snapshot or timestamp")
	if fs.Parse(args) != nil || *repo == "" || *rootKeys == "" || *role == "" {
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err == nil {
		err = r.RotateKey(*rootKeys, *role)
	}
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "rotated the %s key; new root published\n", *role)
	return 0
}

func otaTimestamp(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("timestamp", stderr)
	repo := fs.String("repo", "", "repository folder")
	if fs.Parse(args) != nil || *repo == "" {
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err == nil {
		err = r.RefreshTimestamp()
	}
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintln(stdout, "timestamp re-signed")
	return 0
}

// otaServe serves the repository's public folder; Range requests work (downloads resume).
func otaServe(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("serve", stderr)
	repo := fs.String("repo", "", "repository folder")
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	if fs.Parse(args) != nil || *repo == "" {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: http.FileServer(http.Dir(filepath.Join(*repo, "repository"))),
		ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "serving %s on http://%s/\n", *repo, *listen)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		return otaFail(stderr, err)
	}
	return 0
}

func brokerClient(broker, id string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true).SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", broker, tok.Error())
	}
	return c, nil
}

// otaPush publishes an update command (QoS 1, not retained) to one device or a group.
func otaPush(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("push", stderr)
	broker := fs.String("broker", "", "MQTT broker URL")
	site := fs.String("site", "", "site")
	device := fs.String("device", "", "device id")
	group := fs.String("group", "", "device group")
	target := fs.String("target", "", "TUF target name, e.g. dmg-t2-1.1.0.tar")
	prefix := fs.String("topic-prefix", "midline/v1", "topic prefix")
	now := fs.Bool("now", false, "start outside the boxes' ota.window")
	if fs.Parse(args) != nil || *broker == "" || *site == "" || *target == "" || (*device == "") == (*group == "") {
		fmt.Fprintln(stderr, "usage: midline ota push --broker URL --site S (--device ID | --group G) --target NAME [--now]")
		return 2
	}
	topic := mqtt.NewTopics(*prefix, *site, *device, "").OTACommands()[0]
	if *group != "" {
		topic = *prefix + "/" + *site + "/group/" + *group + "/ota/cmd"
	}
	payload, _ := json.Marshal(daemon.OTACommand{Schema: daemon.OTACommandSchema, Action: "update", Target: *target, Now: *now})
	c, err := brokerClient(*broker, fmt.Sprintf("midline-ota-push-%d", os.Getpid()))
	if err != nil {
		return otaFail(stderr, err)
	}
	defer c.Disconnect(250)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return otaFail(stderr, fmt.Errorf("publish: %v", tok.Error()))
	}
	fmt.Fprintf(stdout, "pushed %s to %s\n", *target, topic)
	return 0
}

// otaStatus collects the retained ota/state of every device of a site.
func otaStatus(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("status", stderr)
	broker := fs.String("broker", "", "MQTT broker URL")
	site := fs.String("site", "", "site")
	prefix := fs.String("topic-prefix", "midline/v1", "topic prefix")
	wait := fs.Duration("wait", 2*time.Second, "how long to collect retained states")
	asJSON := fs.Bool("json", false, "print the states as JSON lines")
	if fs.Parse(args) != nil || *broker == "" || *site == "" {
		return 2
	}
	c, err := brokerClient(*broker, fmt.Sprintf("midline-ota-status-%d", os.Getpid()))
	if err != nil {
		return otaFail(stderr, err)
	}
	defer c.Disconnect(250)
	var mu sync.Mutex
	states := map[string]daemon.OTAState{}
	tok := c.Subscribe(*prefix+"/"+*site+"/+/ota/state", 1, func(_ paho.Client, m paho.Message) {
		var s daemon.OTAState
		if json.Unmarshal(m.Payload(), &s) == nil {
			mu.Lock()
			states[s.DeviceID] = s
			mu.Unlock()
		}
	})
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return otaFail(stderr, fmt.Errorf("subscribe: %v", tok.Error()))
	}
	time.Sleep(*wait)
	mu.Lock()
	defer mu.Unlock()
	ids := make([]string, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := states[id]
		if *asJSON {
			b, _ := json.Marshal(s)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		var models []string
		for seq, st := range s.Slots {
			m := fmt.Sprintf("%s %s %s (slot %s)", seq, st.Committed.Name, st.Committed.Version, st.Committed.Slot)
			if st.Trial != nil {
				m += fmt.Sprintf(", trial %s (slot %s)", st.Trial.Version, st.Trial.Slot)
			}
			models = append(models, m)
		}
		sort.Strings(models)
		fmt.Fprintf(stdout, "%s  %s %s %s  %s  [%s]\n", id, s.Phase, s.Name, s.Version, s.Error, strings.Join(models, "; "))
	}
	fmt.Fprintf(stdout, "%d device(s)\n", len(ids))
	return 0
}

// otaSiteKey makes a site's approval key pair (ota/README.md, "Site approval").
func otaSiteKey(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("site-key", stderr)
	out := fs.String("out", "", "folder for site.pem (private: keep it with the physicist, offline) and site.pub.pem")
	if fs.Parse(args) != nil || *out == "" {
		fmt.Fprintln(stderr, "usage: midline ota site-key --out DIR")
		return 2
	}
	priv, pub, err := ota.GenerateSiteKey(*out)
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "site key %s (keep it offline)\npublic key %s (install on every box of the site as ota.site_key)\n", priv, pub)
	return 0
}

// otaApprove signs the site's approval of a target with the site key (a TUF delegated role
// that only the site key signs) and re-signs the repository's snapshot and timestamp.
func otaApprove(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("approve", stderr)
	repo := fs.String("repo", "", "repository folder")
	key := fs.String("key", "", "the site's private key (site.pem from midline ota site-key)")
	site := fs.String("site", "", "site (the boxes' site)")
	target := fs.String("target", "", "target to approve for clinical use, e.g. dmg-t2-1.1.0.tar")
	if fs.Parse(args) != nil || *repo == "" || *key == "" || *site == "" || *target == "" {
		fmt.Fprintln(stderr, "usage: midline ota approve --repo DIR --key SITE.pem --site S --target NAME")
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err == nil {
		err = r.Approve(*key, *site, *target)
	}
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "approved %s for site %s; its boxes switch to it on trial at their next check or push\n", *target, *site)
	return 0
}

// otaDowngrade signs a downgrade authorisation: the target (older weights) may replace `from`
// on boxes whose highest committed version is `from`; the versions in between are withdrawn.
func otaDowngrade(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("downgrade", stderr)
	repo := fs.String("repo", "", "repository folder")
	target := fs.String("target", "", "the listed target to go back to, e.g. dmg-t2-1.0.0.tar")
	from := fs.String("from", "", "the version boxes go back from, e.g. 1.1.0 (their highest committed)")
	if fs.Parse(args) != nil || *repo == "" || *target == "" || *from == "" {
		fmt.Fprintln(stderr, "usage: midline ota downgrade --repo DIR --target NAME --from VERSION")
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err != nil {
		return otaFail(stderr, err)
	}
	withdrawn, err := r.AuthoriseDowngrade(*target, *from)
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "authorised %s to replace version %s; withdrawn: %s\n", *target, *from, orNoneList(withdrawn))
	fmt.Fprintln(stdout, "with site approval on, the site signs its half with `midline ota approve` of the same target; then push it")
	return 0
}

// otaRevoke withdraws a site's approval of a target, signed with the site key.
func otaRevoke(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("revoke", stderr)
	repo := fs.String("repo", "", "repository folder")
	key := fs.String("key", "", "the site's private key (site.pem)")
	site := fs.String("site", "", "site")
	target := fs.String("target", "", "target whose approval is revoked")
	if fs.Parse(args) != nil || *repo == "" || *key == "" || *site == "" || *target == "" {
		fmt.Fprintln(stderr, "usage: midline ota revoke --repo DIR --key SITE.pem --site S --target NAME")
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err == nil {
		err = r.Revoke(*key, *site, *target)
	}
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "revoked the approval of %s for site %s; a model already running it stays until recalled\n", *target, *site)
	return 0
}

// otaSiteRotate delegates a site's approvals to a new site key and re-signs the current ones.
func otaSiteRotate(args []string, stdout, stderr io.Writer) int {
	fs := otaFlags("site-rotate", stderr)
	repo := fs.String("repo", "", "repository folder")
	key := fs.String("key", "", "the site's NEW private key (site.pem from midline ota site-key)")
	site := fs.String("site", "", "site")
	if fs.Parse(args) != nil || *repo == "" || *key == "" || *site == "" {
		fmt.Fprintln(stderr, "usage: midline ota site-rotate --repo DIR --key NEW-SITE.pem --site S")
		return 2
	}
	r, err := ota.OpenRepo(*repo, ota.RepoOptions{})
	if err != nil {
		return otaFail(stderr, err)
	}
	kept, err := r.RotateSiteKey(*key, *site)
	if err != nil {
		return otaFail(stderr, err)
	}
	fmt.Fprintf(stdout, "site %s now approves with %s; approvals re-signed: %s\n", *site, *key, orNoneList(kept))
	fmt.Fprintln(stdout, "install the new site.pub.pem on every box of the site as ota.site_key and restart them")
	return 0
}

func orNoneList(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
