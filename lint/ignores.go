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
	"data_depend":           {"add-column-not-null-no-default"},
	"mf103":                 {"add-column-not-null-no-default"},
	"concurrent_index":      {"index-not-concurrent", "concurrently-in-transaction"},
	"pg101":                 {"index-not-concurrent"},
	"pg102":                 {"index-not-concurrent"},
	"pg103":                 {"concurrently-in-transaction"},
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
// header says that the comment is in the file's header (see atlasHeaderEnd), where atlas
// reads atlas:nolint as covering the whole file.
func parseDirective(text string, foreign, header bool) (directive, bool) {
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
		{"atlas:nolint", header, atlasRules},
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

// atlasHeaderEnd returns where the file's header ends: the line comments that open src,
// when an empty line separates them from the rest (or nothing follows them). atlas reads
// its directives there as file directives; it returns -1 when src has no such header.
// Like atlas, it takes the comments from the first byte on: a file that opens with a
// blank line or a block comment has no header.
func atlasHeaderEnd(src string) int {
	i := 0
	for strings.HasPrefix(src[i:], "--") {
		j := strings.IndexByte(src[i:], '\n')
		if j < 0 {
			return len(src) // comments only
		}
		i += j + 1
	}
	if i == 0 {
		return -1
	}
	if rest := src[i:]; rest == "" || rest[0] == '\n' || strings.HasPrefix(rest, "\r\n") {
		return i
	}
	return -1
}
