package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// DownloadPart is one stored object of a download, in order.
type DownloadPart struct {
	Key  string
	Size int64
}

// Download describes one MP4 file of a whole rendition, to be streamed as Header
// followed by every part. It is a fragmented MP4 that players open as a file:
// the header is the rendition's init segment with the total duration filled in
// (mvhd, and mehd in mvex, ISO/IEC 14496-12 §8.8.2) and a segment index (sidx,
// §8.16.3) so they can seek without reading the file.
type Download struct {
	Name   string // suggested file name
	Header []byte
	Parts  []DownloadPart
	Size   int64 // total bytes
	ETag   string
	// Complete is false while the recording is still in progress.
	Complete bool
}

var errBadInit = errors.New("malformed init segment")

// buildDownload assembles the download of rendition info, whose init segment is
// init and whose objects live under prefix.
func buildDownload(prefix string, info *RenditionInfo, init []byte) (*Download, error) {
	segs := keptSegments(info.SegmentList) // lost ones have no object
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: no stored segments", ErrNotFound)
	}
	last := segs[len(segs)-1]
	totalTicks := last.Start + last.Duration
	ms := uint64(math.Round(float64(totalTicks) / float64(info.Timescale) * 1000))
	head, err := patchInit(init, ms)
	if err != nil {
		return nil, err
	}
	head = append(head, sidx(info, segs)...)
	d := &Download{Header: head, Size: int64(len(head))}
	for _, s := range segs {
		d.Parts = append(d.Parts, DownloadPart{Key: prefix + info.Dir + segmentFile(s.N), Size: s.Size})
		d.Size += s.Size
	}
	return d, nil
}

// patchInit returns a copy of an init segment (ftyp, moov) with the movie
// duration set to ms (mvhd timescale 1000, as mediacommon writes it) and a mehd
// box announcing the fragments' total duration.
func patchInit(init []byte, ms uint64) ([]byte, error) {
	out := make([]byte, 0, len(init)+16)
	for b := init; len(b) > 0; {
		size, typ, err := boxHeader(b)
		if err != nil {
			return nil, err
		}
		box := b[:size]
		b = b[size:]
		if typ != "moov" {
			out = append(out, box...)
			continue
		}
		moov, err := patchMoov(box, ms)
		if err != nil {
			return nil, err
		}
		out = append(out, moov...)
	}
	return out, nil
}

func patchMoov(moov []byte, ms uint64) ([]byte, error) {
	out := append([]byte(nil), moov[:8]...)
	for b := moov[8:]; len(b) > 0; {
		size, typ, err := boxHeader(b)
		if err != nil {
			return nil, err
		}
		box := append([]byte(nil), b[:size]...)
		b = b[size:]
		switch typ {
		case "mvhd":
			if err := setMvhdDuration(box, ms); err != nil {
				return nil, err
			}
		case "mvex":
			mehd := make([]byte, 20)
			binary.BigEndian.PutUint32(mehd, 20)
			copy(mehd[4:], "mehd")
			mehd[8] = 1 // version 1: 64-bit fragment_duration
			binary.BigEndian.PutUint64(mehd[12:], ms)
			box = append(append(append([]byte(nil), box[:8]...), mehd...), box[8:]...)
			binary.BigEndian.PutUint32(box, uint32(len(box)))
		}
		out = append(out, box...)
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)))
	return out, nil
}

func setMvhdDuration(box []byte, ms uint64) error {
	if len(box) < 36 {
		return errBadInit
	}
	if box[8] == 1 { // version 1: 64-bit times
		binary.BigEndian.PutUint64(box[32:], ms)
		return nil
	}
	binary.BigEndian.PutUint32(box[24:], uint32(min(ms, math.MaxUint32)))
	return nil
}

// boxHeader returns the size and type of the box at the start of b.
func boxHeader(b []byte) (int, string, error) {
	if len(b) < 8 {
		return 0, "", errBadInit
	}
	size := int(binary.BigEndian.Uint32(b))
	if size < 8 || size > len(b) {
		return 0, "", fmt.Errorf("%w: box size %d of %d bytes", errBadInit, size, len(b))
	}
	return size, string(b[4:8]), nil
}

// sidx returns a segment index box referencing every stored segment (segs) as a
// subsegment that starts with a keyframe of the primary track.
func sidx(info *RenditionInfo, segs []segmentRecord) []byte {
	n := len(segs)
	b := make([]byte, 0, 40+12*n)
	b = binary.BigEndian.AppendUint32(b, uint32(40+12*n))
	b = append(b, "sidx"...)
	b = append(b, 1, 0, 0, 0) // version 1, flags
	b = binary.BigEndian.AppendUint32(b, uint32(info.PrimaryID))
	b = binary.BigEndian.AppendUint32(b, uint32(info.Timescale))
	b = binary.BigEndian.AppendUint64(b, uint64(segs[0].Start))
	b = binary.BigEndian.AppendUint64(b, 0) // first_offset: the first moof follows
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for i, s := range segs {
		d := s.Duration
		if i+1 < n { // keep the index contiguous across lost segments
			d = segs[i+1].Start - s.Start
		}
		b = binary.BigEndian.AppendUint32(b, uint32(s.Size)&0x7fffffff)
		b = binary.BigEndian.AppendUint32(b, uint32(d))
		b = binary.BigEndian.AppendUint32(b, 0x90000000) // starts_with_SAP, SAP type 1
	}
	return b
}
