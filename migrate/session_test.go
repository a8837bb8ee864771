package migrate

import (
	"context"
	"fmt"
	"testing"
)

// TestVersionRule: the triggers tell the new version's writes from the old one's by the
// session's tandem.version_schema, or, when it is not set, by the first schema of its
// search_path that exists (see VersionSetting). A write the trigger counts as the old
// version's gets up; one it counts as the new version's does not.
func TestVersionRule(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.exec("CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL)")
	e.start(`{"name": "02", "operations": [{"add_column": {"table": "items", "up": "qty * 2", "column": {"name": "dbl", "type": "int", "nullable": true}}}]}`)
	for i, c := range []struct {
		name, searchPath, setting string
		isNew                     bool
	}{
		{"default search_path", `"$user", public`, "", false},
		{"new schema first", "public_02, public", "", true},
		{"new schema first, quoted", `"public_02", public`, "", true},
		{"a schema that does not exist, then the new one", "nosuch, public_02", "", true},
		{"a schema that does not exist, then public", "nosuch, public", "", false},
		{"new schema second", "public, public_02", "", false},
		{"setting names the new schema", "public", "public_02", true},
		{"setting names another schema", "public_02", "public", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := e.db.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			defer conn.Exec(ctx, "RESET search_path; RESET tandem.version_schema")
			if _, err := conn.Exec(ctx, "SELECT set_config('search_path', $1, false), set_config($2, $3, false)", c.searchPath, VersionSetting, c.setting); err != nil {
				t.Fatal(err)
			}
			mustExec(t, conn, "INSERT INTO public.items (id, qty) VALUES ($1, 5)", i)
			want := "10" // up: the old version's write
			if c.isNew {
				want = "null"
			}
			expectString(t, e.db, fmt.Sprintf("SELECT coalesce(%s::text, 'null') FROM public.items WHERE id = %d", qi("dbl"), i), want)
		})
	}
}
