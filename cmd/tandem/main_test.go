package main

import (
	"context"
	"os"
	"testing"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// execEnv makes a copy of the test binary act as the tandem binary: tests run it as a
// subprocess (to kill it with SIGKILL), and the local backend runs instances of the
// example with it ({tandem} prove instance ...).
const execEnv = "TANDEM_CLI_TEST_EXEC"

// TestMain stops the throwaway PostgreSQL that tests in this package may start.
func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}
