package main

// HttpNfcLease.HttpNfcLeasePullFromUrls_Task (vSphere 6.7+), missing from
// vcsim: instead of uploading, the client names a URL for each file of an
// import lease and the host fetches it (GET, with the given headers; http
// or https, the certificate checked against sslThumbprint (SHA-1 or
// SHA-256) or sslCertificate if given, else not at all), and writes it
// into the disk as an upload would (nfc_import.go): a streamOptimized VMDK
// decoded into a thin disk. memberName picks a file out of an OVA (tar).
//
// Each file's targetDeviceId names a device URL of the lease by its
// importKey, as the API documents; its key or the URL's file name (the
// last path element) are taken too. Files are fetched one after another;
// the task fails at the first that cannot be, with an HttpFault (status
// code and message) for an HTTP status other than 200 and a SystemError
// otherwise, its message naming the URL (without query and user info) and
// the reason. A bad targetDeviceId or URL, or a lease that is not ready,
// fails the call itself (InvalidArgument, InvalidState). Ending the lease
// or cancelling the task stops the transfer. Bytes pulled are counted per
// file in GET /vcdriver/nfc ("bytes_pulled").

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// pullMessageKey marks the faultMessage that carries a pull's reason.
const pullMessageKey = "vcdriver.vcsim.nfc.pull"

type pullFile struct {
	src types.HttpNfcLeaseSourceFile
	url *url.URL
	f   *importFile
}

func (s *importService) HttpNfcLeasePullFromUrlsTask(ctx *simulator.Context, req *types.HttpNfcLeasePullFromUrls_Task) soap.HasFault {
	body := new(methods.HttpNfcLeasePullFromUrls_TaskBody)
	fail := func(msg string, fault types.BaseMethodFault) soap.HasFault {
		body.Fault_ = simulator.Fault(msg, fault)
		return body
	}
	l := s.x.lease(req.This.Value)
	if _, fault := sessionLease(ctx, req.This); fault != nil || l == nil {
		body.Fault_ = notFound(req.This)
		return body
	}
	if state, _ := s.x.sync(l); state != "ready" {
		return fail("lease is "+state, &types.InvalidState{})
	}
	if len(req.Files) == 0 {
		return fail("no files to pull", &types.InvalidArgument{InvalidProperty: "files"})
	}
	pulls := make([]pullFile, 0, len(req.Files))
	for i, src := range req.Files {
		f := s.x.device(l, src.TargetDeviceId)
		if f == nil {
			return fail(fmt.Sprintf("no device %q in the lease", src.TargetDeviceId),
				&types.InvalidArgument{InvalidProperty: fmt.Sprintf("files[%d].targetDeviceId", i)})
		}
		u, err := url.Parse(src.Url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fail(fmt.Sprintf("cannot pull from %q", src.Url),
				&types.InvalidArgument{InvalidProperty: fmt.Sprintf("files[%d].url", i)})
		}
		pulls = append(pulls, pullFile{src: src, url: u, f: f})
	}
	task := simulator.CreateTask(req.This, "HttpNfcLeasePullFromUrlsTask", func(task *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, s.x.pull(task, l, pulls)
	})
	body.Res = &types.HttpNfcLeasePullFromUrls_TaskResponse{Returnval: s.x.runTask(task)}
	return body
}

// device finds the lease's file a targetDeviceId names: by importKey,
// else by key, else by URL file name.
func (x *imports) device(l *importLease, id string) *importFile {
	files := x.filesOf(l)
	for _, match := range []func(*importFile) string{
		func(f *importFile) string { return f.importKey },
		func(f *importFile) string { return f.key },
		func(f *importFile) string { return f.name },
	} {
		for _, f := range files {
			if id != "" && match(f) == id {
				return f
			}
		}
	}
	return nil
}

// runTask runs a task as simulator.Task.Run does, except that it holds no
// lock on the task's entity (the lease) while it runs: Run would hold it
// for the whole transfer, and every HttpNfcLeaseProgress call and every
// read of the lease would wait for the end. The task is put in the Map
// with the lease as entity, so faults.go's task rules apply to it.
func (x *imports) runTask(task *simulator.Task) types.ManagedObjectReference {
	reg, own := x.m.Map(), x.own()
	reg.Put(task)
	reg.AtomicUpdate(own, task, []types.PropertyChange{
		{Name: "info.key", Val: task.Self.Value},
		{Name: "info.task", Val: task.Self},
		{Name: "info.startTime", Val: time.Now()},
		{Name: "info.state", Val: types.TaskInfoStateRunning},
	})
	go func() {
		res, fault := task.Execute(task)
		changes := []types.PropertyChange{
			{Name: "info.completeTime", Val: time.Now()},
			{Name: "info.state", Val: types.TaskInfoStateSuccess},
			{Name: "info.result", Val: res},
			{Name: "info.error", Val: nil},
		}
		if fault != nil {
			changes[1].Val = types.TaskInfoStateError
			changes[3].Val = types.LocalizedMethodFault{Fault: fault, LocalizedMessage: pullMessage(fault)}
		}
		reg.WithLock(own, task, func() {
			if !task.Info.Cancelled { // CancelTask has ended it
				own.Update(task, changes)
			}
		})
	}()
	return task.Self
}

// pull fetches the files one after another.
func (x *imports) pull(task *simulator.Task, l *importLease, pulls []pullFile) types.BaseMethodFault {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go x.watchPull(ctx, cancel, task, pulls)
	for _, p := range pulls {
		end, ok := x.begin(l, p.f, cancel)
		if !ok {
			return pullFault(&types.RequestCanceled{}, "lease is no longer valid")
		}
		fault := x.pullOne(ctx, p)
		if fault != nil && x.ended(l) {
			fault = pullFault(&types.RequestCanceled{}, "%s: the lease ended during the transfer", redacted(p.url))
		}
		var err error
		if fault != nil {
			err = errors.New(pullMessage(fault))
		}
		end(err)
		if fault != nil {
			return fault
		}
	}
	return nil
}

// watchPull reports the task's progress (when the sizes are known) and
// stops the transfer if the task is cancelled.
func (x *imports) watchPull(ctx context.Context, cancel func(), task *simulator.Task, pulls []pullFile) {
	reg, own := x.m.Map(), x.own()
	var total, start int64
	for _, p := range pulls {
		if p.src.Size <= 0 {
			total = -1 // unknown
		} else if total >= 0 {
			total += p.src.Size
		}
		start += p.f.pulled.Load()
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var done int64
		for _, p := range pulls {
			done += p.f.pulled.Load()
		}
		reg.WithLock(own, task, func() {
			if task.Info.Cancelled {
				cancel()
			} else if total > 0 {
				own.Update(task, []types.PropertyChange{{Name: "info.progress", Val: int32(min(99, (done-start)*100/total))}})
			}
		})
	}
}

// pullOne fetches one file into its device.
func (x *imports) pullOne(ctx context.Context, p pullFile) types.BaseMethodFault {
	where := redacted(p.url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url.String(), nil)
	if err != nil {
		return pullFault(&types.SystemError{}, "GET %s: %v", where, err)
	}
	for _, h := range p.src.HttpHeaders {
		if strings.EqualFold(h.Key, "Host") {
			req.Host = h.Value
		} else {
			req.Header.Set(h.Key, h.Value)
		}
	}
	transport := pullTransport(p.src)
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return pullFault(&types.SystemError{}, "GET %s: %v", where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pullFault(&types.HttpFault{StatusCode: int32(resp.StatusCode), StatusMessage: http.StatusText(resp.StatusCode)},
			"GET %s: HTTP %s", where, resp.Status)
	}
	var src io.Reader = &countingReader{r: resp.Body, n: &p.f.pulled}
	if p.src.MemberName != "" {
		if src, err = tarMember(src, p.src.MemberName); err != nil {
			return pullFault(&types.SystemError{}, "%s: %v", where, err)
		}
	}
	if err := x.store(p.f, src); err != nil {
		return pullFault(&types.SystemError{}, "%s: %v", where, err)
	}
	return nil
}

// pullFault is fault with msg as its reason (SystemError) and as the
// task's localizedMessage (runTask).
func pullFault(fault types.BaseMethodFault, format string, a ...any) types.BaseMethodFault {
	msg := fmt.Sprintf(format, a...)
	if e, ok := fault.(*types.SystemError); ok {
		e.Reason = msg
	}
	f := fault.GetMethodFault()
	f.FaultMessage = append(f.FaultMessage, types.LocalizableMessage{Key: pullMessageKey, Message: msg})
	return fault
}

// pullMessage is the reason pullFault gave a fault, else its type as
// vcsim's tasks say (faults_soap.go's responseFix rewrites that for an
// injected fault).
func pullMessage(fault types.BaseMethodFault) string {
	for _, m := range fault.GetMethodFault().FaultMessage {
		if m.Key == pullMessageKey {
			return m.Message
		}
	}
	return fmt.Sprintf("%T", fault)
}

// redacted is a URL as messages name it: without user info and query,
// which may hold credentials.
func redacted(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment = nil, "", false, ""
	return c.String()
}

// unwrapURLError drops net/http's "Get <url>:" prefix (with the query).
func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// pullTransport fetches without the launcher's proxy settings, checking
// the server's certificate only as the client asked.
func pullTransport(src types.HttpNfcLeaseSourceFile) *http.Transport {
	thumbprint := strings.ToLower(strings.ReplaceAll(src.SslThumbprint, ":", ""))
	var cert []byte
	if block, _ := pem.Decode([]byte(src.SslCertificate)); block != nil {
		cert = block.Bytes
	}
	config := &tls.Config{
		// ESX has no CA store to check against: the client vouches for the
		// server with a thumbprint or certificate, or nothing is checked.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			s1, s256 := sha1.Sum(raw[0]), sha256.Sum256(raw[0])
			switch {
			case thumbprint != "" && thumbprint != hex.EncodeToString(s1[:]) && thumbprint != hex.EncodeToString(s256[:]):
				return fmt.Errorf("server certificate does not match thumbprint %s", src.SslThumbprint)
			case cert != nil && !bytes.Equal(cert, raw[0]):
				return errors.New("server certificate is not the one given")
			}
			return nil
		},
	}
	return &http.Transport{
		TLSClientConfig:       config,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
	}
}

// tarMember reads through an OVA (a tar archive) to the named member.
func tarMember(r io.Reader, name string) (io.Reader, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no member %q in the archive", name)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the archive: %v", err)
		}
		if h.Name == name || path.Base(h.Name) == name {
			return tr, nil
		}
	}
}
