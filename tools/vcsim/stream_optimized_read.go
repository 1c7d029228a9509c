package main

// A streamOptimized VMDK decoder, for the disks that clients upload into an
// import lease (nfc_import.go) or have the host pull (nfc_pull.go).
//
// ESX accepts nothing else on an import lease's disk URL and writes the
// disk as it decodes, so this reads front to back as the bytes come off
// the wire, walking the markers from the header's overhead onward, and
// never seeks back: the grain directory and tables are not needed to place
// a grain, its marker says where it goes. Two layouts are in use:
//
//   - ESXi, ovftool, stream_optimized.go and vcdriver's encoder: gdOffset
//     is GD_AT_END; grains, grain tables and the grain directory behind
//     their markers, a footer (the header with the real gdOffset) and an
//     end-of-stream marker. A stream without that marker was cut short.
//   - qemu-img: gdOffset points into the overhead, where the grain
//     directory and tables are, filled in; then the grains, and nothing
//     after them (sometimes zero sectors, which read as an end-of-stream
//     marker). Its grain tables say which grains must come, which is how
//     a stream cut at a grain boundary is told from a whole one.
//
// The disk goes to a streamTarget (a sparse flat extent): zero data is
// never written, in blocks of dataBlock bytes, so the file stays as thin
// as the data.

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	maxGrainSectors  = 2048     // 1 MiB grains; VMware and qemu-img write 128
	maxDiskSectors   = 1 << 37  // 64 TiB, above VMDK's 62 TB limit
	maxOverheadBytes = 64 << 20 // metadata kept to check qemu-img's grain tables
	dataBlock        = 4096     // zeros are skipped in blocks of this size
)

// streamTarget receives a decoded disk: its data (never zeros) where it
// belongs, then its size.
type streamTarget interface {
	io.WriterAt
	Truncate(size int64) error
}

// targetError is a failure of the target (disk full, I/O), not of the
// stream.
type targetError struct{ err error }

func (e *targetError) Error() string { return e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// streamReadStats says what a decoding found.
type streamReadStats struct {
	Capacity    int64  // bytes
	Grains      int    // grains in the stream
	ZeroGrains  int    // of which inflated to zeros
	DataBytes   int64  // bytes written to the target
	StreamBytes int64  // bytes consumed, up to the end of the stream
	Descriptor  string // the embedded descriptor
	GDAtEnd     bool   // ESXi's layout (else qemu-img's)
}

// readStreamOptimized decodes the streamOptimized VMDK src into dst. It
// stops at the end-of-stream marker (or at EOF, for qemu-img's layout),
// leaving anything after it unread. Errors say what is wrong with the
// stream in one line; the target's own are *targetError.
func readStreamOptimized(src io.Reader, dst streamTarget) (streamReadStats, error) {
	d := &streamDecoder{r: bufio.NewReaderSize(src, 1<<20), dst: dst}
	err := d.run()
	d.stats.StreamBytes = d.pos
	return d.stats, err
}

type streamDecoder struct {
	r   *bufio.Reader
	dst streamTarget
	pos int64 // bytes consumed

	header     sparseHeader
	sectors    uint64 // capacity, once known
	grainBytes int
	footer     bool
	maxLBA     uint64 // highest grain seen, checked once the capacity is known
	anyGrain   bool

	// qemu-img's layout: marker sector of each grain its tables list, 0
	// once seen (nil if the tables could not be read).
	expect  []uint32
	missing int

	compressed, grain []byte
	zr                io.ReadCloser
	stats             streamReadStats
}

func (d *streamDecoder) readFull(b []byte, what string) error {
	n, err := io.ReadFull(d.r, b)
	d.pos += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated: the stream ends inside %s at byte %d", what, d.pos)
	}
	return err
}

func (d *streamDecoder) skip(n int64, what string) error {
	m, err := io.CopyN(io.Discard, d.r, n)
	d.pos += m
	if err == io.EOF {
		return fmt.Errorf("truncated: the stream ends inside %s at byte %d", what, d.pos)
	}
	return err
}

func (d *streamDecoder) run() error {
	var raw [sectorSize]byte
	if err := d.readFull(raw[:], "the header"); err != nil {
		return err
	}
	h := &d.header
	_ = binary.Read(bytes.NewReader(raw[:]), binary.LittleEndian, h)
	switch {
	case h.MagicNumber != sparseMagic:
		if bytes.HasPrefix(raw[:], []byte("# Disk DescriptorFile")) {
			return errors.New("not a streamOptimized VMDK: a text descriptor")
		}
		return fmt.Errorf("not a streamOptimized VMDK: bad magic %#08x", h.MagicNumber)
	case h.Flags&(flagCompressed|flagMarkers) != flagCompressed|flagMarkers:
		return fmt.Errorf("not a streamOptimized VMDK: header flags %#x lack compressed grains with markers", h.Flags)
	case h.CompressAlgorithm != compressZlib:
		return fmt.Errorf("unsupported compression algorithm %d", h.CompressAlgorithm)
	case sizesError(h) != nil:
		return sizesError(h)
	case h.Overhead < 1 || h.Overhead > maxDiskSectors:
		return fmt.Errorf("bad overhead of %d sectors", h.Overhead)
	}
	d.sectors = h.Capacity
	d.grainBytes = int(h.GrainSize) * sectorSize
	d.grain = make([]byte, d.grainBytes+1) // one more: a grain that inflates too far
	d.stats.GDAtEnd = h.GDOffset == gdAtEnd

	// The metadata area: the descriptor, and qemu-img's grain tables.
	rest := int64(h.Overhead-1) * sectorSize
	if rest+sectorSize > maxOverheadBytes {
		if err := d.skip(rest, "the metadata area"); err != nil {
			return err
		}
	} else {
		meta := make([]byte, sectorSize+rest)
		copy(meta, raw[:])
		if err := d.readFull(meta[sectorSize:], "the metadata area"); err != nil {
			return err
		}
		d.stats.Descriptor = embeddedDescriptor(meta, h)
		if !d.stats.GDAtEnd {
			d.expectGrains(meta)
		}
	}
	return d.markers()
}

// sizesError says what is wrong with a sparse header's grain size or
// capacity (any hosted sparse VMDK: streamOptimized or monolithicSparse).
func sizesError(h *sparseHeader) error {
	switch {
	case h.GrainSize < 8 || h.GrainSize > maxGrainSectors || h.GrainSize&(h.GrainSize-1) != 0:
		return fmt.Errorf("bad grain size of %d sectors", h.GrainSize)
	case h.Capacity > maxDiskSectors:
		return fmt.Errorf("capacity of %d sectors is too large", h.Capacity)
	}
	return nil
}

// embeddedDescriptor is the descriptor's text, if it is in meta.
func embeddedDescriptor(meta []byte, h *sparseHeader) string {
	start, size := h.DescriptorOffset*sectorSize, h.DescriptorSize*sectorSize
	if h.DescriptorOffset == 0 || start >= uint64(len(meta)) || size > uint64(len(meta))-start {
		return ""
	}
	text := meta[start : start+size]
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	return string(text)
}

// expectGrains reads qemu-img's grain directory and tables from the
// metadata area into d.expect (left nil if they are not all there).
func (d *streamDecoder) expectGrains(meta []byte) {
	h := &d.header
	gtes := uint64(h.NumGTEsPerGT)
	if d.sectors == 0 || gtes == 0 || gtes > 1<<16 {
		return
	}
	grains := (d.sectors + h.GrainSize - 1) / h.GrainSize
	tables := (grains + gtes - 1) / gtes
	gd := h.GDOffset * sectorSize
	if h.GDOffset >= h.Overhead || gd+4*tables > uint64(len(meta)) {
		return
	}
	expect := make([]uint32, grains)
	missing := 0
	for t := uint64(0); t < tables; t++ {
		gt := uint64(binary.LittleEndian.Uint32(meta[gd+4*t:])) * sectorSize
		if gt == 0 {
			continue
		}
		if gt+4*gtes > uint64(len(meta)) {
			return
		}
		for i := uint64(0); i < gtes && t*gtes+i < grains; i++ {
			// Entries inside the metadata area (0: none; 1: a zeroed
			// grain, in some VMDK variants) are not grains in the stream.
			if e := binary.LittleEndian.Uint32(meta[gt+4*i:]); uint64(e) >= h.Overhead {
				expect[t*gtes+i] = e
				missing++
			}
		}
	}
	d.expect, d.missing = expect, missing
}

// markers walks the stream after the metadata area.
func (d *streamDecoder) markers() error {
	var marker [12]byte
	for {
		at := d.pos
		n, err := io.ReadFull(d.r, marker[:])
		d.pos += int64(n)
		if n == 0 && err == io.EOF {
			return d.end(false)
		}
		if err == io.ErrUnexpectedEOF {
			return fmt.Errorf("truncated: the stream ends inside a marker at byte %d", d.pos)
		}
		if err != nil {
			return err
		}
		lba := binary.LittleEndian.Uint64(marker[0:8])
		size := binary.LittleEndian.Uint32(marker[8:12])
		if size != 0 {
			if err := d.grainAt(at, lba, size); err != nil {
				return err
			}
			continue
		}

		// A metadata marker: numSectors, size 0, type, padded to a sector.
		var rest [sectorSize - 12]byte
		if err := d.readFull(rest[:], "a marker"); err != nil {
			return err
		}
		switch kind := binary.LittleEndian.Uint32(rest[0:4]); kind {
		case markerEOS:
			return d.end(true)
		case markerGT, markerGD:
			if lba > maxDiskSectors {
				return fmt.Errorf("metadata marker at byte %d claims %d sectors", at, lba)
			}
			if err := d.skip(int64(lba)*sectorSize, "a grain table or directory"); err != nil {
				return err
			}
		case markerFooter:
			if err := d.readFooter(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown metadata marker type %d at byte %d", kind, at)
		}
	}
}

// grainAt reads and places the grain whose marker began at byte at.
func (d *streamDecoder) grainAt(at int64, lba uint64, size uint32) error {
	if int(size) > 2*d.grainBytes+4096 {
		return fmt.Errorf("grain marker at byte %d claims %d compressed bytes for a %d byte grain", at, size, d.grainBytes)
	}
	if cap(d.compressed) < int(size) {
		d.compressed = make([]byte, size)
	}
	comp := d.compressed[:size]
	if err := d.readFull(comp, "a grain"); err != nil {
		return err
	}
	if pad := (12 + int64(size)) % sectorSize; pad != 0 {
		if err := d.skip(sectorSize-pad, "a grain's padding"); err != nil {
			return err
		}
	}
	data, err := d.inflate(comp)
	if err != nil {
		return fmt.Errorf("grain at byte %d (lba %d) does not inflate: %v", at, lba, err)
	}
	limit := uint64(maxDiskSectors)
	if d.sectors != 0 {
		limit = d.sectors
	}
	if lba >= limit {
		return fmt.Errorf("grain at byte %d (lba %d) is beyond the disk's capacity of %d sectors", at, lba, limit)
	}
	d.stats.Grains++
	d.anyGrain = true
	d.maxLBA = max(d.maxLBA, lba)
	off := int64(lba) * sectorSize
	if room := int64(limit)*sectorSize - off; int64(len(data)) > room {
		data = data[:room] // the last grain of a disk that is not whole grains
	}
	if d.expect != nil && lba%d.header.GrainSize == 0 {
		if g := lba / d.header.GrainSize; g < uint64(len(d.expect)) && d.expect[g] != 0 && int64(d.expect[g])*sectorSize == at {
			d.expect[g] = 0
			d.missing--
		}
	}
	return d.write(off, data)
}

// inflate returns the grain's data, at most a grain.
func (d *streamDecoder) inflate(comp []byte) ([]byte, error) {
	var err error
	if d.zr == nil {
		d.zr, err = zlib.NewReader(bytes.NewReader(comp))
	} else {
		err = d.zr.(zlib.Resetter).Reset(bytes.NewReader(comp), nil)
	}
	if err != nil {
		return nil, err
	}
	n := 0
	for n < len(d.grain) {
		m, err := d.zr.Read(d.grain[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if n > d.grainBytes {
		return nil, fmt.Errorf("inflates to more than a grain of %d bytes", d.grainBytes)
	}
	return d.grain[:n], nil
}

// write writes data at off, skipping its all-zero blocks.
func (d *streamDecoder) write(off int64, data []byte) error {
	start, wrote := -1, false
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		n, err := d.dst.WriteAt(data[start:end], off+int64(start))
		d.stats.DataBytes += int64(n)
		start, wrote = -1, true
		if err != nil {
			return &targetError{err}
		}
		return nil
	}
	for i := 0; i < len(data); i += dataBlock {
		end := min(i+dataBlock, len(data))
		if bytes.Equal(data[i:end], zeroGrain[:end-i]) {
			if err := flush(i); err != nil {
				return err
			}
		} else if start < 0 {
			start = i
		}
	}
	if err := flush(len(data)); err != nil {
		return err
	}
	if !wrote {
		d.stats.ZeroGrains++
	}
	return nil
}

func (d *streamDecoder) readFooter() error {
	var raw [sectorSize]byte
	if err := d.readFull(raw[:], "the footer"); err != nil {
		return err
	}
	var f sparseHeader
	_ = binary.Read(bytes.NewReader(raw[:]), binary.LittleEndian, &f)
	if f.MagicNumber != sparseMagic {
		return fmt.Errorf("bad footer magic %#08x at byte %d", f.MagicNumber, d.pos-sectorSize)
	}
	if d.sectors == 0 {
		if f.Capacity > maxDiskSectors {
			return fmt.Errorf("footer capacity of %d sectors is too large", f.Capacity)
		}
		d.sectors = f.Capacity
	}
	d.footer = true
	return nil
}

// end checks that the stream is whole and sizes the target.
func (d *streamDecoder) end(eos bool) error {
	switch {
	case d.stats.GDAtEnd && !eos:
		return fmt.Errorf("truncated: the stream ends at byte %d without an end-of-stream marker", d.pos)
	case d.missing > 0:
		first := 0
		for d.expect[first] == 0 {
			first++
		}
		return fmt.Errorf("truncated: %d grains the grain tables list are missing (the first at lba %d), the stream ends at byte %d",
			d.missing, uint64(first)*d.header.GrainSize, d.pos)
	case d.sectors == 0:
		return errors.New("no capacity: the header says 0 and no footer gives one")
	case d.anyGrain && d.maxLBA >= d.sectors:
		return fmt.Errorf("grain at lba %d is beyond the disk's capacity of %d sectors", d.maxLBA, d.sectors)
	}
	d.stats.Capacity = int64(d.sectors) * sectorSize
	if err := d.dst.Truncate(d.stats.Capacity); err != nil {
		return &targetError{err}
	}
	return nil
}
