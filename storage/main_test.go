package storage_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when any goroutine outlives them
// (minio-go listings, HTTP connections, the MinIO process waiter).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
