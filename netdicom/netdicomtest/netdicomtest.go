// Package netdicomtest runs a netdicom server for the tests of other packages: on a loopback
// listener, stopped and joined when the test ends.
package netdicomtest

import (
	"context"
	"net"
	"testing"

	"github.com/midline-rt/midline/netdicom"
)

// Serve starts s on 127.0.0.1 with a free port and returns its address; the server is stopped
// and its Serve call joined at the end of the test.
func Serve(t testing.TB, s *netdicom.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}
