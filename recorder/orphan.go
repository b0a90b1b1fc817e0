package recorder

import (
	"bufio"
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"lectern/storage"
)

// finaliseOrphans finalises, from the store alone, the recordings the index
// says are in progress but that no uploader owns: their server died with its
// spool (a replaced machine). Their playlists list every stored segment; they
// become VOD playlists and meta.json is completed. Runs in the background.
func (r *Recorder) finaliseOrphans() {
	for _, m := range r.index.snapshot() {
		if m.Status != StatusRecording || r.liveUploader(m.ID) != nil {
			continue
		}
		r.recWG.Add(1)
		go func() {
			defer r.recWG.Done()
			if err := r.finaliseOrphan(r.hard, m); err != nil && r.hard.Err() == nil {
				r.log.Error("cannot finalise an interrupted recording from the store", "recording", m.ID, "err", err)
			}
		}()
	}
}

func (r *Recorder) finaliseOrphan(ctx context.Context, sum Meta) error {
	if cur, ok := r.index.get(sum.ID); !ok || cur.Status != StatusRecording {
		return nil // finalised meanwhile (a spooled recording that was resumed)
	}
	m, err := readMeta(ctx, r.cfg.Store, sum.Prefix+metaFile)
	if err != nil || m.Status != StatusRecording {
		return err
	}
	sizes := map[string]int64{}
	err = r.cfg.Store.List(ctx, m.Prefix, func(o storage.ObjectInfo) error {
		sizes[strings.TrimPrefix(o.Key, m.Prefix)] = o.Size
		return nil
	})
	if err != nil {
		return err
	}
	for i := range m.Renditions {
		rd := &m.Renditions[i]
		pl, err := r.readObject(ctx, m.Prefix+rd.Dir+playlistFile)
		if err != nil {
			return err
		}
		rd.SegmentList = parsePlaylist(string(pl), m.StartedAt, rd.Timescale, func(name string) int64 { return sizes[rd.Dir+name] })
	}
	m.Interrupted = true
	up := newUploader(r, "", nil, m)
	r.log.Info("finalising an interrupted recording from the store", "recording", m.ID)
	return up.finalise(ctx, upItem{kind: upFinal})
}

// parsePlaylist reads back the segments of a playlist written by playlist():
// their numbers, durations (EXTINF), starts (EXT-X-PROGRAM-DATE-TIME relative to
// start) and discontinuities; size gives each stored file's size.
func parsePlaylist(pl string, start time.Time, timescale int64, size func(string) int64) []segmentRecord {
	var out []segmentRecord
	var cur segmentRecord
	init := 0      // the init segment of the segments from here on (EXT-X-MAP)
	remap := false // an EXT-X-MAP before the next segment
	sc := bufio.NewScanner(strings.NewReader(pl))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:URI="):
			name := strings.Trim(strings.TrimPrefix(line, "#EXT-X-MAP:URI="), `"`)
			init, remap = 0, true
			if k, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "init-"), ".mp4")); err == nil && k > 0 {
				init = k
			}
		case line == "#EXT-X-DISCONTINUITY":
			cur.Discontinuity = true
		case line == "#EXT-X-GAP":
			cur.Lost = true
		case strings.HasPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:"):
			if t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:")); err == nil {
				cur.Start = int64(math.Round(t.Sub(start).Seconds() * float64(timescale)))
			}
		case strings.HasPrefix(line, "#EXTINF:"):
			d, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ","), 64)
			cur.Duration = int64(math.Round(d * float64(timescale)))
		case strings.HasPrefix(line, "seg-") && strings.HasSuffix(line, ".m4s"):
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "seg-"), ".m4s"))
			if err == nil {
				cur.N, cur.Init = n, init
				if remap && len(out) > 0 {
					cur.Discontinuity = false // the new init's (playlist writes it for both)
				}
				if !cur.Lost {
					cur.Size = size(line)
				}
				out = append(out, cur)
			}
			cur, remap = segmentRecord{}, false
		}
	}
	return out
}
