package migrate

import (
	"strings"
	"testing"
)

// TestCheckNoTxStatement: what a -- no-transaction file may hold, before any of it runs.
func TestCheckNoTxStatement(t *testing.T) {
	for _, tc := range []struct {
		stmt    string
		post    bool
		refused string
	}{
		{stmt: "CREATE INDEX CONCURRENTLY items_label ON items (label)"},
		{stmt: "CREATE INDEX CONCURRENTLY ON items (label)", refused: "needs an index name"},
		{stmt: "CREATE INDEX CONCURRENTLY items_label ON items (label)", post: true},
		{stmt: "DROP INDEX CONCURRENTLY IF EXISTS items_label", post: true},
		{stmt: "ALTER TABLE items ADD COLUMN note text"},
		{stmt: "ALTER TABLE items DROP COLUMN note", post: true, refused: "may only build or drop indexes"},
		{stmt: "DROP TABLE old_items CASCADE", post: true, refused: "may only build or drop indexes"},
		{stmt: "  ", post: true},
	} {
		err := checkNoTxStatement(tc.stmt, tc.post)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q (post %v): refused: %v", tc.stmt, tc.post, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%q (post %v): %v; want refused with %q", tc.stmt, tc.post, err, tc.refused)
		}
	}
}
