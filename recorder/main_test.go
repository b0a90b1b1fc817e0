package recorder

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them (track
// readers, mux and upload loops, minio-go connections, MinIO waiters).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
