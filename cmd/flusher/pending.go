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

// pending prints the group's pending entries (XPENDING) with the document
// each op writes. It only reads.
func pending(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pending", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	partition := fs.Int("partition", -1, "only this partition (default: all)")
	var f queue.PendingFilter
	fs.StringVar(&f.Consumer, "consumer", "", "only entries held by this consumer")
	fs.DurationVar(&f.MinIdle, "min-idle", 0, "only entries idle at least this long")
	fs.IntVar(&f.Limit, "limit", 100, "at most this many entries (0: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return usageError(stderr, "pending", err)
	}
	if f.Limit < 0 || f.MinIdle < 0 {
		return usageError(stderr, "pending", fmt.Errorf("--limit and --min-idle must not be negative"))
	}
	return withQueue(stderr, "pending", func(ctx context.Context, q *queue.Queue, cfg config) error {
		if *partition >= q.Partitions() {
			return fmt.Errorf("%w: --partition %d: there are %d partitions (0 to %d)", errUsage, *partition, q.Partitions(), q.Partitions()-1)
		}
		entries := []queue.PendingEntry{}
		for p := range q.Partitions() {
			if *partition >= 0 && p != *partition {
				continue
			}
			pf := f
			if f.Limit > 0 {
				if pf.Limit = f.Limit - len(entries); pf.Limit == 0 {
					break
				}
			}
			got, err := q.Pending(ctx, p, cfg.Group, pf)
			if err != nil {
				return err
			}
			entries = append(entries, got...)
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(entries)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tENTRY\tCONSUMER\tIDLE\tDELIVERIES\tENTITY\tID")
		for _, e := range entries {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Partition, e.ID, orDash(e.Consumer), roundDur(e.Idle), e.Deliveries, orDash(e.Entity), orDash(e.Key))
		}
		return tw.Flush()
	})
}
