package startup

import (
	"io"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"

	"github.com/writebehind/writebehind"
)

const variablesFormat = `
Configuration (environment variables):
{{range .}}  {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes a command's usage followed by every WB_ variable with its
// default and meaning, read from the tags of writebehind.Config so the list
// cannot fall behind it.
func Usage(w io.Writer, commands string) {
	_, _ = io.WriteString(w, commands)
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	_ = envconfig.Usagef("WB", &writebehind.Config{}, tw, variablesFormat)
	_ = tw.Flush()
}
