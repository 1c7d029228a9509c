package main

// stall: a file transfer held after so many bytes until its rule is
// cleared, its client goes away or its lease ends, then cut.

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"
	"time"
)

// stall holds a transfer a stall rule fired for: an upload's body (its
// handler's for /nfc/, dropped for /folder/) or a download's answer stops
// after the rule's cut_after_bytes until the stall ends (stallGate), then
// the connection is reset.
func (f *faults) stall(act *faultRule, target string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	g := newStallGate(f, act, r)
	defer g.release()
	switch {
	case r.Method == http.MethodGet:
		sw := &stallWriter{ResponseWriter: w, left: act.CutAfterBytes, gate: g}
		next.ServeHTTP(sw, r)
		if sw.done {
			return
		}
		// An answer no longer than cut_after_bytes: it went out whole, the
		// end of the connection is held.
		_ = http.NewResponseController(w).Flush()
	case target == targetNFC:
		r.Body = &stallBody{ReadCloser: r.Body, left: act.CutAfterBytes, gate: g}
		next.ServeHTTP(&mutedWriter{w: w, header: http.Header{}, gate: g}, r)
	default:
		if _, err := io.CopyN(io.Discard, r.Body, act.CutAfterBytes); err != nil && err != io.EOF {
			g.lost()
		}
	}
	g.wait() // at once if the transfer stalled already, or its client is gone
	resetConn(w)
}

// stallGate is one transfer of a stall rule: it counts the rule's hit and
// holds the transfer (wait) until the rule is cleared, the client goes
// away or the handler's read deadline passes.
type stallGate struct {
	f      *faults
	rule   *faultRule
	method string
	path   string
	gone   <-chan struct{} // the request's context: its client went away

	mu       sync.Mutex
	state    int // gateNew, gateHeld, gateOver
	n        int64
	timer    *time.Timer
	expired  chan struct{} // closed once a read deadline set by the handler passed
	expireMu sync.Once
}

const (
	gateNew  = iota // not stalled yet
	gateHeld        // stalled now
	gateOver        // stalled and let go, or never to be
)

func newStallGate(f *faults, rule *faultRule, r *http.Request) *stallGate {
	return &stallGate{f: f, rule: rule, method: r.Method, path: r.URL.Path, gone: r.Context().Done(),
		expired: make(chan struct{})}
}

// wait stalls the transfer after n bytes, once: it returns when the rule
// is cleared, the client is gone or the read deadline passed (at once if
// it has stalled before, or lost was called).
func (g *stallGate) wait() {
	g.mu.Lock()
	if g.state != gateNew {
		g.mu.Unlock()
		return
	}
	g.state = gateHeld
	g.mu.Unlock()
	g.f.mu.Lock()
	g.rule.claimed--
	g.rule.Hits++
	g.rule.stalls++
	g.f.mu.Unlock()
	log.Printf("faults: %s %s stalled after %d bytes (injected fault %d)", g.method, g.path, g.rule.CutAfterBytes, g.rule.ID)
	select {
	case <-g.rule.cleared:
	case <-g.gone:
	case <-g.expired:
	}
	g.f.mu.Lock()
	g.rule.stalls--
	g.f.mu.Unlock()
	g.mu.Lock()
	g.state = gateOver
	g.mu.Unlock()
}

// lost notes that the client went away before the stall: there is none.
func (g *stallGate) lost() { g.release() }

// release gives up the rule's claim if the transfer never stalled.
func (g *stallGate) release() {
	g.mu.Lock()
	never := g.state == gateNew
	g.state = gateOver
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	if never {
		g.f.mu.Lock()
		g.rule.claimed--
		g.f.mu.Unlock()
	}
}

// setReadDeadline arms the end of the stall at t (zero: none), as the
// handler's read deadline ends any read of its connection (an NFC lease
// that ends stops its uploads so).
func (g *stallGate) setReadDeadline(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if !t.IsZero() {
		g.timer = time.AfterFunc(time.Until(t), func() { g.expireMu.Do(func() { close(g.expired) }) })
	}
}

// err is what a stalled upload's handler reads once the stall ends.
func (g *stallGate) err() error {
	return fmt.Errorf("upload stalled after %d bytes, then cut (injected fault %d)", g.rule.CutAfterBytes, g.rule.ID)
}

// stallBody lets the first left bytes of a request body through; the next
// read stalls, then fails.
type stallBody struct {
	io.ReadCloser
	left int64
	gate *stallGate
	err  error
}

func (s *stallBody) Read(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left <= 0 {
		s.gate.wait()
		s.err = s.gate.err()
		return 0, s.err
	}
	if int64(len(b)) > s.left {
		b = b[:s.left]
	}
	n, err := s.ReadCloser.Read(b)
	s.left -= int64(n)
	if err != nil && err != io.EOF {
		s.gate.lost() // the connection broke before the stall
	}
	return n, err
}

// stallWriter passes on the first left bytes of a response, flushes them,
// stalls, then resets the connection.
type stallWriter struct {
	http.ResponseWriter
	left int64
	gate *stallGate
	done bool
}

func (s *stallWriter) Write(b []byte) (int, error) {
	if s.done {
		return 0, errCut
	}
	if int64(len(b)) <= s.left {
		s.left -= int64(len(b))
		n, err := s.ResponseWriter.Write(b)
		if err != nil {
			s.gate.lost()
		}
		return n, err
	}
	s.done = true
	n, err := s.ResponseWriter.Write(b[:s.left])
	if err == nil {
		err = http.NewResponseController(s.ResponseWriter).Flush()
	}
	if err != nil {
		s.gate.lost()
	}
	s.gate.wait()
	resetConn(s.ResponseWriter)
	return n, errCut
}

// Unwrap lets a handler's ResponseController reach the connection.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
