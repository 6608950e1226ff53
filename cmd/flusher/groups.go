package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/writebehind/writebehind/internal/queue"
)

// groups runs `flusher groups [--json]` (every consumer group on the
// partition streams) and `flusher groups remove NAME` (destroy a group
// nobody reads, so trimming can pass its entries).
func groups(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "remove" {
		if len(args) != 2 || args[1] == "" {
			return usageError(stderr, "groups remove", fmt.Errorf("want the name of one group"))
		}
		name := args[1]
		return withQueue(stderr, "groups remove", func(ctx context.Context, q *queue.Queue, cfg config) error {
			if name == cfg.Group {
				return fmt.Errorf("%w: %q is WB_GROUP, the group of these flushers", errUsage, name)
			}
			n, err := q.RemoveGroup(ctx, name)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no group %q on any partition", name)
			}
			fmt.Fprintf(stdout, "removed group %s from %d partitions\n", name, n)
			return nil
		})
	}
	fs := flag.NewFlagSet("groups", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return usageError(stderr, "groups", err)
	}
	return withQueue(stderr, "groups", func(ctx context.Context, q *queue.Queue, cfg config) error {
		gs, err := q.Groups(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(gs)
		}
		return writeGroups(stdout, gs, cfg.Group)
	})
}

// writeGroups prints groups as a table, marking the flushers' own.
func writeGroups(w io.Writer, gs []queue.GroupInfo, own string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tPARTITIONS\tCONSUMERS\tPENDING\tLAG\t")
	for _, g := range gs {
		mark := ""
		if g.Name == own {
			mark = "(WB_GROUP)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", orDash(g.Name), g.Partitions, g.Consumers, g.Pending, g.Lag, mark)
	}
	return tw.Flush()
}
