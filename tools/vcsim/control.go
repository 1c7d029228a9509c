package main

// The launcher's control endpoints (/vcdriver/...: faults, stats, nfc,
// guest, iscsi-targets, datastores) answer alike, and the Python harness
// and tests rely on it: data as JSON (Content-Type application/json), a
// request body they cannot use as a 400 saying why in plain text
// (http.Error), a method they do not serve as an empty 405. These helpers
// are that one way of answering.

import (
	"encoding/json"
	"net/http"
)

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// badRequest answers 400 with why, in plain text: the clients print it.
func badRequest(w http.ResponseWriter, why string) {
	http.Error(w, why, http.StatusBadRequest)
}

// decodeJSON decodes the JSON value a request's body starts with into v
// (anything after it is not read); fields v lacks are ignored.
func decodeJSON(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

// decodeJSONStrict is decodeJSON refusing fields v lacks, for an endpoint
// where a misspelt field must not pass for an absent one.
func decodeJSONStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
