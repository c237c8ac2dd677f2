package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/daemon"
	"github.com/midline-rt/midline/internal/logfile"
)

// runServe is the product: the daemon, configured by one YAML file. SIGTERM and SIGINT stop it
// in order (exit 0); SIGHUP re-reads the file, applies what can change while running (selection,
// classification, destination profiles) and logs what needs a restart.
func runServe(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	path := fl.String("config", "/etc/midline/midline.yaml", "configuration file")
	level := fl.String("log-level", "info", "log level: debug, info, warn, error")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: midline serve --config FILE")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 {
		fl.Usage()
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "midline serve: --log-level: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "midline serve: %v\n", err)
		return 2
	}
	files, err := logfile.Open(filepath.Join(cfg.StateDir, "logs"), cfg.Retention.Logs, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "midline serve: %v\n", err)
		return 1
	}
	defer files.Close()
	log := slog.New(slog.NewTextHandler(io.MultiWriter(stderr, files), &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, cfg, daemon.Options{Version: version, Commit: commit, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "midline serve: %v\n", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			next, err := config.Load(*path)
			if err == nil {
				var applied, restart []string
				applied, restart, err = d.Reload(next)
				if err == nil {
					log.Info("midline serve: SIGHUP: configuration reloaded", "applied", applied, "need_restart", restart)
					continue
				}
			}
			log.Error("midline serve: SIGHUP: configuration has errors; keeping the running one", "err", err)
		}
	}()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "midline serve: %v\n", err)
		return 1
	}
	return 0
}
