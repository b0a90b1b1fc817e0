package recorder

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// playlist renders an HLS media playlist (RFC 8216) of a rendition's stored
// segments: fMP4 with EXT-X-MAP, EXT-X-PROGRAM-DATE-TIME on every segment (so
// players and the UI can align renditions and show wall-clock time), an EVENT
// playlist while live and a VOD playlist ending with EXT-X-ENDLIST when done.
func playlist(start time.Time, r *RenditionInfo, done bool) []byte {
	var b strings.Builder
	target := 1
	for _, s := range r.SegmentList {
		// EXTINF rounded to the nearest integer must not exceed the target (§4.3.3.1).
		target = max(target, int(math.Round(float64(s.Duration)/float64(r.Timescale))))
	}
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	b.WriteString("#EXT-X-MEDIA-SEQUENCE:0\n")
	if done {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	} else {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	}
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	mapped := 0
	if len(r.SegmentList) > 0 {
		mapped = r.SegmentList[0].Init
	}
	fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", initName(mapped))
	for _, s := range r.SegmentList {
		// New video parameters come with a new init segment (§4.3.2.5), and are a
		// discontinuity: their encoding parameters changed (§4.3.2.3).
		remap := s.Init != mapped
		if s.Discontinuity || remap {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if remap {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", initName(s.Init))
			mapped = s.Init
		}
		at := start.Add(time.Duration(float64(s.Start) / float64(r.Timescale) * float64(time.Second)))
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", at.UTC().Format("2006-01-02T15:04:05.000Z"))
		if s.Lost {
			// RFC 8216bis §4.4.4.7: players skip it and keep the timeline; the
			// URI must still be there (it answers 404).
			b.WriteString("#EXT-X-GAP\n")
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n%s\n", float64(s.Duration)/float64(r.Timescale), segmentFile(s.N))
	}
	if done {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return []byte(b.String())
}
