package main

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden outputs in testdata/golden")

const testToken = "rec-token-0123456789abcdef"

// recordedAPI serves the API answers recorded from a real daemon (testdata/README.md) and
// checks the bearer token and the method of every request, as the daemon does.
func recordedAPI(t *testing.T, routes map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		file, ok := routes[r.Method+" "+r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if strings.HasPrefix(file, "!") { // an error answer, as the daemon gives it
			code, _ := strconv.Atoi(file[1:4])
			http.Error(w, file[4:], code)
			return
		}
		b, err := os.ReadFile(filepath.Join("testdata", "api", file))
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// golden compares got with testdata/golden/name (or rewrites it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// runCLI runs the midline command line as main does and returns its exit code and output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func pinTimeZone(t *testing.T) {
	old := displayLoc
	displayLoc = time.UTC
	t.Cleanup(func() { displayLoc = old })
}

func TestStatusRecorded(t *testing.T) {
	srv := recordedAPI(t, map[string]string{
		"GET /api/health": "health.json",
	})
	code, out, errs := runCLI("status", "--url", srv.URL, "--token", testToken)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "status.txt", out)

	code, out, _ = runCLI("status", "--url", srv.URL+"/", "--token", testToken, "--json")
	if code != 0 || !strings.Contains(out, `"schema": "midline.health/1"`) {
		t.Fatalf("--json: exit %d\n%s", code, out)
	}
}

// TestStatusAlarms: alarms, a lost broker, a missing sensor and a running job are shown.
func TestStatusAlarms(t *testing.T) {
	srv := recordedAPI(t, map[string]string{"GET /api/health": "health-alarms.json"})
	code, out, errs := runCLI("status", "--url", srv.URL, "--token", testToken)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "status-alarms.txt", out)
}

func TestStatusFailures(t *testing.T) {
	srv := recordedAPI(t, map[string]string{"GET /api/health": "jobs.json"}) // not health
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "no token", args: []string{"--url", srv.URL}, code: 1, want: "401 Unauthorized: unauthorized (give --token"},
		{name: "wrong token", args: []string{"--url", srv.URL, "--token", "not-the-token-at-all"}, code: 1, want: "401"},
		{name: "unreachable", args: []string{"--url", deadURL}, code: 1, want: "cannot reach the daemon"},
		{name: "not health", args: []string{"--url", srv.URL, "--token", testToken}, code: 1, want: "is not midline.health/1"},
		{name: "no config", args: []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, code: 1, want: "no such file"},
		{name: "bad url", args: []string{"--url", "127.0.0.1:8080"}, code: 1, want: "want http://HOST:PORT"},
		{name: "stray argument", args: []string{"--url", srv.URL, "extra"}, code: 2, want: "usage: midline status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MIDLINE_TOKEN", "")
			code, _, errs := runCLI(append([]string{"status"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.want)
			}
		})
	}
}

// TestStatusTokenFromEnvironment: $MIDLINE_TOKEN serves when neither --token nor a
// configuration gives one (a token on the command line shows in ps).
func TestStatusTokenFromEnvironment(t *testing.T) {
	srv := recordedAPI(t, map[string]string{"GET /api/health": "health.json"})
	t.Setenv("MIDLINE_TOKEN", testToken)
	if code, _, errs := runCLI("status", "--url", srv.URL); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

// TestClientFromConfig: the URL comes from http.listen (an unspecified host means loopback)
// and the token from http.token.
func TestClientFromConfig(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"127.0.0.1:18080", "http://127.0.0.1:18080"},
		{":8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"'[::]:8080'", "http://[::1]:8080"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "midline.yaml")
			text := "device_id: a\nsite: b\nboard:\n  profile: sim\nhttp:\n  listen: " + tc.listen + "\n  token: " + testToken + "\n"
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := (&apiFlags{config: path}).client()
			if err != nil {
				t.Fatal(err)
			}
			if c.base != tc.want || c.token != testToken {
				t.Fatalf("base %q token %q, want %q and the configured token", c.base, c.token, tc.want)
			}
			c, err = (&apiFlags{config: path, url: "http://10.9.9.9:1", token: "given"}).client()
			if err != nil || c.base != "http://10.9.9.9:1" || c.token != "given" {
				t.Fatalf("flags do not win over the configuration: %+v %v", c, err)
			}
		})
	}
}
