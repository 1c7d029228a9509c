package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatsCountsSOAPCalls(t *testing.T) {
	var seen string
	s := newStats()
	h := s.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen = string(body)
	}))
	for _, m := range []string{"RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "ContinueRetrievePropertiesEx"} {
		body := string(envelope(m, ""))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/sdk", strings.NewReader(body)))
		if seen != body {
			t.Fatalf("simulator got %q, want the request body", seen)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, statsPath, nil))
	var got struct {
		Calls map[string]int `json:"soap_calls"`
		Total int            `json:"soap_call_total"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Total != 3 || got.Calls["ContinueRetrievePropertiesEx"] != 2 || got.Calls["RetrievePropertiesEx"] != 1 {
		t.Fatalf("got %+v", got)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, statsPath, nil))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, statsPath, nil))
	if !strings.Contains(rec.Body.String(), `"soap_call_total":0`) {
		t.Fatalf("not reset: %s", rec.Body.String())
	}
}
