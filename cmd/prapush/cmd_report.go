package main

import (
	"context"

	"github.com/prapush/prapush/report"
)

func (a *app) cmdReport(ctx context.Context, args []string) error {
	format := ""
	rest, err := a.parseCommandFlags("report", args, func(fs flagSet) {
		fs.StringVar(&format, "format", "", "")
	})
	if err != nil {
		return err
	}
	if len(rest) != 2 || rest[0] != "render" {
		return usageErr("usage: prapush report render FILE.json --format html|md|junit|json")
	}
	r, err := report.ReadJSON(rest[1])
	if err != nil {
		return usageErr("%v", err)
	}
	switch format {
	case "md":
		return report.WriteMarkdown(a.env.Stdout, r)
	case "junit":
		return report.WriteJUnit(a.env.Stdout, r)
	case "json":
		return report.WriteJSON(a.env.Stdout, r)
	case "html":
		return report.WriteHTML(a.env.Stdout, r)
	}
	return usageErr("report render: --format must be html, md, junit or json")
}
