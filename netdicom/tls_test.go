package netdicom

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testPKI struct {
	dir                 string
	ca, srvCert, srvKey string
	cliCert, cliKey     string
	pool                *x509.CertPool
	client              tls.Certificate
}

// newTestPKI makes a throwaway CA, a server certificate for 127.0.0.1 and a client certificate.
func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Midline test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(caCert)
	p.ca = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "PRIVATE KEY", kder)
	}
	p.srvCert, p.srvKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.cliCert, p.cliKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	p.client, err = tls.LoadX509KeyPair(p.cliCert, p.cliKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTLSServer serves plain TCP and a TLS listener requiring client certificates.
func startTLSServer(t *testing.T, pki *testPKI) (*testServer, string) {
	t.Helper()
	cfg, err := ServerTLSConfig(TLSOptions{Cert: pki.srvCert, Key: pki.srvKey, ClientCA: pki.ca})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Options{})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.Server.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ts, ln.Addr().String()
}

func TestTLSListener(t *testing.T) {
	pki := newTestPKI(t)
	ts, addr := startTLSServer(t, pki)
	p := phantom{series: uidFor(t.Name()), n: 3, rows: 32, cols: 32}
	files := p.write(t, t.TempDir())

	t.Run("our SCU with a client certificate", func(t *testing.T) {
		o := ClientOptions{CalledAE: "MIDLINE", TLS: &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, ServerName: "127.0.0.1"}}
		res, err := SendFiles(context.Background(), addr, o, files)
		if err != nil || res[2].Err != nil {
			t.Fatalf("%v %+v", err, res)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		o := ClientOptions{CalledAE: "MIDLINE", Timeout: 5 * time.Second, TLS: &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}}
		if err := Echo(context.Background(), addr, o); err == nil {
			t.Fatal("association without a client certificate succeeded")
		}
	})
	t.Run("storescu +tls", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(addr)
		args := append([]string{"+tls", pki.cliKey, pki.cliCert, "+cf", pki.ca, "-aec", "MIDLINE", "127.0.0.1", port}, files...)
		out := mustDcmtk(t, "storescu", args...)
		for i, f := range files {
			if string(dataSetBytes(t, ts.storedPath(p.series, p.instanceUID(i)))) != string(dataSetBytes(t, f)) {
				t.Errorf("instance %d differs after TLS transfer", i)
			}
		}
		_ = out
	})
	t.Run("echoscu +tls without a client certificate", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(addr)
		out, err := dcmtk(t, 30*time.Second, "echoscu", "+tla", "+cf", pki.ca, "-aec", "MIDLINE", "127.0.0.1", port)
		if err == nil {
			t.Errorf("anonymous TLS echo succeeded:\n%s", out)
		}
		_ = strings.TrimSpace(out)
	})
}

// TestOutboxTLSToStorescp sends outbox jobs to dcmtk's storescp over DICOM TLS, the peer
// requiring a client certificate from the test CA: with the destination's ca, client_cert and
// client_key the files arrive; without ca the system's roots do not know the test CA; without a
// client certificate storescp refuses the handshake; a missing CA file is dead at once.
func TestOutboxTLSToStorescp(t *testing.T) {
	pki := newTestPKI(t)
	port, dir := startStorescp(t, "+tls", pki.srvKey, pki.srvCert, "+cf", pki.ca)
	var portN int
	fmt.Sscan(port, &portN)
	p := phantom{series: uidFor(t.Name()), n: 2, rows: 16, cols: 16}
	files := p.write(t, t.TempDir())
	base := Destination{Name: "tps", AETitle: "STORESCP", Host: "127.0.0.1", Port: portN, TLS: true}
	send := func(d Destination) Job {
		t.Helper()
		ob, err := OpenOutbox(OutboxOptions{Dir: t.TempDir(), Destinations: []Destination{d}, MaxAttempts: 3,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ob.Enqueue("tps", files); err != nil {
			t.Fatal(err)
		}
		ob.RunOnce(t.Context())
		return ob.Jobs()[0]
	}
	full := base
	full.CA, full.ClientCert, full.ClientKey = pki.ca, pki.cliCert, pki.cliKey
	if j := send(full); j.State != JobDone {
		t.Fatalf("with the CA and a client certificate: job %+v", j)
	}
	for i := range files {
		fileMeta(t, filepath.Join(dir, "MR."+p.instanceUID(i)))
	}
	noCA := full
	noCA.CA = ""
	if j := send(noCA); j.State != JobPending || !strings.Contains(j.LastError, "certificate signed by unknown authority") {
		t.Errorf("against the system's roots: job %+v, want a pending job failing on the unknown CA", j)
	}
	noCert := base
	noCert.CA = pki.ca
	if j := send(noCert); j.State != JobPending || j.LastError == "" {
		t.Errorf("without a client certificate: job %+v, want a pending job with the handshake's error", j)
	}
	missing := full
	missing.CA = filepath.Join(t.TempDir(), "none.pem")
	if j := send(missing); j.State != JobDead || !strings.Contains(j.LastError, "none.pem") {
		t.Errorf("with a missing CA file: job %+v, want dead at once, naming the file", j)
	}
}
