package lint

import "strings"

// squawkRules maps squawk's rule names to ours, where the meaning is the same. A squawk
// name not listed here has no counterpart and suppresses nothing.
var squawkRules = map[string][]string{
	"require-concurrent-index-creation":            {"index-not-concurrent"},
	"require-concurrent-index-deletion":            {"index-not-concurrent"},
	"ban-concurrent-index-creation-in-transaction": {"concurrently-in-transaction"},
	"adding-required-field":                        {"add-column-not-null-no-default"},
	"adding-not-nullable-field":                    {"set-not-null-scan"},
	"adding-foreign-key-constraint":                {"constraint-without-not-valid"},
	"constraint-missing-not-valid":                 {"constraint-without-not-valid"},
	"disallowed-unique-constraint":                 {"unique-constraint-without-index"},
	"changing-column-type":                         {"alter-column-type-rewrite", "column-type-semantic-change"},
	"adding-field-with-default":                    {"add-column-volatile-default", "add-column-generated"},
	"renaming-column":                              {"rename-column"},
	"renaming-table":                               {"rename-table"},
	"ban-drop-column":                              {"drop-column"},
	"ban-drop-table":                               {"drop-table"},
	"ban-drop-not-null":                            {"drop-not-null"},
	"ban-truncate-cascade":                         {"truncate"},
	"require-concurrent-partition-detach":          {"detach-partition-not-concurrent"},
	"require-lock-timeout":                         {"missing-lock-timeout"},
	"require-statement-timeout":                    {"statement-timeout"},
	"require-timeout-settings":                     {"missing-lock-timeout", "statement-timeout"},
}

// atlasRules maps atlas's analyzer names and check codes to our rules, where the meaning
// is the same.
var atlasRules = map[string][]string{
	"destructive":           {"drop-table", "drop-column"},
	"ds102":                 {"drop-table"},
	"ds103":                 {"drop-column"},
	"backward_incompatible": {"rename-table", "rename-column"},
	"bc101":                 {"rename-table"},
	"bc102":                 {"rename-column"},
	"concurrent_index":      {"index-not-concurrent"},
}

// directive is one suppression comment: the rules it names ("all" for every rule) and
// whether it covers the whole file.
type directive struct {
	rules []string
	file  bool
}

// parseDirective reads a suppression comment: ours (tandem-lint-ignore: and
// tandem-lint-ignore-file:) and, unless foreign is false, squawk's (squawk-ignore,
// squawk-ignore-file) and atlas's (atlas:nolint) with their rule names mapped to ours.
func parseDirective(text string, foreign bool) (directive, bool) {
	if i := indexFold(text, ignoreFileDirective); i >= 0 {
		return directive{rules: splitRules(text[i+len(ignoreFileDirective):]), file: true}, true
	}
	if i := indexFold(text, ignoreDirective); i >= 0 {
		return directive{rules: splitRules(text[i+len(ignoreDirective):])}, true
	}
	if !foreign {
		return directive{}, false
	}
	body := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(text), "--"), "/*"), "*/"))
	lower := strings.ToLower(body)
	for _, tool := range []struct {
		prefix string
		file   bool
		names  map[string][]string
	}{
		{"squawk-ignore-file", true, squawkRules},
		{"squawk-ignore", false, squawkRules},
		{"atlas:nolint", false, atlasRules},
	} {
		rest, ok := strings.CutPrefix(lower, tool.prefix)
		if !ok || rest != "" && rest[0] != ' ' && rest[0] != '\t' && rest[0] != ',' {
			continue
		}
		names := splitRules(rest)
		if len(names) == 0 {
			return directive{rules: []string{"all"}, file: tool.file}, true
		}
		d := directive{file: tool.file}
		for _, n := range names {
			d.rules = append(d.rules, tool.names[n]...)
		}
		return d, len(d.rules) > 0
	}
	return directive{}, false
}
