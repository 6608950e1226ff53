package startup

import (
	"bytes"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

const variablesFormat = `{{range .}}  {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes a command's usage followed by every WB_ variable it reads
// (the Settings and each configuration of cfgs, each variable once) with its
// default and meaning, read from the tags of the configurations so the list
// cannot fall behind them.
func Usage(w io.Writer, commands string, cfgs ...any) {
	_, _ = io.WriteString(w, commands+"\nConfiguration (environment variables):\n")
	var lines bytes.Buffer
	for _, c := range append([]any{&Settings{}}, cfgs...) {
		_ = envconfig.Usagef("WB", c, &lines, variablesFormat)
	}
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	seen := map[string]bool{}
	for _, l := range strings.SplitAfter(lines.String(), "\n") {
		if key, _, _ := strings.Cut(strings.TrimSpace(l), "\t"); key != "" && !seen[key] {
			seen[key] = true
			_, _ = io.WriteString(tw, l)
		}
	}
	_ = tw.Flush()
}
