package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// rawDisk is a disk image's content, with random data, text-like data and
// holes (whole zero grains, and zero blocks inside grains).
func rawDisk(size int64, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	raw := make([]byte, size)
	words := []string{"vcsim ", "import ", "thin ", "disk ", "grain ", "lease ", "\n"}
	for off := int64(0); off < size; off += grainBytes {
		end := min(off+grainBytes, size)
		switch (off / grainBytes) % 5 {
		case 0: // random, then a zero 4 KiB block inside the grain
			for i := off; i < end; i++ {
				raw[i] = byte(r.Uint32())
			}
			clear(raw[min(off+8192, end):min(off+12288, end)])
		case 1: // text
			var b strings.Builder
			for int64(b.Len()) < end-off {
				b.WriteString(words[r.IntN(len(words))])
			}
			copy(raw[off:end], b.String())
		case 2, 4: // a hole
		case 3: // a few bytes in a zero grain
			raw[(off+end)/2] = 0x5a
		}
	}
	return raw
}

// dataBytes is how much of raw is not zero, in blocks of dataBlock.
func dataBytes(raw []byte) int64 {
	var n int64
	for i := 0; i < len(raw); i += dataBlock {
		end := min(i+dataBlock, len(raw))
		if !bytes.Equal(raw[i:end], zeroGrain[:end-i]) {
			n += int64(end - i)
		}
	}
	return n
}

// dataGrains counts the 64 KiB grains of raw that are not all zeros.
func dataGrains(raw []byte) int {
	n := 0
	for i := 0; i < len(raw); i += 64 << 10 {
		end := min(i+64<<10, len(raw))
		if !bytes.Equal(raw[i:end], zeroGrain[:end-i]) {
			n++
		}
	}
	return n
}

// qemuStreamOptimized writes raw and converts it with qemu-img.
func qemuStreamOptimized(t *testing.T, raw []byte) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(src, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "disk.vmdk")
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, out)
	return out
}

// decodeTo decodes stream into a new flat file.
func decodeTo(t *testing.T, stream []byte) (string, streamReadStats, error) {
	t.Helper()
	flat := filepath.Join(t.TempDir(), "disk-flat.vmdk")
	f, err := os.Create(flat)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stats, err := readStreamOptimized(bytes.NewReader(stream), f)
	return flat, stats, err
}

// checkThin checks that a flat extent holds want (the raw disk, padded
// with zeros to capacity) and is allocated no more than its data.
func checkThin(t *testing.T, flat string, want []byte, capacity int64) {
	t.Helper()
	got, err := os.ReadFile(flat)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != capacity {
		t.Fatalf("flat extent is %d bytes, want the capacity, %d", len(got), capacity)
	}
	if !bytes.Equal(got[:len(want)], want) || !bytes.Equal(got[len(want):], make([]byte, capacity-int64(len(want)))) {
		t.Fatal("flat extent differs from the raw disk")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(flat, &st); err != nil {
		t.Fatal(err)
	}
	data := dataBytes(want)
	if allocated := st.Blocks * 512; allocated > data+64<<10 {
		t.Fatalf("flat extent has %d bytes allocated for %d bytes of data: not thin", allocated, data)
	}
}

func TestReadStreamOptimizedFromQemuImg(t *testing.T) {
	cases := []struct {
		name string
		size int64
	}{
		{"whole grains", 3 << 20},
		{"not whole grains", 3<<20 + 5*sectorSize},
		{"not whole sectors", 1<<20 + 100},
		{"one sector short of a grain", grainBytes - sectorSize},
		{"two grain tables", 40 << 20},
		{"all zeros", 4 << 20},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := rawDisk(c.size, uint64(i))
			if c.name == "all zeros" {
				raw = make([]byte, c.size)
			}
			if c.name == "two grain tables" {
				clear(raw[grainBytes : len(raw)-grainBytes]) // data at both ends only
			}
			path := qemuStreamOptimized(t, raw)
			stream, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "all zeros" && len(stream) != 64<<10 {
				t.Fatalf("qemu-img wrote %d bytes for an all-zero disk; the test expects only the metadata area", len(stream))
			}
			flat, stats, err := decodeTo(t, stream)
			if err != nil {
				t.Fatal(err)
			}
			capacity := (c.size + sectorSize - 1) / sectorSize * sectorSize
			if stats.Capacity != capacity || stats.GDAtEnd || stats.StreamBytes > int64(len(stream)) {
				t.Fatalf("stats %+v for a %d byte disk in %d bytes", stats, capacity, len(stream))
			}
			if !strings.Contains(stats.Descriptor, `createType="streamOptimized"`) {
				t.Fatalf("embedded descriptor: %q", stats.Descriptor)
			}
			checkThin(t, flat, raw, capacity)
			padded := append(raw, make([]byte, capacity-c.size)...)
			if stats.DataBytes != dataBytes(padded) {
				t.Fatalf("wrote %d bytes of data, the disk has %d", stats.DataBytes, dataBytes(padded))
			}
		})
	}
}

func TestReadStreamOptimizedFromOurEncoder(t *testing.T) {
	for _, size := range []int64{3 << 20, 1<<20 + 7*sectorSize, 40 << 20} {
		raw := rawDisk(size, 9)
		var stream bytes.Buffer
		if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), size, "lsilogic"); err != nil {
			t.Fatal(err)
		}
		flat, stats, err := decodeTo(t, stream.Bytes())
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if stats.Capacity != size || !stats.GDAtEnd || stats.StreamBytes != int64(stream.Len()) {
			t.Fatalf("stats %+v for a %d byte disk in %d bytes", stats, size, stream.Len())
		}
		checkThin(t, flat, raw, size)
	}
}

// A header that says capacity 0 leaves it to the footer.
func TestReadStreamOptimizedCapacityFromFooter(t *testing.T) {
	raw := rawDisk(2<<20, 3)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), int64(len(raw)), ""); err != nil {
		t.Fatal(err)
	}
	b := stream.Bytes()
	binary.LittleEndian.PutUint64(b[12:], 0) // header capacity
	flat, stats, err := decodeTo(t, b)
	if err != nil || stats.Capacity != int64(len(raw)) {
		t.Fatalf("%+v %v", stats, err)
	}
	checkThin(t, flat, raw, int64(len(raw)))
}

// A last grain that inflates past the capacity is cut there.
func TestReadStreamOptimizedCutsTheLastGrain(t *testing.T) {
	raw := rawDisk(2*grainBytes, 3)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), int64(len(raw)), ""); err != nil {
		t.Fatal(err)
	}
	b := stream.Bytes()
	capacity := int64(len(raw) - 2*sectorSize)
	binary.LittleEndian.PutUint64(b[12:], uint64(capacity/sectorSize))                     // header
	binary.LittleEndian.PutUint64(b[len(b)-2*sectorSize+12:], uint64(capacity/sectorSize)) // footer
	flat, stats, err := decodeTo(t, b)
	if err != nil || stats.Capacity != capacity {
		t.Fatalf("%+v %v", stats, err)
	}
	checkThin(t, flat, raw[:capacity], capacity)
}

func TestReadStreamOptimizedRefusesBadStreams(t *testing.T) {
	raw := rawDisk(1<<20, 5)
	var esx bytes.Buffer
	if _, err := writeStreamOptimized(&esx, bytes.NewReader(raw), int64(len(raw)), ""); err != nil {
		t.Fatal(err)
	}
	firstGrain := overheadSectors * sectorSize
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(esx.Bytes())) }
	cases := []struct {
		name, want string
		stream     []byte
	}{
		{"bad magic", "bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"text descriptor", "text descriptor", []byte("# Disk DescriptorFile\nversion=1\n" + strings.Repeat(" ", 600))},
		{"grain does not inflate", "does not inflate", edit(func(b []byte) []byte {
			copy(b[firstGrain+12:], "not zlib at all")
			return b
		})},
		{"grain beyond capacity", "beyond the disk's capacity", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[firstGrain:], uint64(len(raw)/sectorSize))
			return b
		})},
		{"no end-of-stream marker", "without an end-of-stream marker", edit(func(b []byte) []byte { return b[:len(b)-sectorSize] })},
		{"cut inside a grain", "inside a grain", edit(func(b []byte) []byte { return b[:firstGrain+1000] })},
		{"cut inside the header", "inside the header", edit(func(b []byte) []byte { return b[:100] })},
		{"unknown marker", "unknown metadata marker type 9", edit(func(b []byte) []byte {
			eos := b[len(b)-sectorSize:]
			binary.LittleEndian.PutUint32(eos[12:], 9)
			return b
		})},
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		qemu, _ := os.ReadFile(qemuStreamOptimized(t, raw))
		// Cut after the first grain: a whole stream as far as markers go,
		// but the grain tables list more.
		size := binary.LittleEndian.Uint32(qemu[64<<10+8:])
		end := 64<<10 + (12+int(size)+sectorSize-1)/sectorSize*sectorSize
		cases = append(cases, struct {
			name, want string
			stream     []byte
		}{"qemu-img stream cut at a grain", "grains the grain tables list are missing", qemu[:end]})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decodeTo(t, c.stream)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, c.want)
			}
		})
	}
}

// A grain that inflates to zeros is counted: it crossed the wire in vain.
func TestReadStreamOptimizedCountsZeroGrains(t *testing.T) {
	raw := rawDisk(grainBytes, 9)
	var stream bytes.Buffer
	if _, err := writeStreamOptimized(&stream, bytes.NewReader(raw), int64(len(raw)), ""); err != nil {
		t.Fatal(err)
	}
	b := stream.Bytes()
	var zeros bytes.Buffer
	zw := zlib.NewWriter(&zeros)
	if _, err := zw.Write(make([]byte, grainBytes)); err != nil {
		t.Fatal(err)
	}
	_ = zw.Close()
	at := overheadSectors * sectorSize // the first (only) grain's marker
	old := (12 + int(binary.LittleEndian.Uint32(b[at+8:])) + sectorSize - 1) / sectorSize * sectorSize
	grain := make([]byte, sectorSize) // the new marker and grain, padded
	binary.LittleEndian.PutUint64(grain, 0)
	binary.LittleEndian.PutUint32(grain[8:], uint32(zeros.Len()))
	copy(grain[12:], zeros.Bytes())
	b = append(append(b[:at:at], grain...), b[at+old:]...)
	_, stats, err := decodeTo(t, b)
	if err != nil || stats.Grains != 1 || stats.ZeroGrains != 1 || stats.DataBytes != 0 {
		t.Fatalf("%+v %v", stats, err)
	}
}
