package command

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// AppendRouteJSON appends r as {"dst": ..., "gateway": ..., "dev": ...}.
// Interface names are printable ASCII, for which Go quoting is JSON quoting.
func AppendRouteJSON(b []byte, r route.Route) []byte {
	b = append(b, `{"dst": "`...)
	b = r.Dst.AppendTo(b)
	b = append(b, `"}`...)
	return b
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

	default:
		b = append(b, `, "op": "`...)
		b = append(b, op...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// AppendMACJSON appends {"mac": ..., "ip": ...}.
func AppendMACJSON(b []byte, m mac.Addr, ip netip.Addr) []byte {
	b = append(b, `{"mac": "`...)
	b = m.AppendTo(b)
	b = append(b, `", "ip": "`...)
	b = ip.AppendTo(b)
	return append(b, `"}`...)
}

// AppendMACEventJSON appends one `rtm monitor -j` line for the MAC table,
// without the newline. The IP is left out for "del", and when it is not
// valid (the entry is gone from shared memory by the time it is printed).
func AppendMACEventJSON(b []byte, seq uint64, op string, m mac.Addr, ip netip.Addr) []byte {
	b = append(b, `{"seq": `...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `, "table": "mac", "op": "`...)
	b = append(b, op...)
	b = append(b, `", "mac": "`...)
	b = m.AppendTo(b)
	b = append(b, '"')
	if op != "del" && ip.IsValid() {
		b = append(b, `, "ip": "`...)
		b = ip.AppendTo(b)
		b = append(b, '"')
	}
	return append(b, '}')
}

// PrintStatus prints rtmd's status as `rtm status` does: JSON, or lines.
func PrintStatus(w io.Writer, st wire.Status, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "rtmd %s, up %s\n", st.Version, time.Duration(st.Uptime*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(w, "sequence %d; %d IPv4 routes, %d IPv6 routes, %d MAC entries\n", st.Seq, st.Routes4, st.Routes6, st.MACs)
	fmt.Fprintf(w, "clients: %d unix, %d tcp, %d compat\n", st.Clients["unix"], st.Clients["tcp"], st.Clients["compat"])
	for _, in := range []string{"socket", "queue", "tcp", "console"} {
		c := st.Inputs[in]
		fmt.Fprintf(w, "%-8s %d accepted, %d rejected\n", in+":", c.Accepted, c.Rejected)
	}
	queue := st.Queue
	if queue == "" && st.SHM != "" { // a TCP peer is told neither
		queue = "none"
	}
	fmt.Fprintf(w, "queue %s, shared memory %s", queue, st.SHM)
	if st.TCP != "" {
		fmt.Fprintf(w, ", tcp %s", st.TCP)
	}
	fmt.Fprintln(w)
}
