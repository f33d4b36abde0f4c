package command

import (
	"strconv"

	"github.com/rtm-project/rtm/internal/route"
)

// AppendRouteJSON appends r as {"dst": ..., "gateway": ..., "dev": ...}.
// Interface names are printable ASCII, for which Go quoting is JSON quoting.
func AppendRouteJSON(b []byte, r route.Route) []byte {
	b = append(b, `{"dst": "`...)
	b = r.Dst.AppendTo(b)
	b = append(b, `", "gateway": "`...)
	b = r.Gateway.AppendTo(b)
	b = append(b, `", "dev": `...)
	b = strconv.AppendQuote(b, r.Dev)
	return append(b, '}')
}

// AppendEventJSON appends one `rtm monitor -j` line, without the newline.
// op is "add", "change", "del", "synced" or "resync"; r is used for the
// route ops only, and only r.Dst for "del".
func AppendEventJSON(b []byte, seq uint64, op string, r route.Route) []byte {
	b = append(b, `{"seq": `...)
	b = strconv.AppendUint(b, seq, 10)
	switch op {
	case "add", "change", "del":
		b = append(b, `, "table": "route", "op": "`...)
		b = append(b, op...)
		b = append(b, `", "dst": "`...)
		b = r.Dst.AppendTo(b)
		b = append(b, '"')
		if op != "del" {
			b = append(b, `, "gateway": "`...)
			b = r.Gateway.AppendTo(b)
			b = append(b, `", "dev": `...)
			b = strconv.AppendQuote(b, r.Dev)
		}
	default:
		b = append(b, `, "op": "`...)
		b = append(b, op...)
		b = append(b, '"')
	}
	return append(b, '}')
}
