// Command vcsim is vcdriver's launcher around govmomi's vCenter simulator.
//
// It builds an inventory (see model.go), adds shared NFS datastores
// (datastores.go), wraps the HTTP handler with our extensions
// (extensions.go), prints one JSON line describing the instance on stdout
// and serves until SIGTERM or SIGINT. Everything else goes to stderr.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	log.SetOutput(os.Stderr)
	log.SetPrefix("vcsim: ")

	cfg := parseFlags(flag.CommandLine, os.Args[1:])

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

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Printf("received %s, shutting down", s)
	inst.stop()
}
