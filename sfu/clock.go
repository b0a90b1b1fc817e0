package sfu

import "time"

var clockBase = time.Now()

// Nanotime returns a monotonic clock reading in nanoseconds, cheap enough for the
// per-packet path.
func Nanotime() int64 { return int64(time.Since(clockBase)) }
