package main

// A streamOptimized VMDK encoder, as ESX uses to serve the disk device URLs
// of an export lease (ExportVm, VirtualMachineSnapshot.ExportSnapshot).
//
// Simulated because vcsim's NFC GET returns a disk's backing file as it
// is (the text descriptor), while real ESX streams the disk's content as a
// streamOptimized VMDK generated on the fly; clients (Nova's snapshot
// upload, ovftool, govc export.ovf) store those bytes as they come.
//
// Layout per VMware's Virtual Disk Format 5.0, written front to back with
// no seeking, so it can go straight onto an HTTP response:
//
//	header (gdOffset = GD_AT_END, compressAlgorithm = deflate, markers)
//	embedded descriptor (createType="streamOptimized"), padded to overhead
//	grains: {lba, size} + deflated 64 KiB grain, sector aligned;
//	        all-zero grains are skipped
//	grain tables, each behind a GT metadata marker (empty ones left out:
//	        their grain directory entry is 0)
//	grain directory behind a GD marker
//	footer marker, footer (the header with the real gdOffset), EOS marker
//
// govmomi's vmdk.StreamOptimizedWriter is not used: it seeks back to write
// its grain directory at the front and does not write markers.

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
)

const (
	sectorSize      = 512
	grainSectors    = 128 // 64 KiB grains, as ESX writes them
	grainBytes      = grainSectors * sectorSize
	gtesPerGT       = 512
	descriptorSecs  = 20
	overheadSectors = 128 // header and descriptor, padded to one grain

	sparseMagic    = 0x564d444b // "KDMV"
	gdAtEnd        = 0xffffffffffffffff
	flagNewline    = 1 << 0
	flagCompressed = 1 << 16
	flagMarkers    = 1 << 17
	compressZlib   = 1

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

// sparseHeader is SparseExtentHeader, 512 bytes little-endian on disk.
type sparseHeader struct {
	MagicNumber        uint32
	Version            uint32
	Flags              uint32
	Capacity           uint64
	GrainSize          uint64
	DescriptorOffset   uint64
	DescriptorSize     uint64
	NumGTEsPerGT       uint32
	RGDOffset          uint64
	GDOffset           uint64
	Overhead           uint64
	UncleanShutdown    byte
	SingleEndLineChar  byte
	NonEndLineChar     byte
	DoubleEndLineChar1 byte
	DoubleEndLineChar2 byte
	CompressAlgorithm  uint16
	Pad                [433]byte
}

// metadataMarker precedes grain tables, the grain directory, the footer
// and ends the stream (a whole sector; Size 0 tells it from a grain).
type metadataMarker struct {
	NumSectors uint64
	Size       uint32
	Type       uint32
	Pad        [496]byte
}

// streamOptimizedDescriptor is the embedded descriptor: what Glance's
// format inspector accepts (header fields, one extent, ddb lines only).
func streamOptimizedDescriptor(sectors uint64, adapterType string) string {
	cylinders := sectors / (255 * 63)
	if cylinders > 65535 {
		cylinders = 65535
	}
	if adapterType == "" {
		adapterType = "lsilogic"
	}
	return strings.Join([]string{
		"# Disk DescriptorFile",
		"version=1",
		fmt.Sprintf("CID=%08x", rand.Uint32()),
		"parentCID=ffffffff",
		`createType="streamOptimized"`,
		"",
		"# Extent description",
		fmt.Sprintf(`RW %d SPARSE "disk.vmdk"`, sectors),
		"",
		"# The Disk Data Base",
		"#DDB",
		"",
		fmt.Sprintf(`ddb.adapterType = "%s"`, adapterType),
		fmt.Sprintf(`ddb.geometry.cylinders = "%d"`, cylinders),
		`ddb.geometry.heads = "255"`,
		`ddb.geometry.sectors = "63"`,
		`ddb.virtualHWVersion = "4"`,
		"",
	}, "\n")
}

// streamOptimizedWriter counts what it has written, in bytes.
type streamOptimizedWriter struct {
	w   *bufio.Writer
	pos uint64
	err error
}

func (s *streamOptimizedWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	n, err := s.w.Write(b)
	s.pos += uint64(n)
	s.err = err
}

func (s *streamOptimizedWriter) writeStruct(v any) {
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, v)
	s.write(buf.Bytes())
}

// padToSector writes zeros up to the next sector boundary.
func (s *streamOptimizedWriter) padToSector() {
	if rem := s.pos % sectorSize; rem != 0 {
		s.write(make([]byte, sectorSize-rem))
	}
}

func (s *streamOptimizedWriter) sector() uint64 { return s.pos / sectorSize }

func (s *streamOptimizedWriter) marker(numSectors uint64, kind uint32) {
	s.writeStruct(&metadataMarker{NumSectors: numSectors, Type: kind})
}

// uint32Table writes entries little-endian, padded to whole sectors.
func (s *streamOptimizedWriter) uint32Table(entries []uint32) {
	buf := make([]byte, 4*len(entries))
	for i, e := range entries {
		binary.LittleEndian.PutUint32(buf[4*i:], e)
	}
	s.write(buf)
	s.padToSector()
}

// StreamOptimizedStats says what an encoding wrote.
type StreamOptimizedStats struct {
	Bytes      uint64 // the whole stream
	Grains     int    // grains written (non-zero)
	ZeroGrains int    // grains skipped as all zeros
}

// writeStreamOptimized encodes a disk of capacity bytes (rounded up to
// whole sectors) whose content src gives, front to back, as a
// streamOptimized VMDK on w. A src shorter than capacity reads as zeros
// beyond its end; bytes beyond capacity are not read.
func writeStreamOptimized(w io.Writer, src io.Reader, capacity int64, adapterType string) (StreamOptimizedStats, error) {
	var stats StreamOptimizedStats
	if capacity < 0 {
		return stats, fmt.Errorf("negative capacity %d", capacity)
	}
	sectors := (uint64(capacity) + sectorSize - 1) / sectorSize
	grains := (sectors + grainSectors - 1) / grainSectors
	tables := (grains + gtesPerGT - 1) / gtesPerGT

	out := &streamOptimizedWriter{w: bufio.NewWriterSize(w, 256*1024)}
	header := sparseHeader{
		MagicNumber:        sparseMagic,
		Version:            3,
		Flags:              flagNewline | flagCompressed | flagMarkers,
		Capacity:           sectors,
		GrainSize:          grainSectors,
		DescriptorOffset:   1,
		DescriptorSize:     descriptorSecs,
		NumGTEsPerGT:       gtesPerGT,
		GDOffset:           gdAtEnd,
		Overhead:           overheadSectors,
		SingleEndLineChar:  '\n',
		NonEndLineChar:     ' ',
		DoubleEndLineChar1: '\r',
		DoubleEndLineChar2: '\n',
		CompressAlgorithm:  compressZlib,
	}
	out.writeStruct(&header)
	desc := []byte(streamOptimizedDescriptor(sectors, adapterType))
	if len(desc) > descriptorSecs*sectorSize {
		return stats, fmt.Errorf("descriptor of %d bytes does not fit", len(desc))
	}
	out.write(desc)
	out.write(make([]byte, overheadSectors*sectorSize-int(out.pos)))

	gt := make([]uint32, tables*gtesPerGT)
	raw := make([]byte, grainBytes)
	zero := make([]byte, grainBytes)
	var deflated bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&deflated, zlib.BestSpeed)
	remaining := int64(sectors * sectorSize)
	srcDone := false
	for g := uint64(0); g < grains; g++ {
		want := int64(grainBytes)
		if remaining < want {
			want = remaining
		}
		remaining -= want
		n := 0
		if !srcDone {
			var err error
			n, err = io.ReadFull(src, raw[:want])
			switch err {
			case nil:
			case io.EOF, io.ErrUnexpectedEOF:
				srcDone = true
			default:
				return stats, fmt.Errorf("read disk at byte %d: %w", g*grainBytes+uint64(n), err)
			}
		}
		clear(raw[n:]) // beyond the source, and the last grain's tail
		if bytes.Equal(raw, zero) {
			stats.ZeroGrains++
			continue
		}
		deflated.Reset()
		zw.Reset(&deflated)
		_, _ = zw.Write(raw)
		if err := zw.Close(); err != nil {
			return stats, err
		}
		gt[g] = uint32(out.sector())
		out.writeStruct(&struct {
			LBA  uint64
			Size uint32
		}{g * grainSectors, uint32(deflated.Len())})
		out.write(deflated.Bytes())
		out.padToSector()
		stats.Grains++
		if out.err != nil {
			return stats, out.err
		}
	}

	gd := make([]uint32, tables)
	gtSectors := uint64(gtesPerGT * 4 / sectorSize)
	for t := uint64(0); t < tables; t++ {
		entries := gt[t*gtesPerGT : (t+1)*gtesPerGT]
		if !slices.ContainsFunc(entries, func(e uint32) bool { return e != 0 }) {
			continue // no grain in this table: GD entry 0
		}
		out.marker(gtSectors, markerGT)
		gd[t] = uint32(out.sector())
		out.uint32Table(entries)
	}
	out.marker((uint64(len(gd))*4+sectorSize-1)/sectorSize, markerGD)
	gdOffset := out.sector()
	out.uint32Table(gd)

	out.marker(1, markerFooter)
	header.GDOffset = gdOffset
	out.writeStruct(&header)
	out.marker(0, markerEOS)
	if out.err == nil {
		out.err = out.w.Flush()
	}
	stats.Bytes = out.pos
	return stats, out.err
}
