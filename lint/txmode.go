package lint

// Mode is how a migration runner must execute an SQL file, as the rules judge it.
type Mode struct {
	// NoTransaction says the file runs outside a transaction, statement by statement,
	// because it says so; Reason is the directive ("-- no-transaction",
	// "-- +goose NO TRANSACTION", ...).
	NoTransaction bool
	Reason        string
	// ExplicitTx says the file controls its own transactions with BEGIN and COMMIT.
	ExplicitTx bool
	// Up is the text the rules read: the file with its "down" sections (goose's
	// "-- +goose Down", dbmate's "-- migrate:down") and what psql reads itself blanked,
	// offsets and lines kept.
	Up string
	// Psql lists what only psql can run: meta-commands and COPY ... FROM stdin data.
	// A runner that sends the file to the server cannot run such a file as written.
	Psql []PsqlPart
}

// PsqlPart is a part of a file that psql reads itself: what it is, and its line.
type PsqlPart struct {
	Line int
	What string
}

// FileMode says how a migration runner must execute the SQL file src. Tandem's
// plain-SQL streams run Mode.Up, the way the mode says, so that what runs is what was
// linted.
func FileMode(src string) Mode {
	pf, err := parseFile("", src, false, false)
	if err != nil {
		return Mode{Up: src}
	}
	return Mode{NoTransaction: pf.mode == txNone, Reason: pf.modeReason, ExplicitTx: pf.explicitTx, Up: pf.text, Psql: pf.psql}
}
