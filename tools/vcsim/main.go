// Command vcsim is vcdriver's launcher around govmomi's vCenter simulator.
//
// It builds an inventory (see model.go), adds shared NFS datastores
// (datastores.go) and, if asked, one per cluster (cluster_datastores.go),
// wraps the HTTP handler with our extensions (extensions.go), prints one
// JSON line describing the instance on stdout and serves until SIGTERM or
// SIGINT (or, with -exit-on-stdin-close, EOF on stdin). Everything else
// goes to stderr.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	log.SetOutput(os.Stderr)
	log.SetPrefix("vcsim: ")

	cfg := parseFlags(flag.CommandLine, os.Args[1:])

	// Catch signals before anything else, so that a SIGTERM sent right after
	// the JSON line (or even during start) still gets a clean shutdown.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	inst, err := start(cfg)
	if err != nil {
		log.Fatalf("start: %v", err)
	}

	line, err := json.Marshal(inst.info)
	if err != nil {
		inst.stop()
		log.Fatalf("encode info: %v", err)
	}
	os.Stdout.Write(append(line, '\n'))
	_ = os.Stdout.Sync()

	done := make(chan string, 2)
	go func() { done <- "received " + (<-sig).String() }()
	if cfg.exitOnStdinClose {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			done <- "stdin closed"
		}()
	}
	log.Printf("%s, shutting down", <-done)
	inst.stop()
}
