package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/testenv"
)

// The status page in a real browser: Debian's chromium, headless. The screenshot comes from
// chromium's own --screenshot; console messages, failed loads (a preview that does not load,
// a CSP violation) and the DOM come through the DevTools protocol over --remote-debugging-pipe
// (NUL-separated JSON on fds 3 and 4), because --enable-logging prints every console message
// at INFO and no failed load at all.

const shotW, shotH = 1280, 2000

// TestStatusPageInChromium renders the page of a daemon that has run the phantom study: the
// screenshot is a PNG of the window's size with content, the DOM lists every job and its
// previews, and the browser reports no console message, no failed load and no exception.
func TestStatusPageInChromium(t *testing.T) {
	chromium := testenv.Require(t, "chromium")
	r := newRig(t, nil)
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, seed4()); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	jobs := r.waitJobs(3)

	shot := filepath.Join(t.TempDir(), "status.png")
	if keep := os.Getenv("MIDLINE_PAGE_SCREENSHOT"); keep != "" { // to look at it
		shot = keep
	}
	out, err := chromiumCmd(t, chromium, "--enable-logging=stderr", "--v=0", "--screenshot="+shot,
		fmt.Sprintf("--window-size=%d,%d", shotW, shotH), r.httpURL+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if lines := consoleLines(string(out)); len(lines) > 0 {
		t.Errorf("chromium printed console messages:\n%s", strings.Join(lines, "\n"))
	}
	checkScreenshot(t, shot)

	res := inspectPage(t, chromium, r.httpURL+"/")
	for _, p := range res.problems {
		t.Errorf("browser: %s", p)
	}
	previews := 0
	for _, j := range jobs {
		if !strings.Contains(res.dom, j.ID) {
			t.Errorf("the page's DOM lacks job %s", j.ID)
		}
		if j.Preview != "" {
			previews++
			if !strings.Contains(res.dom, `src="/jobs/`+j.ID+`/preview.png"`) {
				t.Errorf("the page's DOM lacks the preview of job %s", j.ID)
			}
		}
	}
	if previews < 2 || res.images < previews {
		t.Errorf("%d previews among the jobs, %d images loaded with a size in the browser", previews, res.images)
	}
}

// TestPageInspectorSeesProblems: the checks above can fail. A page with a console error, an
// image that does not load and a script blocked by its CSP yields a problem for each.
func TestPageInspectorSeesProblems(t *testing.T) {
	chromium := testenv.Require(t, "chromium")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'none'")
		fmt.Fprint(w, `<!doctype html><html><head><title>bad</title></head><body><p>bad page</p>
<img src="/missing.png"><script>console.error("boom")</script></body></html>`)
	}))
	defer srv.Close()
	res := inspectPage(t, chromium, srv.URL+"/")
	all := strings.Join(res.problems, "\n")
	t.Logf("problems seen:\n%s", all)
	for _, want := range []string{"missing.png", "Content Security Policy"} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem mentions %q; problems:\n%s", want, all)
		}
	}
	if !strings.Contains(res.dom, "bad page") {
		t.Errorf("DOM: %.200s", res.dom)
	}
}

// TestStatusPageToken: with http.token set, every page and API answer needs the bearer token
// (the previews are patient images); /healthz stays open for probes.
func TestStatusPageToken(t *testing.T) {
	const token = "page-test-token-0123456789"
	r := newRig(t, func(c *config.Config) { c.HTTP.Token = token })
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/", "", http.StatusUnauthorized},
		{"/", "Bearer wrong-token-0123456789", http.StatusUnauthorized},
		{"/", "Basic " + token, http.StatusUnauthorized},
		{"/", "Bearer " + token, http.StatusOK},
		{"/api/health", "", http.StatusUnauthorized},
		{"/api/health", "Bearer " + token, http.StatusOK},
		{"/api/jobs", "", http.StatusUnauthorized},
		{"/metrics", "", http.StatusUnauthorized},
		{"/jobs/j000000000000/preview.png", "", http.StatusUnauthorized},
		{"/jobs/j000000000000/preview.png", "Bearer " + token, http.StatusNotFound},
		{"/healthz", "", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, r.httpURL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.auth, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s: 401 without a Bearer challenge", tc.path)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, r.httpURL+"/api/jobs/j000000000000/rerun", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST rerun without the token: %d", resp.StatusCode)
	}
}

// chromiumCmd is headless chromium with a profile of its own, so runs share no state.
func chromiumCmd(t *testing.T, bin string, args ...string) *exec.Cmd {
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	return cmd
}

// consoleLines picks the console messages chromium logs (`...:CONSOLE...] "message", source: ...`).
func consoleLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, ":CONSOLE") {
			out = append(out, l)
		}
	}
	return out
}

// checkScreenshot: a PNG of the window's size, not one flat colour, with dark text pixels.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != shotW || b.Dy() != shotH {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), shotW, shotH)
	}
	colours, dark := map[[3]uint32]bool{}, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 100 && g>>8 < 100 && bl>>8 < 100 {
				dark++
			}
		}
	}
	if len(colours) < 16 || dark < 1000 {
		t.Fatalf("screenshot looks blank: %d colours, %d dark pixels", len(colours), dark)
	}
}

// pageResult is what the browser saw.
type pageResult struct {
	dom      string
	images   int      // <img> elements that loaded with a size
	problems []string // console messages, log entries of warning or error level, exceptions
}

// inspectPage loads url in chromium driven over the DevTools protocol and reports the DOM,
// the loaded images and every problem the browser logged while loading.
func inspectPage(t *testing.T, bin, url string) pageResult {
	t.Helper()
	toChrome, chromeIn, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	chromeOut, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := chromiumCmd(t, bin, "--remote-debugging-pipe", fmt.Sprintf("--window-size=%d,%d", shotW, shotH))
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fd 3: chromium reads; fd 4: it writes
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChrome.Close()
	fromChrome.Close()
	c := &cdp{t: t, w: chromeIn, pending: map[int]chan cdpMsg{}, events: make(chan cdpMsg, 256)}
	go c.read(chromeOut)
	defer func() {
		c.call("", "Browser.close", nil)
		chromeIn.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(peers.Patience):
			cmd.Process.Kill()
			<-done
		}
		chromeOut.Close()
	}()

	var target struct{ TargetID string }
	c.decode(c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}), &target)
	var attached struct{ SessionID string }
	c.decode(c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &attached)
	s := attached.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		c.call(s, m, nil)
	}
	c.call(s, "Page.navigate", map[string]any{"url": url})
	var res pageResult
	deadline := time.After(peers.Patience)
	for loaded := false; !loaded; {
		select {
		case ev := <-c.events:
			if ev.Method == "Page.loadEventFired" {
				loaded = true
			} else if p := problem(ev); p != "" {
				res.problems = append(res.problems, p)
			}
		case <-deadline:
			t.Fatalf("the page never loaded; chromium said:\n%s", stderr.String())
		}
	}
	var ev struct {
		Result struct{ Value string }
	}
	c.decode(c.call(s, "Runtime.evaluate", map[string]any{"expression": "document.documentElement.outerHTML", "returnByValue": true}), &ev)
	res.dom = ev.Result.Value
	var n struct {
		Result struct{ Value int }
	}
	c.decode(c.call(s, "Runtime.evaluate", map[string]any{"returnByValue": true,
		"expression": "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"}), &n)
	res.images = n.Result.Value
	// Events that arrived while the DOM was read.
	for len(c.events) > 0 {
		if p := problem(<-c.events); p != "" {
			res.problems = append(res.problems, p)
		}
	}
	return res
}

// problem describes an event that a clean page never causes, or returns "".
func problem(ev cdpMsg) string {
	var p struct {
		Entry struct {
			Level, Source, Text, URL string
		}
		Type             string
		Args             []struct{ Value any }
		ExceptionDetails struct{ Text string }
	}
	json.Unmarshal(ev.Params, &p)
	switch ev.Method {
	case "Log.entryAdded":
		if p.Entry.Level == "warning" || p.Entry.Level == "error" {
			return fmt.Sprintf("%s %s: %s %s", p.Entry.Level, p.Entry.Source, p.Entry.Text, p.Entry.URL)
		}
	case "Runtime.consoleAPICalled": // the page has no script: any console call is foreign
		return fmt.Sprintf("console.%s %v", p.Type, p.Args)
	case "Runtime.exceptionThrown":
		return "exception: " + p.ExceptionDetails.Text
	}
	return ""
}

// cdpMsg is one DevTools protocol message: a reply (ID set) or an event (Method set).
type cdpMsg struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// cdp is a minimal DevTools protocol client on chromium's pipe.
type cdp struct {
	t       *testing.T
	w       io.Writer
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMsg
	events  chan cdpMsg
}

func (c *cdp) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m cdpMsg
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		if m.ID == 0 {
			select {
			case c.events <- m:
			default: // a flood of events: the test fails on what it kept
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends one command and waits for its reply's result.
func (c *cdp) call(session, method string, params any) json.RawMessage {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if _, err := c.w.Write(append(b, 0)); err != nil {
		if method == "Browser.close" {
			return nil
		}
		c.t.Fatalf("devtools %s: %v", method, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peers.Patience)
	defer cancel()
	select {
	case m, ok := <-ch:
		if !ok {
			if method != "Browser.close" {
				c.t.Fatalf("devtools %s: chromium closed the pipe", method)
			}
			return nil
		}
		if m.Error != nil {
			c.t.Fatalf("devtools %s: %s", method, m.Error.Message)
		}
		return m.Result
	case <-ctx.Done():
		c.t.Fatalf("devtools %s: no reply", method)
		return nil
	}
}

func (c *cdp) decode(b json.RawMessage, v any) {
	c.t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("devtools reply %.200s: %v", b, err)
	}
}
