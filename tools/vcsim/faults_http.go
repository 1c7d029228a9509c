package main

// The faults' HTTP side: every request passes faults.middleware, which
// serves the control endpoint (/vcdriver/faults), answers for vCenter
// while a restart rule holds it down, and hands SOAP calls and file
// transfers to their rules.

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (f *faults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == faultsPath || strings.HasPrefix(r.URL.Path, faultsPath+"/"):
			f.serve(w, r)
			return
		case strings.HasPrefix(r.URL.Path, "/vcdriver/"):
			next.ServeHTTP(w, r)
			return
		}
		if rule := f.restarting(); rule != nil {
			if rule.Status != 0 {
				w.WriteHeader(rule.Status)
			} else {
				resetConn(w)
			}
			return
		}
		if r.Method == http.MethodPost && isSDKPath(r.URL.Path) {
			f.serveSOAP(next, w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, folderPrefix) {
			f.serveTransfer(targetFolder, next, w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, nfcPathPrefix) {
			f.serveTransfer(targetNFC, next, w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// restarting returns the restart rule in force, counting the request.
func (f *faults) restarting() *faultRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.Kind == kindRestart && time.Now().Before(r.until) {
			r.Hits++
			return r
		}
	}
	return nil
}

func (f *faults) serve(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, faultsPath), "/")
	switch {
	case r.Method == http.MethodGet && id == "":
		f.mu.Lock()
		list := make([]faultRule, 0, len(f.rules))
		for _, rule := range f.rules {
			list = append(list, rule.listed())
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"faults": list})
	case r.Method == http.MethodPost && id == "":
		rule, err := decodeRule(r.Body)
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		f.add(rule)
		f.mu.Lock()
		out := rule.listed()
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, out)
	case r.Method == http.MethodDelete && id == "":
		f.clear(0)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		n, err := strconv.Atoi(id)
		if err != nil || !f.clear(n) {
			http.Error(w, "no fault "+id, http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
