package main

import (
	"net/http"
	"strings"
	"sync"
)

const (
	folderPrefix = "/folder/"
	statsPath    = "/vcdriver/stats"
)

// stats counts datastore file uploads (HTTP PUT /folder/<path>?dsName=<ds>)
// and SOAP calls (POST /sdk, by method: round trips). GET /vcdriver/stats
// returns
//
//	{"folder_puts": {"<dsName>/<path>": n, ...}, "folder_put_total": n,
//	 "soap_calls": {"<method>": n, ...}, "soap_call_total": n}
//
// and DELETE /vcdriver/stats resets the counters.
type stats struct {
	mu        sync.Mutex
	puts      map[string]int
	total     int
	soap      map[string]int
	soapTotal int
}

func newStats() *stats {
	return &stats{puts: map[string]int{}, soap: map[string]int{}}
}

func (s *stats) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == statsPath:
			s.serve(w, r)
			return
		case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, folderPrefix):
			key := r.URL.Query().Get("dsName") + "/" + strings.TrimPrefix(r.URL.Path, folderPrefix)
			s.mu.Lock()
			s.puts[key]++
			s.total++
			s.mu.Unlock()
		case r.Method == http.MethodPost && isSDKPath(r.URL.Path):
			body, ok := readSOAPBody(w, r)
			if !ok {
				return
			}
			s.countSOAP(soapMethod(body))
		}
		next.ServeHTTP(w, r)
	})
}

func (s *stats) countSOAP(method string) {
	if method == "" {
		method = "?"
	}
	s.mu.Lock()
	s.soap[method]++
	s.soapTotal++
	s.mu.Unlock()
}

func (s *stats) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		puts := make(map[string]int, len(s.puts))
		for k, v := range s.puts {
			puts[k] = v
		}
		calls := make(map[string]int, len(s.soap))
		for k, v := range s.soap {
			calls[k] = v
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"folder_puts":      puts,
			"folder_put_total": s.total,
			"soap_calls":       calls,
			"soap_call_total":  s.soapTotal,
		})
	case http.MethodDelete:
		s.puts = map[string]int{}
		s.total = 0
		s.soap = map[string]int{}
		s.soapTotal = 0
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
