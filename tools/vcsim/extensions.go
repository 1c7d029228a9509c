package main

import (
	"bytes"
	"io"
	"net/http"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// routeMethods has route see every SOAP method call, and point it at an
// object of ours (method.This) where we answer it, before the handlers
// installed earlier and vcsim's own object; it must run before serving.
func routeMethods(m *simulator.Model, route func(*simulator.Context, *simulator.Method)) {
	next := m.Map().Handler
	m.Map().Handler = func(ctx *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		route(ctx, method)
		if next != nil {
			return next(ctx, method)
		}
		return nil, nil
	}
}

// Extensions are http.Handler middlewares wrapped around the simulator's
// own handler (its ServeMux: /sdk, /folder/, /nfc/, ...). Later ones wrap
// earlier ones, so the last in the list sees a request first. This is the
// place for behaviour vcsim lacks (SOAP interception, fault injection, ...).
type middleware func(next http.Handler) http.Handler

func installExtensions(srv *simulator.Server, m *simulator.Model) {
	stats := newStats()
	exports := newExports(srv.URL) // ExportVm, ExportSnapshot: nfc_export.go
	exports.install(m)
	imports := newImports(m) // ImportVApp uploads, PullFromUrls: nfc_import.go, nfc_pull.go
	imports.install(m)
	guests := newGuestOps() // guests that reboot, or ignore requests: guest_ops.go
	guests.install(m)
	iscsi := newISCSI() // software iSCSI adapters and targets: iscsi.go
	iscsi.install(m)
	installRelocateRelist(m)       // relocated VMs listed under their new host: relocate.go
	installDrsPlacement(m)         // DRS placement at creation and at power-on: drs_placement.go
	tickets := newConsoleTickets() // AcquireTicket for consoles: console_tickets.go
	tickets.install(m)
	installHardwareNotifier(m) // a reconfigured VM's size announced: vm_notify.go
	installDiskCopy(m)         // CopyVirtualDisk_Task of a sparse VMDK or a delta: sparse_copy.go
	installParentHints(m)      // a delta disk names its parent: linked_clones.go
	// Fault injection (faults.go): installed last, so its hook runs first.
	faults := newFaults(srv, m)
	faults.install(m)
	chain := []middleware{
		soapResponseFixes,
		soapRequestFixes,
		stats.middleware,
		exports.middleware,
		imports.middleware,
		nfcStats(exports, imports),
		guests.middleware,
		iscsi.middleware,
		datastoreControl(m), // datastore space changed at run time: datastore_space.go
		faults.middleware,
	}

	var h http.Handler = srv.Config.Handler
	for _, mw := range chain {
		h = mw(h)
	}
	// NewServer has already started serving; the swap happens before we
	// print the URL, so no client knows the (default: ephemeral) port yet.
	srv.Config.Handler = h
}

// soapRequestFilter returns a middleware that hands every /sdk request
// body to rewrite before the simulator decodes it.
func soapRequestFilter(rewrite func(body []byte) []byte) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && isSDKPath(r.URL.Path) {
				body, ok := readSOAPBody(w, r)
				if !ok {
					return
				}
				body = rewrite(body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// soapResponseFilter returns a middleware that hands every /sdk response
// body to rewrite before it goes out. rewrite returns the new body.
func soapResponseFilter(rewrite func(body []byte) []byte) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || !isSDKPath(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			serveRewritten(next, w, r, rewrite)
		})
	}
}

// readSOAPBody reads a request's whole body and puts it back for the
// handlers after; a body that cannot be read is answered 400, empty.
func readSOAPBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

// serveRewritten serves r through next, then sends what rewrite makes of
// the response body (its length changes, so no Content-Length).
func serveRewritten(next http.Handler, w http.ResponseWriter, r *http.Request, rewrite func([]byte) []byte) {
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	next.ServeHTTP(rec, r)
	body := rewrite(rec.body.Bytes())
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}

func isSDKPath(p string) bool {
	return p == "/sdk" || p == "/sdk/vimService"
}

// recorder buffers a response; headers go straight to the real writer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
