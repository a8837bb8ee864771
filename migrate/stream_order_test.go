package migrate

import (
	"fmt"
	"strings"
	"testing"
)

// pg is a pgroll migration for the ordering tests: name, then needs.
func pg(t *testing.T, name string, needs ...string) *Migration {
	t.Helper()
	doc := fmt.Sprintf(`{"name": %q, "operations": [{"sql": {"up": "SELECT 1"}}]`, name)
	if len(needs) > 0 {
		doc += `, "needs": ["` + strings.Join(needs, `", "`) + `"]`
	}
	mig, err := Parse(name+".json", name, []byte(doc+"}"))
	if err != nil {
		t.Fatal(err)
	}
	return mig
}

// sqlf is a plain-SQL file for the ordering tests.
func sqlf(t *testing.T, name string, needs ...string) *SQLFile {
	t.Helper()
	text := "CREATE TABLE t_" + name + " (id int);\n"
	for _, n := range needs {
		text = needsDirective + n + "\n" + text
	}
	f, err := ParseSQLFile(name+".sql", text)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPlanStreamsOrder(t *testing.T) {
	core := func() *Stream {
		return &Stream{Name: "core", Kind: StreamPgroll, PlainNames: true,
			Migrations: []*Migration{pg(t, "01_items"), pg(t, "02_title")}}
	}
	for _, tc := range []struct {
		name     string
		streams  func() []*Stream
		applied  []string // recorded names of completed pgroll migrations
		sqlDone  []string // stream/phase/name of applied SQL files
		expand   string   // the expand steps, in order
		contract string
		combined string // the combined migration's name and version schema
		err      string // a substring of the error
	}{
		{
			name: "a plugin after core, needing core's second migration",
			streams: func() []*Stream {
				return []*Stream{
					{Name: "reviews", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01_reviews"), pg(t, "02_stars", "core/02_title")}},
					core(),
				}
			},
			// Without after, the need alone puts core's 02 before reviews' 02.
			expand:   "reviews/01_reviews core/01_items core/02_title reviews/02_stars",
			combined: "reviews/02_stars public_reviews_02_stars",
		},
		{
			name: "after puts the whole stream behind",
			streams: func() []*Stream {
				return []*Stream{
					{Name: "reviews", Kind: StreamPgroll, After: []string{"core"}, Migrations: []*Migration{pg(t, "01_reviews")}},
					core(),
				}
			},
			expand:   "core/01_items core/02_title reviews/01_reviews",
			combined: "reviews/01_reviews public_reviews_01_reviews",
		},
		{
			name: "applied migrations are skipped and meet needs",
			streams: func() []*Stream {
				return []*Stream{core(),
					{Name: "reviews", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01_reviews", "core/01_items"), pg(t, "02_stars", "core/02_title")}}}
			},
			applied:  []string{"01_items", "02_title", "reviews/01_reviews"},
			expand:   "reviews/02_stars",
			combined: "reviews/02_stars public_reviews_02_stars",
		},
		{
			name: "pre-deploy SQL runs first, post-deploy at contract in after order",
			streams: func() []*Stream {
				return []*Stream{core(),
					{Name: "ops", Kind: StreamSQL, After: []string{"search"}, Pre: []*SQLFile{sqlf(t, "0001_a", "core/01_items")}, Post: []*SQLFile{sqlf(t, "0002_drop")}},
					{Name: "search", Kind: StreamSQL, Pre: []*SQLFile{sqlf(t, "0001_idx")}, Post: []*SQLFile{sqlf(t, "0002_x")}},
				}
			},
			applied:  []string{"01_items"},
			expand:   "search/0001_idx ops/0001_a core/02_title",
			contract: "search/0002_x ops/0002_drop",
			combined: "02_title public_02_title",
		},
		{
			name: "applied SQL files are skipped",
			streams: func() []*Stream {
				return []*Stream{{Name: "ops", Kind: StreamSQL, Pre: []*SQLFile{sqlf(t, "0001_a"), sqlf(t, "0002_b")}, Post: []*SQLFile{sqlf(t, "0003_c")}}}
			},
			sqlDone:  []string{"ops/pre-deploy/0001_a"},
			expand:   "ops/0002_b",
			contract: "ops/0003_c",
		},
		{
			name: "a cycle of needs is refused, named",
			streams: func() []*Stream {
				return []*Stream{
					{Name: "a", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01", "b/01")}},
					{Name: "b", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01", "a/01")}},
				}
			},
			err: "cycle: ",
		},
		{
			name: "a cycle of after lists is refused, named",
			streams: func() []*Stream {
				return []*Stream{
					{Name: "a", Kind: StreamPgroll, After: []string{"b"}},
					{Name: "b", Kind: StreamPgroll, After: []string{"a"}},
				}
			},
			err: "the streams' after lists make a cycle: a after b after a",
		},
		{
			name: "a need neither applied nor shipped is refused",
			streams: func() []*Stream {
				return []*Stream{core(), {Name: "reviews", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01_reviews", "core/03_missing")}}}
			},
			err: "01_reviews.json needs core/03_missing, which stream core has neither applied nor in its directory",
		},
		{
			name: "a need on an unknown stream is refused",
			streams: func() []*Stream {
				return []*Stream{core(), {Name: "reviews", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01_reviews", "pulp/01")}}}
			},
			err: `01_reviews.json needs pulp/01, but the release has no stream "pulp"`,
		},
		{
			name: "after an unknown stream is refused",
			streams: func() []*Stream {
				return []*Stream{core(), {Name: "reviews", Kind: StreamPgroll, After: []string{"cor"}}}
			},
			err: `stream reviews is after "cor"`,
		},
		{
			name: "pre-deploy SQL needing a pgroll migration of the same step is refused",
			streams: func() []*Stream {
				return []*Stream{core(), {Name: "ops", Kind: StreamSQL, Pre: []*SQLFile{sqlf(t, "0001_a", "core/02_title")}}}
			},
			applied: []string{"01_items"},
			err:     "pre-deploy file 0001_a.sql must run after core/02_title (pgroll), pending in the same release",
		},
		{
			name: "an expand step needing a post-deploy file is refused",
			streams: func() []*Stream {
				return []*Stream{{Name: "core", Kind: StreamPgroll, Migrations: []*Migration{pg(t, "01_items", "ops/0002_drop")}},
					{Name: "ops", Kind: StreamSQL, Post: []*SQLFile{sqlf(t, "0002_drop")}}}
			},
			err: "01_items.json needs ops/0002_drop, a post-deploy file that runs at contract",
		},
		{
			name: "two streams with plain names are refused",
			streams: func() []*Stream {
				return []*Stream{core(), {Name: "other", Kind: StreamPgroll, PlainNames: true}}
			},
			err: "streams core and other both record plain names",
		},
		{
			name: "a stream listed twice is refused",
			streams: func() []*Stream {
				return []*Stream{core(), core()}
			},
			err: `stream "core" is listed twice`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &streamHistory{pgroll: map[string]bool{}, sql: map[string]string{}}
			for _, a := range tc.applied {
				h.pgroll[a] = true
			}
			for _, s := range tc.sqlDone {
				p := strings.SplitN(s, "/", 3)
				h.sql[sqlKey(p[0], p[1], p[2])] = "x"
			}
			plan, err := planStreams(tc.streams(), h, "public", "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v; want one containing %q", err, tc.err)
				}
				if _, ok := err.(*StreamError); !ok {
					t.Errorf("error is a %T, not a *StreamError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := func(steps []StreamStep) string {
				var out []string
				for _, s := range steps {
					out = append(out, s.String())
				}
				return strings.Join(out, " ")
			}
			if got := names(plan.Expand); got != tc.expand {
				t.Errorf("expand %q; want %q", got, tc.expand)
			}
			if got := names(plan.Contract); got != tc.contract {
				t.Errorf("contract %q; want %q", got, tc.contract)
			}
			got := ""
			if plan.Combined != nil {
				got = plan.Combined.Name + " " + plan.Combined.VersionSchemaIn("public")
			}
			if got != tc.combined {
				t.Errorf("combined %q; want %q", got, tc.combined)
			}
		})
	}
}

func TestParseNeedsAndSQLFiles(t *testing.T) {
	for _, tc := range []struct {
		text, err string
		noTx      bool
		needs     string
	}{
		{text: "-- tandem:needs core/02_title reviews/01\nCREATE TABLE a (id int);", needs: "[core/02_title reviews/01]"},
		{text: "-- no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);", noTx: true, needs: "[]"},
		{text: "-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY a_id ON a (id);", noTx: true, needs: "[]"},
		{text: "-- tandem:needs core 02_title\nSELECT 1;", err: `f.sql:1: field "tandem:needs": "core" is not <stream>/<migration>`},
		{text: "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;", err: "the file has BEGIN or COMMIT of its own"},
		{text: "CREATE TABLE a (id int);\n\\connect other\nCREATE TABLE b (id int);", err: `f.sql:2: psql meta-command \connect: only psql runs this`},
		{text: "CREATE TABLE a (id int);\nCOPY a FROM stdin;\n1\n\\.\n", err: "f.sql:2: COPY ... FROM stdin: only psql runs this"},
		{text: "CREATE TABLE a (id int);\nCOPY a FROM stdin;", err: "f.sql:2: COPY ... FROM stdin: only psql runs this"},
	} {
		f, err := ParseSQLFile("f.sql", tc.text)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v; want %q", tc.text, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if f.NoTransaction != tc.noTx || fmt.Sprint(needStrings(f.Needs)) != tc.needs {
			t.Errorf("%q: no-transaction %v, needs %v; want %v, %s", tc.text, f.NoTransaction, f.Needs, tc.noTx, tc.needs)
		}
	}
	if _, err := Parse("m.json", "m", []byte(`{"operations": [], "needs": ["core"]}`)); err == nil || !strings.Contains(err.Error(), `field "needs[0]"`) {
		t.Errorf("a bad need in a pgroll file: %v", err)
	}
}

func needStrings(ns []Need) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out
}
