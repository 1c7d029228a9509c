package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testDisk is a disk of capacity bytes whose source holds data written at
// the given grain indexes (plus a tail that ends mid-grain); the rest,
// and everything past the source, reads as zeros.
func testDisk(capacity int64, sourceLen int64, grains ...int64) (source, want []byte) {
	r := rand.New(rand.NewPCG(1, 2))
	source = make([]byte, sourceLen)
	for _, g := range grains {
		start := g * grainBytes
		end := min(start+grainBytes, sourceLen)
		for i := start; i < end; i++ {
			source[i] = byte(r.IntN(7)) // compressible, never all zero
		}
		source[start] = 0xa5
	}
	want = make([]byte, capacity)
	copy(want, source)
	return source, want
}

func encode(t *testing.T, source []byte, capacity int64) (string, StreamOptimizedStats) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.vmdk")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := writeStreamOptimized(f, bytes.NewReader(source), capacity, "lsilogic")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); uint64(fi.Size()) != stats.Bytes || fi.Size()%sectorSize != 0 {
		t.Fatalf("wrote %d bytes, stats say %d", fi.Size(), stats.Bytes)
	}
	return path, stats
}

func qemuImg(t *testing.T, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian: qemu-utils)")
	}
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
	return out
}

// qemuReadsAs has qemu-img, the independent oracle, vouch that vmdk is a
// valid streamOptimized VMDK of raw's size (info, check) whose disk is
// exactly raw's bytes (compare; not -s, which also compares allocation).
func qemuReadsAs(t *testing.T, vmdk, raw string) {
	t.Helper()
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		Specific    struct {
			Data struct {
				CreateType string `json:"create-type"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(qemuImg(t, "info", "--output=json", "-f", "vmdk", vmdk), &info); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "vmdk" || info.Specific.Data.CreateType != "streamOptimized" || info.VirtualSize != fi.Size() {
		t.Fatalf("qemu-img info: %+v, want a streamOptimized VMDK of %d bytes", info, fi.Size())
	}
	qemuImg(t, "check", "-f", "vmdk", vmdk)
	qemuImg(t, "compare", "-f", "raw", "-F", "vmdk", raw, vmdk)
}

func TestStreamOptimizedRoundTripsThroughQemuImg(t *testing.T) {
	cases := []struct {
		name      string
		capacity  int64
		sourceLen int64
		grains    []int64
	}{
		{"one grain", 1 << 20, 1 << 20, []int64{3}},
		{"short source reads as zeros", 4 << 20, 1<<20 + 4096, []int64{0, 15, 16}},
		{"capacity not a grain multiple", 1<<20 + 3*sectorSize, 1<<20 + 3*sectorSize, []int64{0, 16}},
		{"empty grain tables skipped", 100 << 20, 100 << 20, []int64{0, 1, 1000, 1599}},
		{"all zeros", 8 << 20, 0, nil},
		{"no source at all", 2 << 20, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			source, want := testDisk(c.capacity, c.sourceLen, c.grains...)
			path, stats := encode(t, source, c.capacity)
			if stats.Grains != len(c.grains) {
				t.Errorf("%d grains written, want %d", stats.Grains, len(c.grains))
			}

			raw := filepath.Join(t.TempDir(), "disk.raw")
			if err := os.WriteFile(raw, want, 0o644); err != nil {
				t.Fatal(err)
			}
			qemuReadsAs(t, path, raw)
		})
	}
}

// The driver's own reader (vcdriver.images.formats, standard library only)
// must convert what the simulator serves.
const pythonReader = `
import sys
from vcdriver.images import formats
data = open(sys.argv[1], 'rb').read()
flat = formats.open_flat(iter([data[i:i + 65536] for i in range(0, len(data), 65536)]),
                         'vmdk', vmware_disktype='streamOptimized', source_size=len(data))
with open(sys.argv[2], 'wb') as out:
    for chunk in flat:
        out.write(chunk)
`

func TestStreamOptimizedReadsThroughVcdriverFormats(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	repo, _ := filepath.Abs("../..")
	capacity := int64(40 << 20) // two grain tables
	source, want := testDisk(capacity, 33<<20, 0, 2, 511, 512, 513)
	path, _ := encode(t, source, capacity)
	raw := filepath.Join(t.TempDir(), "disk.raw")
	cmd := exec.Command(python, "-c", pythonReader, path, raw)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+repo)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vcdriver.images.formats: %v\n%s", err, out)
	}
	got, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
}

func TestStreamOptimizedDescriptorAndFooter(t *testing.T) {
	source, _ := testDisk(1<<20, 1<<20, 1)
	path, _ := encode(t, source, 1<<20)
	data, _ := os.ReadFile(path)
	desc := data[sectorSize : sectorSize*(1+descriptorSecs)]
	if !bytes.Contains(desc, []byte(`createType="streamOptimized"`)) ||
		!bytes.Contains(desc, []byte(`RW 2048 SPARSE "disk.vmdk"`)) {
		t.Fatalf("descriptor:\n%s", desc)
	}
	// Header says the GD is at the end; the footer (third sector from the
	// end, behind its marker) says where.
	footerMarker := data[len(data)-3*sectorSize:]
	if footerMarker[12] != markerFooter {
		t.Fatalf("no footer marker: % x", footerMarker[:16])
	}
	if !bytes.Equal(data[len(data)-sectorSize:], make([]byte, sectorSize)) {
		t.Fatal("does not end with an end-of-stream marker")
	}
	if !bytes.Equal(data[0:20], data[len(data)-2*sectorSize:len(data)-2*sectorSize+20]) ||
		bytes.Equal(data[56:64], data[len(data)-2*sectorSize+56:len(data)-2*sectorSize+64]) {
		t.Fatal("footer must repeat the header except for gdOffset")
	}
}
