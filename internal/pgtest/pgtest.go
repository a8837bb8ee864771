// Package pgtest gives tests a fresh PostgreSQL database on a throwaway server.
//
// One server is started per test binary, on first use; every call to NewDatabase creates a
// new, empty database on it and drops it when the test ends. A package that uses pgtest
// should stop the server when its tests are done:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Set TANDEM_TEST_POSTGRES_URL to a superuser URL to use an existing server instead.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-pg/tandem/internal/pgserver"
)

var (
	once     sync.Once
	server   *pgserver.Server
	adminURL string
	startErr error
	dbSeq    atomic.Int64
)

// Main runs the tests and stops the shared server afterwards; call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if server != nil {
		_ = server.Stop()
	}
	os.Exit(code)
}

func start() {
	if u := os.Getenv("TANDEM_TEST_POSTGRES_URL"); u != "" {
		adminURL = u
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server, startErr = pgserver.Start(ctx, pgserver.Options{})
	if startErr == nil {
		adminURL = server.URL("postgres")
	}
}

// AdminURL returns a superuser URL for the shared server, starting it if needed.
func AdminURL(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		t.Fatalf("start throwaway PostgreSQL: %v", startErr)
	}
	return adminURL
}

// NewDatabase creates an empty database for this test and returns a superuser URL to it.
// The database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	CreateDatabase(t, admin, name)
	return WithDatabase(t, admin, name)
}

// CreateDatabase creates the empty database name on the server admin (a superuser URL)
// reaches, and drops it when the test ends.
func CreateDatabase(t testing.TB, admin, name string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
}

// WithDatabase returns u with its database replaced by db.
func WithDatabase(t testing.TB, u, db string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	parsed.Path = "/" + db
	return parsed.String()
}

// WithUser returns u with its user and password replaced.
func WithUser(t testing.TB, u, user, password string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	if password == "" {
		parsed.User = url.User(user)
	} else {
		parsed.User = url.UserPassword(user, password)
	}
	return parsed.String()
}

// NewPool opens a pool to connString, closed when the test ends.
func NewPool(t testing.TB, connString string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), connString)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewOwnerDatabase creates a database as NewDatabase does, plus a role that is not a
// superuser and owns the database and its public schema, and returns a URL that logs in
// as that role. Use it to prove that something works without superuser rights.
func NewOwnerDatabase(t testing.TB) string {
	t.Helper()
	su := NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, su)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatalf("current_database: %v", err)
	}
	role := db + "_owner"
	r := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []string{
		"CREATE ROLE " + r + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
		"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " OWNER TO " + r,
		"ALTER SCHEMA public OWNER TO " + r,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, AdminURL(t))
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+r)
	})
	return WithUser(t, su, role, "")
}

// Standby starts a streaming standby of the shared server (see pgserver.Server.Standby),
// stopped when the test ends, and returns a superuser URL to its postgres database. A
// test on an existing server (TANDEM_TEST_POSTGRES_URL) is skipped: its replicas are not
// the test's to make.
func Standby(t testing.TB, settings map[string]string) string {
	t.Helper()
	AdminURL(t)
	if server == nil {
		t.Skip("a standby needs the throwaway server; TANDEM_TEST_POSTGRES_URL is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := server.Standby(ctx, pgserver.Options{Settings: settings})
	if err != nil {
		t.Fatalf("start a standby: %v", err)
	}
	t.Cleanup(func() { _ = sb.Stop() })
	return sb.URL("postgres")
}
