package migrate

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// VersionSetting is the name of the session setting (a custom GUC) that tells Tandem's
// dual-write triggers which version a connection speaks. Its value is a version schema name
// as returned by VersionSchema, for example "public_02_add_price".
//
// The rule the triggers apply to decide whether a write comes from the new version of an
// active migration:
//
//  1. If tandem.version_schema is set (non-empty) on the session, the write is from the new
//     version exactly when it equals the new version's schema name.
//  2. Otherwise, the write is from the new version exactly when the first schema of
//     search_path that exists (current_schema()) is the new version's schema: the one
//     whose views the session's unqualified names reach.
//  3. Every other write (through the old version's views, or straight into the physical
//     tables) counts as a write from the old version.
//
// Setting both search_path and tandem.version_schema, as PinConnConfig does, is the robust
// choice: a pool's search_path may be changed by application code, the setting is not.
const VersionSetting = "tandem.version_schema"

// VersionSchema returns the name of the Postgres schema that exposes migration version of
// the logical schema schema, e.g. VersionSchema("public", "02_add_price") is
// "public_02_add_price".
func VersionSchema(schema, version string) string {
	return schema + "_" + version
}

// SessionParams returns the runtime parameters a connection must carry to speak version
// schema versionSchema: search_path set to that schema, and VersionSetting set to it.
func SessionParams(versionSchema string) map[string]string {
	return map[string]string{
		"search_path":  pgx.Identifier{versionSchema}.Sanitize(),
		VersionSetting: versionSchema,
	}
}

// PinConnConfig sets cfg's runtime parameters so that every connection made with it speaks
// versionSchema (see VersionSetting). Use it on pgxpool.Config.ConnConfig or pgx.ConnConfig
// before connecting.
func PinConnConfig(cfg *pgx.ConnConfig, versionSchema string) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range SessionParams(versionSchema) {
		cfg.RuntimeParams[k] = v
	}
}

// PinConn sets the version on an already open connection, for the rest of its session.
func PinConn(ctx context.Context, conn *pgx.Conn, versionSchema string) error {
	_, err := conn.Exec(ctx, "SELECT set_config('search_path', $1, false), set_config($2, $3, false)",
		pgx.Identifier{versionSchema}.Sanitize(), VersionSetting, versionSchema)
	return err
}
