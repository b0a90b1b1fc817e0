package recorder

import "time"

// A session's recordings of the same time: the programme's (the lecture as
// everyone saw and heard it) and each publication's own (the trainer's, a
// classroom's), which stay available beside it as separate recordings.

// end is when m ended, or the far future while it is still being recorded (or was
// interrupted before its end was known).
func (m Meta) end() time.Time {
	if m.EndedAt != nil {
		return *m.EndedAt
	}
	return time.Unix(1<<62, 0)
}

// overlaps reports whether a and b are of the same session and their times meet.
func overlaps(a, b Meta) bool {
	return a.Session == b.Session && !a.StartedAt.After(b.end()) && !b.StartedAt.After(a.end())
}

// Related returns the other recordings of m's session made at the same time, newest
// first: for a programme recording, the publications' own (its sources); for a
// source, the programme's and the other sources. At most MaxPageSize.
func (r *Recorder) Related(m Meta) []Meta {
	var out []Meta
	for _, o := range r.index.snapshot() {
		if o.ID != m.ID && overlaps(o, m) {
			out = append(out, o)
			if len(out) == MaxPageSize {
				break
			}
		}
	}
	return out
}

// lectureFilter returns whether a recording is a lecture, for Query.Lectures: a
// programme recording, or a source recording that no programme recording of its
// session overlaps (a session recorded without the programme). all is the index,
// newest first.
func lectureFilter(all []Meta) func(Meta) bool {
	programmes := map[string][]Meta{}
	for _, m := range all {
		if m.Role == RoleProgramme {
			programmes[m.Session] = append(programmes[m.Session], m)
		}
	}
	return func(m Meta) bool {
		if m.Role == RoleProgramme {
			return true
		}
		for _, p := range programmes[m.Session] {
			if overlaps(p, m) {
				return false
			}
		}
		return true
	}
}
