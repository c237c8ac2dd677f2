package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/midline-rt/midline/internal/tlsfiles"
	"github.com/midline-rt/midline/netdicom"
)

// scuFlags are the flags `echo` and `send` share.
type scuFlags struct {
	aet, aec      string
	useTLS        bool
	ca, cert, key string
	timeout       time.Duration
	maxPDU        uint
}

func (f *scuFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.aet, "aet", "MIDLINE", "our (calling) AE title")
	fs.StringVar(&f.aec, "aec", "ANY-SCP", "the peer's (called) AE title")
	fs.BoolVar(&f.useTLS, "tls", false, "use DICOM TLS")
	fs.StringVar(&f.ca, "tls-ca", "", "PEM file of the CA that signed the peer's certificate (default: system roots)")
	fs.StringVar(&f.cert, "tls-cert", "", "PEM client certificate, when the peer asks for one")
	fs.StringVar(&f.key, "tls-key", "", "PEM key of --tls-cert")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "connection and answer timeout")
	fs.UintVar(&f.maxPDU, "max-pdu", netdicom.DefaultMaxPDU, "largest PDU we accept")
}

func (f *scuFlags) options(addr string) (netdicom.ClientOptions, error) {
	o := netdicom.ClientOptions{CallingAE: f.aet, CalledAE: f.aec, Timeout: f.timeout, MaxPDU: uint32(f.maxPDU)}
	if !f.useTLS {
		return o, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg, err := tlsfiles.Client(host, f.ca, f.cert, f.key)
	if err != nil {
		return o, fmt.Errorf("TLS %w", err)
	}
	o.TLS = cfg
	return o, nil
}

func parseAddr(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%q is not HOST:PORT: %w", s, err)
	}
	return nil
}

func runEcho(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("echo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var f scuFlags
	f.register(fl)
	fl.Usage = func() { fmt.Fprintln(stderr, "usage: midline echo [flags] HOST:PORT"); fl.PrintDefaults() }
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 || parseAddr(fl.Arg(0)) != nil {
		fl.Usage()
		return 2
	}
	o, err := f.options(fl.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "midline echo: %v\n", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	if err := netdicom.Echo(ctx, fl.Arg(0), o); err != nil {
		fmt.Fprintf(stderr, "midline echo: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "C-ECHO %s (%s): Success in %v\n", fl.Arg(0), f.aec, time.Since(start).Round(time.Microsecond))
	return 0
}

func runSend(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("send", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var f scuFlags
	f.register(fl)
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: midline send [flags] HOST:PORT FILE|DIR...")
		fmt.Fprintln(stderr, "Sends each Part 10 file's data set as it is in the file, over one association.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() < 2 || parseAddr(fl.Arg(0)) != nil {
		fl.Usage()
		return 2
	}
	o, err := f.options(fl.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "midline send: %v\n", err)
		return 2
	}
	paths, skipped, err := collectFiles(fl.Args()[1:])
	if err != nil {
		fmt.Fprintf(stderr, "midline send: %v\n", err)
		return 2
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "midline send: skipped %d files without a DICOM Part 10 header in the folders given\n", skipped)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := netdicom.SendFiles(ctx, fl.Arg(0), o, paths)
	failed := 0
	for _, r := range res {
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %v\n", r.Path, r.Err)
		default:
			fmt.Fprintf(stdout, "ok   %s: %s\n", r.Path, r.Status)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "midline send: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d sent, %d failed\n", len(res)-failed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// collectFiles expands folders into the Part 10 files below them, in lexical order; files
// named on the command line are kept even when they are not DICOM, so that they are reported.
func collectFiles(args []string) (files []string, skipped int, err error) {
	for _, a := range args {
		err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case !d.Type().IsRegular():
			case p == a || isPart10(p):
				files = append(files, p)
			default:
				skipped++
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	if len(files) == 0 {
		return nil, skipped, errors.New("no DICOM files to send")
	}
	return files, skipped, nil
}

// isPart10 reports whether a file starts with a 128-byte preamble and "DICM".
func isPart10(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true // let the send report why
	}
	defer f.Close()
	var b [132]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[128:]) == "DICM"
}

func runConformance(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: midline conformance")
		return 2
	}
	if err := netdicom.WriteConformance(stdout, version); err != nil {
		fmt.Fprintf(stderr, "midline conformance: %v\n", err)
		return 1
	}
	return 0
}
