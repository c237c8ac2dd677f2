package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/peers"
)

// TestTLSWithClientCertificate connects to mosquitto's TLS listener that demands a client
// certificate, with keys made here for the test.
func TestTLSWithClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCert(t, dir, "ca", nil, nil)
	writeCert(t, dir, "server", ca, caKey)
	writeCert(t, dir, "client", ca, caKey)
	tlsPort := peers.FreePort(t)
	b := startBrokerWith(t, fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		tlsPort, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")))
	sub := subscribe(t, b, "midline/#")

	ob := openOutbox(t, OutboxOptions{Dir: t.TempDir()})
	c, err := New(Options{Broker: fmt.Sprintf("mqtts://127.0.0.1:%d", tlsPort), DeviceID: "box-1", Site: "site-a", TopicPrefix: "midline/v1",
		CA: filepath.Join(dir, "ca.pem"), ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key"),
		Outbox: ob, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, ob: ob, done: make(chan struct{})}
	ctx, cancel := contextWithCancel()
	h.cancel = cancel
	go func() { defer close(h.done); c.Run(ctx) }()
	t.Cleanup(h.stop)

	if err := c.Event(payload("box-1:tls")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "event over TLS", allSeen(sub.received, []string{"box-1:tls"}))

	if _, err := New(Options{Broker: "mqtts://127.0.0.1:1", DeviceID: "d", Outbox: ob, CA: filepath.Join(dir, "server.key")}); err == nil {
		t.Error("a CA file without a certificate was accepted")
	}
}

// writeCert writes name.pem and name.key: a CA when parent is nil, else a leaf for 127.0.0.1
// signed by it.
func writeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "midline test " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
