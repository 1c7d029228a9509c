package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

const (
	folderPrefix = "/folder/"
	statsPath    = "/vcdriver/stats"
)

// stats counts datastore file uploads: HTTP PUT /folder/<path>?dsName=<ds>.
// GET /vcdriver/stats returns
//
//	{"folder_puts": {"<dsName>/<path>": n, ...}, "folder_put_total": n}
//
// and DELETE /vcdriver/stats resets the counters.
type stats struct {
	mu    sync.Mutex
	puts  map[string]int
	total int
}

func newStats() *stats {
	return &stats{puts: map[string]int{}}
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
		}
		next.ServeHTTP(w, r)
	})
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
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"folder_puts":      puts,
			"folder_put_total": s.total,
		})
	case http.MethodDelete:
		s.puts = map[string]int{}
		s.total = 0
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
