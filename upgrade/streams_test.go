package upgrade_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-pg/tandem/migrate"
	"github.com/tandem-pg/tandem/upgrade"
)

// TestStreamsUpgrade upgrades the example, whose releases carry three streams (core,
// the reviews plugin, plain SQL "ops"), from v1 to v2, after checking what plan refuses:
// an unsafe pre-deploy file (the lint gate, its ignores and configuration), a changed
// applied file, a cycle.
func TestStreamsUpgrade(t *testing.T) {
	e := newEnv(t)
	e.install(100)
	ctx := context.Background()
	u := e.upgrader(upgrade.Options{})
	plan := func(rel *upgrade.Release) *upgrade.Plan { t.Helper(); return mustPlan(t, u, rel) }
	problems := func(p *upgrade.Plan) string { return strings.Join(p.Problems, "\n") }
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scalar := func(sql string) string {
		t.Helper()
		var s string
		if err := e.pool.QueryRow(ctx, sql).Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return s
	}

	// v1 applied every stream's first files as one step.
	if got := scalar("SELECT string_agg(stream || '/' || name, ' ' ORDER BY name) FROM tandem.sql_migrations"); got != "ops/0001_item_views" {
		t.Errorf("applied SQL files after v1: %s", got)
	}
	if got := scalar("SELECT string_agg(name || ':' || array_to_string(includes, ','), ' ') FROM tandem.migrations"); got != "reviews/01_reviews:01_catalog,reviews/01_reviews" {
		t.Errorf("v1's step: %s", got)
	}

	p := plan(e.release("v2"))
	if !p.Possible ||
		strings.Join(p.Pending, " ") != "core/02_1_rename_title core/02_2_label core/02_3_price_bigint reviews/02_price_paid" ||
		strings.Join(p.PreDeploy, " ") != "ops/0002_item_views_item_id" || strings.Join(p.PostDeploy, " ") != "ops/0003_drop_referrer" ||
		p.TargetVersionSchema != "public_02_3_price_bigint" || len(p.Streams) != 3 {
		t.Errorf("v1 -> v2: %+v", p)
	}

	// An unsafe pre-deploy file is refused at plan, with the finding and its recipe.
	rel := e.release("v2")
	unsafe := filepath.Join(rel.Dir, "ops", "pre-deploy", "0002_rename_sku.sql")
	write(unsafe, "ALTER TABLE items RENAME COLUMN sku TO stock_code;\n")
	p = plan(rel)
	if got := problems(p); p.Possible || !strings.Contains(got, "pre-deploy file "+unsafe+":1:") ||
		!strings.Contains(got, "(rename-column); recipe:") {
		t.Errorf("an unsafe pre-deploy file: possible %v, problems:\n%s", p.Possible, got)
	}
	if _, err := u.Apply(ctx, rel); err == nil {
		t.Error("apply went ahead with an unsafe pre-deploy file")
	} else if pe := (*upgrade.PlanError)(nil); !errors.As(err, &pe) {
		t.Errorf("apply: %v, want a *PlanError", err)
	}
	// The linter's ignores and configuration apply.
	write(unsafe, "-- tandem-lint-ignore: rename-column\nALTER TABLE items RENAME COLUMN sku TO stock_code;\n")
	if p := plan(rel); !p.Possible {
		t.Errorf("an ignored finding still blocks: %s", problems(p))
	}
	write(unsafe, "ALTER TABLE items RENAME COLUMN sku TO stock_code;\n")
	rel.Lint.Disable = []string{"rename-column"}
	if p := plan(rel); !p.Possible {
		t.Errorf("a disabled rule still blocks: %s", problems(p))
	}
	rel.Lint.Disable = nil
	if err := os.Remove(unsafe); err != nil {
		t.Fatal(err)
	}

	// A file changed after it was applied.
	applied := filepath.Join(rel.Dir, "ops", "pre-deploy", "0001_item_views.sql")
	orig, err := os.ReadFile(applied)
	if err != nil {
		t.Fatal(err)
	}
	write(applied, string(orig)+"-- edited\n")
	if got := problems(plan(rel)); !strings.Contains(got, applied+": stream ops's pre-deploy file was applied with checksum") {
		t.Errorf("a changed applied file: %s", got)
	}
	write(applied, string(orig))

	// A cycle, named.
	rel.Streams[0].After = []string{"reviews"}
	if got := problems(plan(rel)); !strings.Contains(got, "cycle: core after reviews after core") {
		t.Errorf("a cycle: %s", got)
	}
	rel.Streams[0].After = nil

	// The upgrade: one expand step for the three streams, the post-deploy file at
	// contract.
	rec, err := u.Apply(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	e.checkUpgraded(rec)
	if got := scalar("SELECT string_agg(phase || '/' || name, ' ' ORDER BY name) FROM tandem.sql_migrations"); got != "pre-deploy/0001_item_views pre-deploy/0002_item_views_item_id post-deploy/0003_drop_referrer" {
		t.Errorf("applied SQL files after v2: %s", got)
	}
	if got := scalar(`SELECT string_agg(table_schema || '.' || column_name, ' ' ORDER BY table_schema, ordinal_position)
		FROM information_schema.columns WHERE table_name = 'item_views'`); got != "public.item_id public.viewed_at public_02_3_price_bigint.item_id public_02_3_price_bigint.viewed_at" {
		t.Errorf("item_views after the post-deploy file: %s", got)
	}
	if got := scalar(`SELECT count(*)::text FROM information_schema.columns
		WHERE table_schema = 'public_02_3_price_bigint' AND table_name = 'reviews' AND column_name = 'price_paid_cents'`); got != "1" {
		t.Errorf("reviews' release-2 column in v2's schema: %s", got)
	}
	m, err := migrate.Open(ctx, e.url, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	streams, err := rel.ReadStreams()
	if err != nil {
		t.Fatal(err)
	}
	states, err := m.StreamStatus(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if len(s.Pending) > 0 || len(s.InProgress) > 0 || len(s.Applied) == 0 {
			t.Errorf("stream %s after the upgrade: %+v", s.Name, s)
		}
	}
	if i := slices.IndexFunc(states, func(s migrate.StreamState) bool { return s.Name == "reviews" }); i < 0 ||
		strings.Join(states[i].Applied, " ") != "01_reviews 02_price_paid" {
		t.Errorf("reviews: %+v", states)
	}
}
