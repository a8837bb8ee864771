package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// exampleStreams are a core stream (plain names, as `tandem migrate DIR` records), a
// plugin stream "reviews" whose second migration needs core's second, and a plain-SQL
// stream "ops"; release selects how many of each stream's files it ships.
func exampleStreams(t *testing.T, release int) []*Stream {
	t.Helper()
	parse := func(name, doc string) *Migration {
		mig, err := Parse(name+".json", name, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return mig
	}
	file := func(name, text string) *SQLFile {
		f, err := ParseSQLFile(name+".sql", text)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	core := &Stream{Name: "core", Kind: StreamPgroll, PlainNames: true, Migrations: []*Migration{
		parse("01_items", `{"operations": [{"create_table": {"name": "items", "columns": [
			{"name": "id", "type": "bigserial", "pk": true}, {"name": "name", "type": "text"}]}}]}`)}}
	reviews := &Stream{Name: "reviews", Kind: StreamPgroll, After: []string{"core"}, Migrations: []*Migration{
		parse("01_reviews", `{"operations": [{"create_table": {"name": "reviews", "columns": [
			{"name": "id", "type": "bigserial", "pk": true},
			{"name": "item_id", "type": "bigint", "references": {"name": "reviews_item_fk", "table": "items", "column": "id"}},
			{"name": "stars", "type": "integer"}]}}]}`)}}
	ops := &Stream{Name: "ops", Kind: StreamSQL, Pre: []*SQLFile{
		file("0001_item_views", "CREATE TABLE item_views (item_id bigint NOT NULL, legacy_source text);")}}
	if release >= 2 {
		core.Migrations = append(core.Migrations, parse("02_title", `{"operations": [{"rename_column": {"table": "items", "from": "name", "to": "title"}}]}`))
		reviews.Migrations = append(reviews.Migrations, parse("02_body", `{"needs": ["core/02_title"], "operations": [
			{"add_column": {"table": "reviews", "column": {"name": "body", "type": "text", "nullable": true}}}]}`))
		ops.Pre = append(ops.Pre, file("0002_item_views_idx", "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS item_views_item ON item_views (item_id);\n"))
		ops.Post = append(ops.Post, file("0003_drop_legacy_source", "ALTER TABLE item_views DROP COLUMN legacy_source;"))
	}
	return []*Stream{core, reviews, ops}
}

func TestStreamsExpandContract(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// Release 1: every stream's first migration, one step.
	plan, err := e.m.ExpandStreams(ctx, exampleStreams(t, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range plan.Expand {
		got = append(got, s.String())
	}
	if strings.Join(got, " ") != "ops/0001_item_views core/01_items reviews/01_reviews" {
		t.Errorf("release 1 expand order %v", got)
	}
	vs1 := "public_reviews_01_reviews"
	if plan.Combined.VersionSchemaIn("public") != vs1 {
		t.Fatalf("version schema %s", plan.Combined.VersionSchemaIn("public"))
	}
	if _, err := e.m.ContractStreams(ctx, exampleStreams(t, 1), ""); err != nil {
		t.Fatal(err)
	}
	v1 := e.versionSchema(vs1)
	mustExec(t, v1, "INSERT INTO items (name) VALUES ('lamp')")
	mustExec(t, v1, "INSERT INTO reviews (item_id, stars) SELECT id, 5 FROM items")
	mustExec(t, v1, "INSERT INTO item_views (item_id, legacy_source) SELECT id, 'web' FROM items")

	// Release 2: reviews' 02 needs core's 02; ops has a no-transaction pre-deploy file
	// and a post-deploy file that drops a column the views show.
	streams := exampleStreams(t, 2)
	plan, err = e.m.ExpandStreams(ctx, streams, "public_release_2")
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, s := range plan.Expand {
		got = append(got, s.String())
	}
	if strings.Join(got, " ") != "ops/0002_item_views_idx core/02_title reviews/02_body" || len(plan.Contract) != 1 {
		t.Errorf("release 2 expand order %v, contract %v", got, plan.Contract)
	}
	if v := queryString(t, e.db, "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'public.item_views_item'::regclass"); v != "true" {
		t.Errorf("the concurrent index is valid: %s", v)
	}
	// Both versions work side by side.
	mustExec(t, v1, "INSERT INTO items (name) VALUES ('desk')")
	mustExec(t, v1, "INSERT INTO item_views (item_id, legacy_source) SELECT max(id), 'app' FROM items")
	v2 := e.versionSchema("public_release_2")
	mustExec(t, v2, "INSERT INTO reviews (item_id, stars, body) SELECT id, 4, 'fine ' || title FROM items")
	if c := e.columns("public_release_2", "item_views"); c != "item_id bigint, legacy_source text" {
		t.Errorf("release 2's item_views before contract: %s", c)
	}
	st, err := e.m.StreamStatus(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	if s := st[1]; strings.Join(s.Applied, ",") != "01_reviews" || strings.Join(s.InProgress, ",") != "02_body" {
		t.Errorf("reviews' status %+v", s)
	}
	if _, err := e.m.ContractStreams(ctx, streams, "public_release_2"); err != nil {
		t.Fatal(err)
	}
	if c := e.columns("public", "item_views"); c != "item_id bigint not null" {
		t.Errorf("post-deploy ran: item_views is %s", c)
	}
	if c := e.columns("public_release_2", "item_views"); c != "item_id bigint" {
		t.Errorf("the version schema was rebuilt: item_views is %s", c)
	}
	if n := queryString(t, v2, "SELECT count(*)::text FROM reviews WHERE body LIKE 'fine %'"); n != "2" {
		t.Errorf("reviews with a body: %s", n)
	}
	if n := queryString(t, e.db, "SELECT count(*)::text FROM pg_namespace WHERE nspname = $1", vs1); n != "0" {
		t.Errorf("release 1's version schema is left: %s", n)
	}
	st, err = e.m.StreamStatus(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if len(s.Pending) != 0 || len(s.InProgress) != 0 {
			t.Errorf("stream %s after contract: %+v", s.Name, s)
		}
	}
	if a := strings.Join(st[2].Applied, ","); a != "pre-deploy/0001_item_views,pre-deploy/0002_item_views_idx,post-deploy/0003_drop_legacy_source" {
		t.Errorf("ops applied %s", a)
	}
	// status shows every stream from the history alone.
	full, err := e.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, s := range full.Streams {
		shown = append(shown, s.Name+":"+strings.Join(s.Applied, ","))
	}
	if got := strings.Join(shown, " "); got != ":01_items,02_title reviews:01_reviews,02_body ops:pre-deploy/0001_item_views,pre-deploy/0002_item_views_idx,post-deploy/0003_drop_legacy_source" {
		t.Errorf("status streams: %s", got)
	}
	// Nothing left: a second run is a no-op.
	plan, err = e.m.ExpandStreams(ctx, streams, "public_release_2")
	if err != nil || len(plan.Expand) != 0 || plan.Combined != nil {
		t.Errorf("a rerun: %+v, %v", plan, err)
	}
}

func TestStreamsChecksumDrift(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.m.ExpandStreams(ctx, exampleStreams(t, 1), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ContractStreams(ctx, exampleStreams(t, 1), ""); err != nil {
		t.Fatal(err)
	}
	streams := exampleStreams(t, 2)
	changed, err := ParseSQLFile("0001_item_views.sql", "CREATE TABLE item_views (item_id bigint NOT NULL, source text);")
	if err != nil {
		t.Fatal(err)
	}
	streams[2].Pre[0] = changed
	for _, run := range []func() error{
		func() error { _, err := e.m.PlanStreams(ctx, streams, ""); return err },
		func() error { _, err := e.m.ExpandStreams(ctx, streams, ""); return err },
	} {
		err := run()
		var de *DriftError
		if !errors.As(err, &de) || de.File != "0001_item_views.sql" || !strings.Contains(err.Error(), "0001_item_views.sql: stream ops's pre-deploy file was applied with checksum") {
			t.Fatalf("a changed file: %v", err)
		}
	}
	// Refused before any DDL: release 2's migrations did not start.
	if n := queryString(t, e.db, "SELECT count(*)::text FROM tandem.migrations WHERE status <> 'completed'"); n != "0" {
		t.Errorf("%s migrations started", n)
	}
	if n := queryString(t, e.db, "SELECT count(*)::text FROM tandem.sql_migrations"); n != "1" {
		t.Errorf("%s SQL files recorded", n)
	}
}

func TestStreamsRefusedBeforeDDL(t *testing.T) {
	e := newEnv(t)
	streams := exampleStreams(t, 2)
	streams[0].After = []string{"reviews"} // core after reviews after core
	_, err := e.m.ExpandStreams(context.Background(), streams, "")
	var se *StreamError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "cycle: core after reviews after core") {
		t.Fatalf("a cycle: %v", err)
	}
	if n := queryString(t, e.db, "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'tandem'"); n != "0" {
		t.Errorf("the state schema was made")
	}
	if n := queryString(t, e.db, "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"); n != "0" {
		t.Errorf("tables were made")
	}
}

func TestStreamsSQLFileLockTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LockTimeout = 50 * time.Millisecond; o.LockAttempts = 2 })
	ctx := context.Background()
	e.exec("CREATE TABLE busy (id int)")
	f, err := ParseSQLFile("0001_busy.sql", "ALTER TABLE busy ADD COLUMN note text;")
	if err != nil {
		t.Fatal(err)
	}
	streams := []*Stream{{Name: "ops", Kind: StreamSQL, Pre: []*SQLFile{f}}}
	// A reader holding its lock: the file waits lock_timeout, retries, gives up.
	tx, err := e.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "SELECT * FROM busy")
	_, err = e.m.ExpandStreams(ctx, streams, "")
	var le *LockError
	if !errors.As(err, &le) || le.Attempts != 2 {
		t.Fatalf("a held lock: %v", err)
	}
	if n := queryString(t, e.db, "SELECT count(*)::text FROM tandem.sql_migrations"); n != "0" {
		t.Errorf("the file was recorded")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ExpandStreams(ctx, streams, ""); err != nil {
		t.Fatal(err)
	}
	if c := e.columns("public", "busy"); c != "id integer, note text" {
		t.Errorf("busy is %s", c)
	}
}
