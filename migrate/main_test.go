package migrate

import (
	"testing"

	"github.com/tandem-pg/tandem/internal/pgtest"
)

func testMain(m *testing.M) { pgtest.Main(m) }
