package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// imageServer serves stream at /disk.vmdk to requests with the token.
func imageServer(t *testing.T, stream []byte, tls bool) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/disk.vmdk" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(stream)
	})
	srv := httptest.NewServer(h)
	if tls {
		srv = httptest.NewTLSServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// pull has the lease's disk pulled from u and returns the task's outcome.
func (f *importFixture) pull(t *testing.T, lease *nfc.Lease, src types.HttpNfcLeaseSourceFile) error {
	t.Helper()
	ctx := context.Background()
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	src.TargetDeviceId = info.DeviceUrl[0].ImportKey
	res, err := methods.HttpNfcLeasePullFromUrls_Task(ctx, f.c.Client, &types.HttpNfcLeasePullFromUrls_Task{
		This:  lease.Reference(),
		Files: []types.HttpNfcLeaseSourceFile{src},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = object.NewTask(f.c.Client, res.Returnval).WaitForResult(ctx, nil)
	return err
}

func TestPullFromUrlsWritesTheDisk(t *testing.T) {
	// pyVmomi sends the call only on a session of API 6.7 or later.
	f := newImportFixture(t, "-api-version", "8.0.3.0")
	if v := f.c.ServiceContent.About.ApiVersion; v != "8.0.3.0" {
		t.Fatalf("apiVersion %s", v)
	}
	if _, body := httpGet(t, f.inst.info.URL+"/vimServiceVersions.xml"); !bytes.Contains(body, []byte("<version>8.0.3.0</version>")) {
		t.Fatalf("vimServiceVersions.xml:\n%s", body)
	}
	capacity := int64(2<<20 + 1<<10)
	raw := rawDisk(capacity, 17)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), capacity, ""); err != nil {
		t.Fatal(err)
	}
	// An OVA holding the disk, for memberName.
	var ova bytes.Buffer
	tw := tar.NewWriter(&ova)
	_ = tw.WriteHeader(&tar.Header{Name: "image.ovf", Mode: 0o644, Size: 4})
	_, _ = tw.Write([]byte("<x/>"))
	_ = tw.WriteHeader(&tar.Header{Name: "image-disk1.vmdk", Mode: 0o644, Size: int64(stream.Len())})
	_, _ = tw.Write(stream.Bytes())
	_ = tw.Close()

	for _, c := range []string{"http", "https", "ova"} {
		t.Run(c, func(t *testing.T) {
			served := stream.Bytes()
			if c == "ova" {
				served = ova.Bytes()
			}
			srv := imageServer(t, served, c == "https")
			src := types.HttpNfcLeaseSourceFile{
				Url:         srv.URL + "/disk.vmdk?sig=abc",
				HttpHeaders: []types.KeyValue{{Key: "X-Auth-Token", Value: "s3cret"}},
				Size:        int64(len(served)),
			}
			switch c {
			case "https":
				sum := sha1.Sum(srv.Certificate().Raw)
				src.SslThumbprint = strings.ReplaceAll(strings.ToUpper(fmt.Sprintf("% x", sum[:])), " ", ":")
			case "ova":
				src.MemberName = "image-disk1.vmdk"
			}
			lease := f.importVM(t, "pulled-"+c, capacity)
			if err := f.pull(t, lease, src); err != nil {
				t.Fatal(err)
			}
			st := f.leaseStats(t, lease)
			f.checkDisk(t, st, raw, capacity)
			pulled := int64(len(served))
			if c == "ova" {
				pulled = int64(ova.Len()) - 1024 // read as far as the member's end, not the archive's
			}
			if st.BytesPulled != pulled || st.Files[0].BytesPulled != st.BytesPulled || st.BytesReceived != 0 ||
				st.Bytes != st.BytesPulled || st.BytesWritten != dataBytes(raw) || st.Files[0].State != "done" {
				t.Fatalf("stats after pulling %d bytes: %+v", len(served), st)
			}
			if err := lease.Complete(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPullFromUrlsFailures(t *testing.T) {
	f := newImportFixture(t)
	capacity := int64(1 << 20)
	raw := rawDisk(capacity, 19)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), capacity, ""); err != nil {
		t.Fatal(err)
	}
	srv := imageServer(t, stream.Bytes(), true)
	good := []types.KeyValue{{Key: "X-Auth-Token", Value: "s3cret"}}
	cases := []struct {
		name, want string
		src        types.HttpNfcLeaseSourceFile
		check      func(t *testing.T, fault types.BaseMethodFault)
	}{
		{"401", "GET " + srv.URL + "/disk.vmdk: HTTP 401 Unauthorized",
			types.HttpNfcLeaseSourceFile{Url: srv.URL + "/disk.vmdk?sig=secret", HttpHeaders: []types.KeyValue{{Key: "X-Auth-Token", Value: "wrong"}}},
			func(t *testing.T, fault types.BaseMethodFault) {
				if h, ok := fault.(*types.HttpFault); !ok || h.StatusCode != http.StatusUnauthorized {
					t.Fatalf("fault %#v, want an HttpFault with status 401", fault)
				}
			}},
		{"404", "HTTP 404", types.HttpNfcLeaseSourceFile{Url: srv.URL + "/nothing.vmdk", HttpHeaders: good}, nil},
		{"thumbprint", "does not match thumbprint",
			types.HttpNfcLeaseSourceFile{Url: srv.URL + "/disk.vmdk", HttpHeaders: good, SslThumbprint: "00:11:22"}, nil},
		{"not a vmdk", "not a streamOptimized VMDK",
			types.HttpNfcLeaseSourceFile{HttpHeaders: good}, nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "not a vmdk" {
				junk := imageServer(t, []byte(strings.Repeat("junk", 200)), false)
				c.src.Url = junk.URL + "/disk.vmdk"
				c.want = junk.URL + "/disk.vmdk: not a streamOptimized VMDK"
			}
			lease := f.importVM(t, fmt.Sprintf("failed-%d", i), capacity)
			err := f.pull(t, lease, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("pull: %v, want an error with %q", err, c.want)
			}
			var fault types.BaseMethodFault
			if te, ok := err.(interface{ Fault() types.BaseMethodFault }); ok {
				fault = te.Fault()
			}
			if c.check != nil {
				c.check(t, fault)
			}
			st := f.leaseStats(t, lease)
			if st.State != "ready" || st.Files[0].State != "error" || !strings.Contains(st.Files[0].Error, c.want) {
				t.Fatalf("stats after a failed pull: %+v", st)
			}
			if err := lease.Abort(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		})
	}

	// faults.go's task rules apply to pulls.
	(&faultFixture{f.testVCenter}).inject(t, `{"kind": "task_fail", "method": "HttpNfcLeasePullFromUrls_Task", "message": "pull refused (simulated)"}`)
	lease := f.importVM(t, "injected", capacity)
	if err := f.pull(t, lease, types.HttpNfcLeaseSourceFile{Url: srv.URL + "/disk.vmdk", HttpHeaders: good}); err == nil || err.Error() != "pull refused (simulated)" {
		t.Fatalf("pull with a task_fail rule: %v", err)
	}

	// A targetDeviceId the lease does not have fails the call.
	lease = f.importVM(t, "bad-device", capacity)
	if _, err := lease.Wait(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	_, err := methods.HttpNfcLeasePullFromUrls_Task(context.Background(), f.c.Client, &types.HttpNfcLeasePullFromUrls_Task{
		This:  lease.Reference(),
		Files: []types.HttpNfcLeaseSourceFile{{TargetDeviceId: "/nope/VirtualDisk:7", Url: srv.URL}},
	})
	if fault, ok := soap.ToSoapFault(err).VimFault().(types.InvalidArgument); !ok || fault.InvalidProperty != "files[0].targetDeviceId" {
		t.Fatalf("pull into a device the lease lacks: %v", err)
	}
}

// While a pull runs the lease stays callable; Abort stops the pull.
func TestPullIsStoppedByAbort(t *testing.T) {
	f := newImportFixture(t)
	ctx := context.Background()
	capacity := int64(2 << 20)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(rawDisk(capacity, 23)), capacity, ""); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(stream.Bytes()[:stream.Len()/2])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done() // the rest never comes
	}))
	t.Cleanup(srv.Close)

	lease := f.importVM(t, "stalled", capacity)
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := methods.HttpNfcLeasePullFromUrls_Task(ctx, f.c.Client, &types.HttpNfcLeasePullFromUrls_Task{
		This:  lease.Reference(),
		Files: []types.HttpNfcLeaseSourceFile{{TargetDeviceId: info.DeviceUrl[0].Key, Url: srv.URL + "/disk.vmdk"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := lease.Progress(quick, 50); err != nil {
		t.Fatalf("HttpNfcLeaseProgress during a pull: %v", err)
	}
	begin := time.Now()
	if err := lease.Abort(quick, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("Abort took %v", d)
	}
	_, err = object.NewTask(f.c.Client, res.Returnval).WaitForResult(quick, nil)
	if err == nil || !strings.Contains(err.Error(), "the lease ended") {
		t.Fatalf("pull after Abort: %v", err)
	}
}
