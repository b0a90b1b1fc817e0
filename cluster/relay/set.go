package relay

import (
	"maps"
	"slices"
	"sync"
)

// The two sides keep their relays alike (a Manager its pulls by session and
// publication, a Handler the relays it serves by id), each map under its side's
// lock with a closed flag that stops new relays; listing and closing them are
// these helpers.

// snapshot returns the relays of one side, read under its lock. With closed
// (the side's flag), it marks the side closed in the same critical section, so
// no relay is added after the snapshot.
func snapshot[R any](mu *sync.Mutex, relays map[string]R, closed *bool) []R {
	mu.Lock()
	defer mu.Unlock()
	if closed != nil {
		*closed = true
	}
	return slices.Collect(maps.Values(relays))
}

// infoList describes the relays info accepts (one still connecting is left
// out), oldest first.
func infoList[R any](relays []R, info func(R) (Info, bool)) []Info {
	infos := make([]Info, 0, len(relays))
	for _, r := range relays {
		if i, ok := info(r); ok {
			infos = append(infos, i)
		}
	}
	slices.SortFunc(infos, func(a, b Info) int { return a.Started.Compare(b.Started) })
	return infos
}
