package lint

import (
	"fmt"
	"strings"
	"testing"
)

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
		{src: "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;"},
	} {
		m := FileMode(tc.src)
		noTx, reason, explicit := m.NoTransaction, m.Reason, m.ExplicitTx
		if noTx != tc.noTx || reason != tc.reason || explicit != tc.explicitTx {
			t.Errorf("%q: %v %q %v; want %v %q %v", tc.src, noTx, reason, explicit, tc.noTx, tc.reason, tc.explicitTx)
		}
	}
}

// TestFileModeUpSection: what a runner runs is the up section only, offsets kept.
func TestFileModeUpSection(t *testing.T) {
	for _, src := range []string{
		"-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a;\n",
		"-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
	} {
		up := FileMode(src).Up
		if strings.Contains(up, "DROP TABLE") || !strings.Contains(up, "CREATE TABLE a (id int);") || len(up) != len(src) {
			t.Errorf("%q: up section %q", src, up)
		}
	}
}

// TestFileModePsql: what only psql can run is named with its line.
func TestFileModePsql(t *testing.T) {
	m := FileMode("SELECT 1;\n\\connect other\nCOPY t FROM stdin;\n1\n\\.\n")
	got := fmt.Sprint(m.Psql)
	if want := "[{2 psql meta-command \\connect} {3 COPY ... FROM stdin}]"; got != want {
		t.Errorf("psql parts %s, want %s", got, want)
	}
	if strings.Contains(m.Up, "other") || strings.Contains(m.Up, "\\.") {
		t.Errorf("up %q holds psql's lines", m.Up)
	}
	if m := FileMode("SELECT '\\connect';"); len(m.Psql) != 0 {
		t.Errorf("a literal read as psql's: %v", m.Psql)
	}
}
