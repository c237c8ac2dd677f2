// Package tlsfiles builds the TLS configurations of the firmware's clients and servers (DICOM,
// MQTT) from the PEM files its configuration names: TLS 1.2 or later, as BCP 195 asks.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Pool reads the CA certificates of a PEM file.
func Pool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Client is a client's configuration: it trusts the CAs of caFile, or the system's roots when
// caFile is empty, and presents the certificate of certFile and keyFile when they are set.
// serverName is the name the peer's certificate must hold; empty lets the dialler take it from
// the address.
func Client(serverName, caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := Pool(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
