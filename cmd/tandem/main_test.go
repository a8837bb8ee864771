package main

import (
	"testing"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL that tests in this package may start.
func TestMain(m *testing.M) { pgtest.Main(m) }
