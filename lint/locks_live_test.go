package lint

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// serverLockModes maps pg_locks' mode names to the model's lock levels.
var serverLockModes = map[string]lockMode{
	"AccessShareLock": lockAccessShare, "RowShareLock": lockRowShare, "RowExclusiveLock": lockRowExclusive,
	"ShareUpdateExclusiveLock": lockShareUpdateExclusive, "ShareLock": lockShare,
	"ShareRowExclusiveLock": lockShareRowExclusive, "ExclusiveLock": lockExclusive,
	"AccessExclusiveLock": lockAccessExclusive,
}

// TestStatementLocksMatchServer runs each statement kind on a real PostgreSQL inside a
// transaction, reads the table locks it holds from pg_locks (a lock on an index counts
// for its table), and compares them with the locks the linter's model says it takes. Weak
// locks (below SHARE UPDATE EXCLUSIVE) the model may leave out; any lock it names must be
// the server's.
func TestStatementLocksMatchServer(t *testing.T) {
	ctx := context.Background()
	url, conn := liveDB(t)
	setup := []string{
		`CREATE TABLE r (id int PRIMARY KEY)`,
		`CREATE TABLE t (id int PRIMARY KEY, r_id int REFERENCES r, v text, ts timestamp)`,
		`ALTER TABLE t ADD CONSTRAINT t_chk CHECK (id > 0) NOT VALID`,
		`CREATE INDEX t_v ON t (v)`,
		`CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`CREATE TRIGGER t_trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg()`,
		`CREATE POLICY t_pol ON t USING (true)`,
		`CREATE RULE t_rule AS ON DELETE TO t WHERE false DO ALSO NOTHING`,
		`CREATE VIEW t_view AS SELECT id FROM t`,
		`CREATE MATERIALIZED VIEW t_mv AS SELECT id FROM t`,
		`CREATE UNIQUE INDEX t_mv_id ON t_mv (id)`,
		`CREATE TABLE p (id int, k int) PARTITION BY RANGE (k)`,
		`CREATE TABLE loose (id int, k int)`,
		`CREATE TABLE s2 (id int, r_id int REFERENCES r)`,
		// What DROP ... CASCADE drops along.
		`CREATE TABLE c (id int PRIMARY KEY, a text, b text)`,
		`CREATE TABLE cref (id int, c_id int REFERENCES c)`,
		`CREATE VIEW c_a AS SELECT id, a FROM c`,
		`CREATE VIEW c_a2 AS SELECT * FROM c_a`,
		`CREATE VIEW c_b AS SELECT upper(b) AS b FROM c WHERE id > 0`,
		`CREATE MATERIALIZED VIEW c_mv AS SELECT count(*) FROM c`,
		`CREATE TYPE mood AS ENUM ('a', 'b')`,
		`CREATE TABLE moody (id int, m mood)`,
		`CREATE VIEW moody_v AS SELECT m FROM moody`,
		`CREATE FUNCTION ctrg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`CREATE TRIGGER cref_trg BEFORE INSERT ON cref FOR EACH ROW EXECUTE FUNCTION ctrg()`,
	}
	for _, s := range setup {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	cat, err := LoadCatalog(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// The same schema as the linter knows it from replaying the statements that made it.
	replay := newEngine(Options{})
	pf, err := parseFile("setup.sql", strings.Join(setup, ";\n")+";", true, false)
	if err == nil {
		err = replay.runFile(0, pf)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The table each relation stands for: itself, or an index's table.
	tableOf := map[uint32]string{}
	rows, err := conn.Query(ctx, `
		SELECT c.oid, coalesce(tc.relname, c.relname)
		FROM pg_class c
		LEFT JOIN pg_index x ON x.indexrelid = c.oid
		LEFT JOIN pg_class tc ON tc.oid = x.indrelid
		WHERE c.relnamespace = 'public'::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var oid uint32
		var name string
		if err := rows.Scan(&oid, &name); err != nil {
			t.Fatal(err)
		}
		tableOf[oid] = "public." + name
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	cascades := []string{
		`DROP TABLE c CASCADE`,
		`ALTER TABLE c DROP COLUMN a CASCADE`,
		`ALTER TABLE c DROP COLUMN id CASCADE`,
		`ALTER TABLE c DROP COLUMN b CASCADE`,
		`DROP VIEW c_a CASCADE`,
		`DROP TYPE mood CASCADE`,
		`DROP FUNCTION ctrg() CASCADE`,
	}
	for _, stmt := range append([]string{
		`ALTER TABLE t ADD COLUMN x int`,
		`ALTER TABLE t ALTER COLUMN v SET STATISTICS 100`,
		`ALTER TABLE t ALTER COLUMN v SET DEFAULT 'x'`,
		`ALTER TABLE t ALTER COLUMN ts TYPE timestamptz`,
		`ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0) NOT VALID`,
		`ALTER TABLE t ADD CONSTRAINT fk2 FOREIGN KEY (r_id) REFERENCES r NOT VALID`,
		`ALTER TABLE t VALIDATE CONSTRAINT t_chk`,
		`ALTER TABLE t DROP CONSTRAINT t_chk`,
		`ALTER TABLE t DROP CONSTRAINT t_r_id_fkey`,
		`ALTER TABLE t ALTER COLUMN r_id DROP NOT NULL`,
		`ALTER TABLE t DROP COLUMN v`,
		`DROP TABLE s2`,
		`ALTER TABLE s2 DROP COLUMN r_id`,
		`ALTER TABLE t REPLICA IDENTITY FULL`,
		`ALTER TABLE t OWNER TO CURRENT_USER`,
		`ALTER TABLE t DISABLE TRIGGER t_trg`,
		`ALTER TABLE t ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE t SET (fillfactor = 70)`,
		`ALTER TABLE t RENAME COLUMN v TO w`,
		`ALTER TABLE t RENAME TO t2`,
		`ALTER TABLE t RENAME CONSTRAINT t_chk TO t_chk2`,
		`ALTER TABLE p ATTACH PARTITION loose FOR VALUES FROM (10) TO (20)`,
		`CREATE INDEX ON t (ts)`,
		`CREATE UNIQUE INDEX ON t (id, v)`,
		`DROP INDEX t_v`,
		`ALTER INDEX t_v RENAME TO t_v2`,
		`REINDEX TABLE t`,
		`REINDEX INDEX t_v`,
		`CREATE TRIGGER t_trg2 AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION trg()`,
		`DROP TRIGGER t_trg ON t`,
		`ALTER TRIGGER t_trg ON t RENAME TO t_trg3`,
		`CREATE POLICY p2 ON t USING (true)`,
		`ALTER POLICY t_pol ON t USING (false)`,
		`DROP POLICY t_pol ON t`,
		`ALTER POLICY t_pol ON t RENAME TO t_pol2`,
		`CREATE RULE r2 AS ON UPDATE TO t WHERE false DO ALSO NOTHING`,
		`DROP RULE t_rule ON t`,
		`COMMENT ON TABLE t IS 'x'`,
		`COMMENT ON COLUMN t.v IS 'x'`,
		`CREATE STATISTICS s ON id, v FROM t`,
		`TRUNCATE t`,
		`LOCK TABLE t IN SHARE MODE`,
		`INSERT INTO t (id) VALUES (1)`,
		`UPDATE t SET v = 'x'`,
		`DELETE FROM t`,
		`MERGE INTO r USING t ON r.id = t.id WHEN MATCHED THEN DELETE`,
		`CLUSTER t USING t_pkey`,
		`REFRESH MATERIALIZED VIEW t_mv`,
		`REFRESH MATERIALIZED VIEW CONCURRENTLY t_mv`,
		`CREATE OR REPLACE VIEW t_view AS SELECT id FROM t`,
		`DROP VIEW t_view`,
		`DROP TABLE loose`,
		`CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)`,
		`CREATE TABLE s (id int REFERENCES t)`,
		`GRANT SELECT ON t TO PUBLIC`,
	}, cascades...) {
		t.Run(stmt, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, stmt); err != nil {
				t.Fatalf("run: %v", err)
			}
			server := map[string]lockMode{}
			rows, err := tx.Query(ctx, `SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var oid uint32
				var mode string
				if err := rows.Scan(&oid, &mode); err != nil {
					t.Fatal(err)
				}
				if tbl, ok := tableOf[oid]; ok && serverLockModes[mode] > server[tbl] {
					server[tbl] = serverLockModes[mode]
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}

			stmts := parseAll(t, stmt)
			if len(stmts) != 1 {
				t.Fatalf("parsed %d statements", len(stmts))
			}
			catalogs := map[string]*Catalog{"live": cat}
			if slices.Contains(cascades, stmt) {
				catalogs["replayed"] = replay.cat
			}
			for name, c := range catalogs {
				e := newEngine(Options{Catalog: c})
				model := map[string]lockMode{}
				for _, l := range e.statementLocks(stmts[0].node) {
					model[l.table] = l.mode
				}
				for tbl := range unionKeys(server, model) {
					s, m := server[tbl], model[tbl]
					if s == m || m == lockNone && s < lockShareUpdateExclusive {
						continue
					}
					t.Errorf("%s: server holds %q, the model (%s catalog) says %q", tbl, s, name, m)
				}
			}
		})
	}
}

func unionKeys(a, b map[string]lockMode) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
