package main

// Rules on file transfers (/folder/, /nfc/): reset, and http_error with a
// status or a connection cut after so many bytes.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// serveTransfer applies the first transfer rule of target that fires for
// a /folder/ or /nfc/ request.
func (f *faults) serveTransfer(target string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	var act *faultRule
	f.mu.Lock()
	for _, rule := range f.rules {
		if rule.transfer() && rule.matchesTransfer(target, r) && rule.fire() {
			act = rule
			break
		}
	}
	f.mu.Unlock()
	switch {
	case act == nil:
		next.ServeHTTP(w, r)
	case act.Kind == kindReset:
		resetConn(w)
	case act.Kind == kindStall:
		f.stall(act, target, next, w, r)
	case act.cut && r.Method == http.MethodGet:
		next.ServeHTTP(&cutWriter{ResponseWriter: w, left: act.CutAfterBytes}, r)
	case act.cut && target == targetNFC:
		f.cutUpload(act, next, w, r)
	case act.cut && act.Status != 0:
		_, _ = io.CopyN(io.Discard, r.Body, act.CutAfterBytes)
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("injected fault %d", act.ID), act.Status)
	case act.cut:
		_, _ = io.CopyN(io.Discard, r.Body, act.CutAfterBytes)
		resetConn(w)
	default:
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, fmt.Sprintf("injected fault %d", act.ID), act.Status)
	}
}

// cutUpload hands an upload to its handler with the body cut after the
// rule's cut_after_bytes, drops the handler's answer, then resets the
// connection or answers the rule's status (the rest of the body unread).
func (f *faults) cutUpload(act *faultRule, next http.Handler, w http.ResponseWriter, r *http.Request) {
	why := fmt.Errorf("connection cut after %d bytes (injected fault %d)", act.CutAfterBytes, act.ID)
	if act.Status != 0 {
		why = fmt.Errorf("HTTP %d after %d bytes (injected fault %d)", act.Status, act.CutAfterBytes, act.ID)
	}
	r.Body = &cutBody{ReadCloser: r.Body, left: act.CutAfterBytes, err: why}
	next.ServeHTTP(&mutedWriter{w: w, header: http.Header{}}, r)
	if act.Status == 0 {
		resetConn(w)
		return
	}
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("injected fault %d", act.ID), act.Status)
}

// cutBody lets the first left bytes of a request body through, then fails
// every read with err, as a body whose connection broke does.
type cutBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.ReadCloser.Read(b)
	c.left -= int64(n)
	return n, err
}

// mutedWriter takes a handler's answer and drops it. The handler can still
// set the connection's read deadline (nfc_import.go stops a transfer so);
// nothing else of the connection is reachable, so nothing goes out.
type mutedWriter struct {
	w      http.ResponseWriter
	header http.Header
	gate   *stallGate // a stalled upload's: a read deadline ends its stall too
}

func (m *mutedWriter) Header() http.Header         { return m.header }
func (m *mutedWriter) WriteHeader(int)             {}
func (m *mutedWriter) Write(b []byte) (int, error) { return len(b), nil }

func (m *mutedWriter) SetReadDeadline(t time.Time) error {
	if m.gate != nil {
		m.gate.setReadDeadline(t)
	}
	return http.NewResponseController(m.w).SetReadDeadline(t)
}

// cutWriter passes on the first left bytes of a response, then resets the
// connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
	done bool
}

var errCut = errors.New("connection cut by an injected fault")

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.done {
		return 0, errCut
	}
	if int64(len(b)) <= c.left {
		c.left -= int64(len(b))
		return c.ResponseWriter.Write(b)
	}
	n, _ := c.ResponseWriter.Write(b[:c.left])
	c.done = true
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	resetConn(c.ResponseWriter)
	return n, errCut
}

// resetConn closes the request's connection at once, without an answer
// (or after what was flushed): the client sees a connection reset.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // RST rather than FIN
	}
	_ = raw.Close()
}
