package pgtest

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewDatabaseIsFreshAndSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share one URL: %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("table created in database a is visible in database b")
	}
}

func TestOwnerDatabaseIsNotSuperuser(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, NewOwnerDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		t.Fatal("owner role is a superuser")
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA owned_here; CREATE TABLE public.t (id int)"); err != nil {
		t.Fatalf("owner cannot create objects: %v", err)
	}
}

// TestStandbyReplicates: a row written on the primary appears on the standby, which
// refuses writes of its own.
func TestStandbyReplicates(t *testing.T) {
	ctx := context.Background()
	primary := NewDatabase(t)
	standby := WithDatabase(t, Standby(t, nil), dbName(t, primary))
	p, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if _, err := p.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('from the primary')"); err != nil {
		t.Fatal(err)
	}
	s, err := pgx.Connect(ctx, standby)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var v string
		err := s.QueryRow(ctx, "SELECT v FROM t").Scan(&v)
		if err == nil && v == "from the primary" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row did not reach the standby: %v", err)
		}
	}
	if _, err := s.Exec(ctx, "INSERT INTO t VALUES ('from the standby')"); err == nil {
		t.Fatal("the standby took a write")
	}
}

// dbName is the database of the URL u.
func dbName(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(parsed.Path, "/")
}
