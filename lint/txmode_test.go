package lint

import "testing"

func TestFileMode(t *testing.T) {
	for _, tc := range []struct {
		src              string
		noTx, explicitTx bool
		reason           string
	}{
		{src: "CREATE TABLE a (id int);"},
		{src: "-- no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);", noTx: true, reason: "-- no-transaction"},
		{src: "-- +goose NO TRANSACTION\nSELECT 1;", noTx: true, reason: "-- +goose NO TRANSACTION"},
		{src: "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;", explicitTx: true},
	} {
		noTx, reason, explicit := FileMode(tc.src)
		if noTx != tc.noTx || reason != tc.reason || explicit != tc.explicitTx {
			t.Errorf("%q: %v %q %v; want %v %q %v", tc.src, noTx, reason, explicit, tc.noTx, tc.reason, tc.explicitTx)
		}
	}
}
