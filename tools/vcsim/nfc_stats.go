package main

// GET /vcdriver/nfc lists the NFC leases made through the launcher, export
// leases (nfc_export.go) and import leases (nfc_import.go), oldest first,
// so that tests can check how a client used them:
//
//	{"leases": [
//	  {"lease", "kind": "export", "entity", "state", "error", "bytes"},
//	  {"lease", "kind": "import", "entity", "state", "error", "bytes",
//	   "bytes_received", "bytes_pulled", "bytes_written", "files": [...]},
//	  ...]}
//
// "state" is ready, completed, aborted or error ("initializing" too, for
// an import lease whose VM is still being made); "error" is the lease's
// fault message when it is in state error. DELETE /vcdriver/nfc forgets
// the finished leases (completed, aborted, error).

import (
	"net/http"
	"sort"
	"time"
)

const nfcStatsPath = "/vcdriver/nfc"

// nfcStatsRow is one lease, as JSON, with when it was made.
type nfcStatsRow struct {
	created time.Time
	row     any
}

// nfcLeaseSet is a kind of lease listed by GET /vcdriver/nfc.
type nfcLeaseSet interface {
	statsRows() []nfcStatsRow
	forgetFinished()
}

func finished(state string) bool {
	return state == "completed" || state == "aborted" || state == "error"
}

func nfcStats(sets ...nfcLeaseSet) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != nfcStatsPath {
				next.ServeHTTP(w, r)
				return
			}
			switch r.Method {
			case http.MethodGet:
				var all []nfcStatsRow
				for _, s := range sets {
					all = append(all, s.statsRows()...)
				}
				sort.SliceStable(all, func(i, j int) bool { return all[i].created.Before(all[j].created) })
				rows := make([]any, 0, len(all))
				for _, r := range all {
					rows = append(rows, r.row)
				}
				writeJSON(w, http.StatusOK, map[string]any{"leases": rows})
			case http.MethodDelete:
				for _, s := range sets {
					s.forgetFinished()
				}
				w.WriteHeader(http.StatusNoContent)
			default:
				w.WriteHeader(http.StatusMethodNotAllowed)
			}
		})
	}
}
