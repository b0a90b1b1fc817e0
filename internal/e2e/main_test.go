package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests (edges, the
// recorder's readers and uploaders, pion peers, ffmpeg waiters).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
