package migrate

import (
	"testing"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL the tests share.
func TestMain(m *testing.M) { pgtest.Main(m) }
