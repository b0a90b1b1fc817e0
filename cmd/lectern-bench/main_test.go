package main

import (
	"testing"

	"go.uber.org/goleak"
)

// The tool's subscribers and publisher run goroutines; every test must stop them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
