package lint

import (
	"io"

	"github.com/tandem-pg/tandem/internal/report"
)

// RulesDocURL is where the rules are documented; SARIF links each rule to its section.
const RulesDocURL = "https://github.com/tandem-pg/tandem/blob/main/docs/lint-rules.md"

// WriteSARIF prints the result as a SARIF 2.1.0 log, for code scanning tools.
func WriteSARIF(w io.Writer, res *Result) error {
	return report.WriteSARIF(w, tool(), reportFindings(res))
}
